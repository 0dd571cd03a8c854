"""Freeze windows (dated ranges, cron minutes, all UTC) and required approvals, with break-glass."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from cd_checks import bounded
from cd_checks.audit.identity import ChangeRequest, git_runner, identify
from cd_checks.errors import ConfigError
from cd_checks.freeze import (
    FreezeWindow,
    active,
    approvals_problem,
    describe,
    enforce,
    next_start,
    parse,
    upcoming,
)
from tests.audit.test_identity import FakeApi, _fixture, _github_env, _repo

UTC = timezone.utc
YEAR_END = {"from": "2026-12-20", "to": "2027-01-04", "reason": "year-end freeze"}
FRIDAY = {"cron": "* 16-23 * * 5", "reason": "no Friday evening changes"}


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def one(entry: dict[str, Any]) -> FreezeWindow:
    (window,) = parse([entry])
    return window


# --- dated windows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-12-20", "2027-01-04"),
        (date(2026, 12, 20), date(2027, 1, 4)),
        ("2026-12-20T00:00:00", "2027-01-05T00:00:00"),  # naive ISO text: UTC
        ("2026-12-20 00:00", "2027-01-05 00:00Z"),
        (datetime(2026, 12, 20), datetime(2027, 1, 5)),  # naive datetime: UTC
        (
            "2026-12-20T01:00:00+01:00",
            datetime(2027, 1, 4, 19, tzinfo=ZoneInfo("America/New_York")),
        ),
    ],
)
def test_dates_datetimes_and_text_give_the_same_utc_window(start: object, end: object) -> None:
    window = one({"from": start, "to": end, "reason": "year-end freeze"})
    assert window == FreezeWindow("year-end freeze", at(2026, 12, 20), at(2027, 1, 5))


def test_yaml_dates_and_the_config_loaders_strings_parse_alike() -> None:
    text = "- {from: 2026-12-20, to: 2027-01-04T06:00:00Z, reason: year-end}\n"
    from_objects = parse(yaml.safe_load(text))  # datetime.date / datetime.datetime
    from_strings = parse(bounded.load_yaml(text, bounded.SETTINGS))  # ISO strings
    assert (
        from_objects
        == from_strings
        == (FreezeWindow("year-end", at(2026, 12, 20), at(2027, 1, 4, 6)),)
    )


@pytest.mark.parametrize(
    ("now", "frozen"),
    [
        (at(2026, 12, 19, 23, 59, 59), False),
        (at(2026, 12, 20, 0, 0), True),
        (at(2027, 1, 4, 23, 59, 59), True),  # a date `to` takes the whole day
        (at(2027, 1, 5, 0, 0), False),
        (datetime(2027, 1, 5, 0, 30, tzinfo=ZoneInfo("Europe/Berlin")), True),  # 23:30 UTC
        (datetime(2027, 1, 4, 23, 59), True),  # naive now: UTC
        (datetime(2027, 1, 5, 0, 0), False),
    ],
)
def test_a_dated_window_edges_are_utc_minutes(now: datetime, frozen: bool) -> None:
    window = one(YEAR_END)
    assert (active([window], now) == window) is frozen


def test_a_datetime_to_ends_at_that_moment() -> None:
    windows = parse([{"from": "2026-06-01T22:00:00Z", "to": "2026-06-02T06:00Z", "reason": "db"}])
    assert active(windows, at(2026, 6, 1, 21, 59, 59)) is None
    assert active(windows, at(2026, 6, 2, 5, 59, 59)) == windows[0]
    assert active(windows, at(2026, 6, 2, 6, 0)) is None


def test_from_alone_is_frozen_from_then_on_and_to_alone_until_then() -> None:
    from_only, to_only = parse(
        [{"from": "2027-03-01", "reason": "migration"}, {"to": "2026-02-01", "reason": "audit"}]
    )
    assert active([from_only], at(2027, 2, 28, 23, 59, 59)) is None
    assert active([from_only], at(2099, 1, 1)) == from_only
    assert active([to_only], at(1999, 1, 1)) == to_only
    assert active([to_only], at(2026, 2, 1, 23, 59, 59)) == to_only
    assert active([to_only], at(2026, 2, 2)) is None


# --- cron windows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "frozen"),
    [
        (at(2026, 7, 3, 15, 59, 59), False),  # Friday
        (at(2026, 7, 3, 16, 0), True),
        (at(2026, 7, 3, 23, 59, 59), True),
        (at(2026, 7, 4, 0, 0), False),  # Saturday
        (at(2026, 7, 2, 20, 0), False),  # Thursday
        # DST does not move the window: it is UTC. Berlin is UTC+2 in summer, UTC+1 in winter.
        (datetime(2026, 7, 3, 17, 59, tzinfo=ZoneInfo("Europe/Berlin")), False),
        (datetime(2026, 7, 3, 18, 0, tzinfo=ZoneInfo("Europe/Berlin")), True),
        (datetime(2026, 12, 4, 17, 0, tzinfo=ZoneInfo("Europe/Berlin")), True),
        (datetime(2026, 3, 27, 16, 59, tzinfo=ZoneInfo("Europe/Berlin")), False),  # CET, 15:59Z
        # Friday 20:00 in New York is already Saturday 00:00 UTC.
        (datetime(2026, 7, 3, 20, 0, tzinfo=ZoneInfo("America/New_York")), False),
        (datetime(2026, 7, 3, 19, 59, tzinfo=ZoneInfo("America/New_York")), True),
    ],
)
def test_a_cron_window_freezes_friday_evening_in_utc(now: datetime, frozen: bool) -> None:
    window = one(FRIDAY)
    assert (active([window], now) == window) is frozen


@pytest.mark.parametrize(
    ("expression", "frozen", "free"),
    [
        ("*/15 9,17 * * mon-fri", at(2026, 7, 1, 17, 30), at(2026, 7, 1, 17, 31)),
        ("* * * dec *", at(2026, 12, 31, 23, 59), at(2027, 1, 1, 0, 0)),
        ("* * * * 0", at(2026, 7, 5, 12, 0), at(2026, 7, 6, 12, 0)),  # Sunday as 0
        ("* * * * 7", at(2026, 7, 5, 12, 0), at(2026, 7, 4, 12, 0)),  # ... and as 7
        ("0 12 24-26 12 *", at(2026, 12, 25, 12, 0, 59), at(2026, 12, 25, 12, 1)),
    ],
)
def test_cron_fields_lists_ranges_steps_and_names(
    expression: str, frozen: datetime, free: datetime
) -> None:
    window = one({"cron": expression, "reason": "r"})
    assert active([window], frozen) == window
    assert active([window], free) is None


def test_active_returns_the_first_active_window_in_config_order() -> None:
    windows = parse([YEAR_END, {"cron": "* * * * *", "reason": "always"}])
    assert active(windows, at(2026, 12, 25, 17)) == windows[0]
    assert active(windows, at(2026, 6, 1)) == windows[1]


# --- bad entries --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"cron": "* * *", "reason": "r"}, "cron '* * *' has 3 fields, not 5"),
        ({"cron": "0 0 * * * 2027", "reason": "r"}, "cron '0 0 * * * 2027' has 6 fields, not 5"),
        ({"cron": "@daily", "reason": "r"}, "cron '@daily' has 1 fields, not 5"),
        ({"cron": "* 24 * * *", "reason": "r"}, "cron '* 24 * * *': hour field '24' is not valid"),
        (
            {"cron": "* * * * fry", "reason": "r"},
            "cron '* * * * fry': day of week field 'fry' is not valid",
        ),
        (
            {"cron": "*/0 * * * *", "reason": "r"},
            "cron '*/0 * * * *': minute field '*/0' is not valid",
        ),
        ({"cron": "0 0 30 2 *", "reason": "r"}, "cron '0 0 30 2 *' never matches"),
        ({"cron": 5, "reason": "r"}, "cron must be a text of 5 fields, not a number"),
        (
            {"cron": "* * * * *", "from": "2026-01-01", "reason": "r"},
            "give cron or from/to, not both",
        ),
        ({"reason": "r"}, "give from and/or to, or cron"),
        ({"from": "2026-12-20"}, "reason is required (a non-empty text)"),
        ({"from": "2026-12-20", "reason": "  "}, "reason is required (a non-empty text)"),
        ({"from": "2026-12-20", "reason": 3}, "reason is required (a non-empty text)"),
        (
            {"from": "2026-12-20", "until": "2027-01-04", "reason": "r"},
            "unknown key 'until' (allowed: from, to, cron, reason)",
        ),
        ({"from": "20.12.2026", "reason": "r"}, "from '20.12.2026' is not a date or ISO datetime"),
        ({"to": "2026-02-30", "reason": "r"}, "to '2026-02-30' is not a date or ISO datetime"),
        ({"to": 20261220, "reason": "r"}, "to 20261220 is not a date or ISO datetime"),
        (
            {"from": "2027-01-04", "to": "2026-12-20", "reason": "r"},
            "from '2027-01-04' is after to '2026-12-20'",
        ),
        (
            {"from": date(2026, 12, 21), "to": date(2026, 12, 20), "reason": "r"},
            "from 2026-12-21 is after to 2026-12-20",
        ),
        (
            {"from": "2026-12-20T10:00Z", "to": "2026-12-20T11:00+01:00", "reason": "r"},
            "from '2026-12-20T10:00Z' is the same moment as to '2026-12-20T11:00+01:00'",
        ),
        ("2026-12-20", "must be a mapping with from/to or cron, and reason"),
    ],
)
def test_a_bad_entry_is_one_line_naming_its_index(entry: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse([YEAR_END, entry], where="changes.nginx.freeze")
    assert str(caught.value) == f"changes.nginx.freeze[1]: {message}"


def test_freeze_must_be_a_list_and_may_be_absent() -> None:
    assert parse(None) == ()
    assert parse([]) == ()
    with pytest.raises(
        ConfigError, match=r"^changes\.web\.freeze: must be a list of windows, not a mapping$"
    ):
        parse(YEAR_END, where="changes.web.freeze")


def test_a_one_day_window_from_and_to_the_same_date_is_valid() -> None:
    window = one({"from": "2026-12-24", "to": "2026-12-24", "reason": "christmas eve"})
    assert window == FreezeWindow("christmas eve", at(2026, 12, 24), at(2026, 12, 25))


# --- next start and describe ----------------------------------------------------------------


def test_next_start_of_a_dated_window_within_the_horizon() -> None:
    windows = parse([YEAR_END])
    assert next_start(windows, at(2026, 12, 10)) == at(2026, 12, 20)
    assert next_start(windows, at(2026, 12, 1)) is None  # 19 days away: beyond 14
    assert next_start(windows, at(2026, 12, 1), horizon=timedelta(days=30)) == at(2026, 12, 20)
    assert next_start(windows, at(2026, 12, 25)) is None  # active now: active() says so
    assert next_start(windows, at(2027, 2, 1)) is None  # over


def test_next_start_of_a_cron_window() -> None:
    windows = parse([FRIDAY])
    assert next_start(windows, at(2026, 7, 3, 15, 59, 30)) == at(2026, 7, 3, 16, 0)
    assert next_start(windows, at(2026, 7, 4, 0, 0)) == at(2026, 7, 10, 16, 0)
    assert next_start(windows, at(2026, 7, 4), horizon=timedelta(days=1)) is None
    assert next_start(windows, at(2026, 7, 3, 17, 0)) is None  # active now
    yearly = parse([{"cron": "0 0 1 1 *", "reason": "new year"}])
    assert next_start(yearly, at(2026, 7, 1)) is None
    assert next_start(yearly, at(2026, 12, 25)) == at(2027, 1, 1)


def test_upcoming_names_the_earliest_window() -> None:
    windows = parse([YEAR_END, FRIDAY])
    assert upcoming(windows, at(2026, 12, 17, 12)) == (at(2026, 12, 18, 16), windows[1])
    assert upcoming(windows, at(2026, 12, 19, 12)) == (at(2026, 12, 20), windows[0])
    # Inside the year-end freeze, the next Friday evening is still an upcoming freeze.
    assert upcoming(windows, at(2026, 12, 21)) == (at(2026, 12, 25, 16), windows[1])


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        (YEAR_END, "year-end freeze (2026-12-20 .. 2027-01-04 UTC)"),
        (FRIDAY, "no Friday evening changes (cron '* 16-23 * * 5' UTC)"),
        (
            {"from": "2026-06-01T22:00Z", "to": "2026-06-02T06:00:30Z", "reason": "db"},
            "db (2026-06-01 22:00 .. 2026-06-02 06:00:30 UTC)",
        ),
        ({"from": "2027-03-01", "reason": "migration"}, "migration (from 2027-03-01 UTC)"),
        ({"to": "2026-02-01", "reason": "audit"}, "audit (through 2026-02-01 UTC)"),
        ({"to": "2026-02-01T12:00", "reason": "audit"}, "audit (until 2026-02-01 12:00 UTC)"),
    ],
)
def test_describe(entry: dict[str, Any], text: str) -> None:
    assert describe(one(entry)) == text


# --- approvals ----------------------------------------------------------------------------


def github(approvers: tuple[str, ...] | str, source: str = "event") -> ChangeRequest:
    return ChangeRequest("github", "42", None, None, approvers, None, source)


@pytest.mark.parametrize(
    ("required", "request_", "problem"),
    [
        (0, None, None),
        (2, github(("alice", "bob")), None),
        (2, github(("alice", "bob", "carol")), None),
        (
            1,
            None,
            "this revision came from no known pull/merge request: 1 approval(s) required",
        ),
        (2, github(("alice",)), "2 approval(s) required, 1 given (alice)"),
        (1, github(()), "1 approval(s) required, 0 given"),
        (
            2,
            github("unknown"),
            "2 approval(s) required, but the approvers of pull request #42 could not be read: "
            "set GITHUB_TOKEN so the API can read its reviews",
        ),
        (
            2,
            github("unknown", source="commit message"),
            "2 approval(s) required, but pull request #42 is named by the commit message only "
            "and could not be confirmed: set GITHUB_TOKEN so the API can confirm it and read "
            "its reviews",
        ),
        (
            1,
            ChangeRequest("gitlab", "7", None, True, "unknown", None, "ci variables"),
            "1 approval(s) required, but the approvers of merge request !7 could not be read: "
            "set CD_CHECKS_GITLAB_TOKEN (or GITLAB_TOKEN) so the API can read its approvals",
        ),
    ],
)
def test_approvals_problem(
    required: int, request_: ChangeRequest | None, problem: str | None
) -> None:
    assert approvals_problem(required, request_) == problem


def test_approvals_counted_from_the_real_github_lookup(tmp_path: Path) -> None:
    # carol and dave approved PR #42 (erin's approval was dismissed): see the identity fixtures.
    url = "http://127.0.0.1:1/api/repos/acme/ops/pulls/42/reviews?per_page=100"
    api = FakeApi({url: _fixture("github_pull_request_reviews.json")})
    root = _repo(tmp_path, "unrelated")
    found = identify(_github_env(GITHUB_TOKEN="t"), repo=root, git=git_runner(root), http=api)
    assert approvals_problem(2, found.change_request) is None
    assert approvals_problem(3, found.change_request) == (
        "3 approval(s) required, 2 given (carol, dave)"
    )
    without_token = identify(_github_env(), repo=root, git=git_runner(root), http=api)
    problem = approvals_problem(1, without_token.change_request)
    assert problem is not None and "set GITHUB_TOKEN" in problem


# --- enforce ------------------------------------------------------------------------------


def test_enforce_refuses_inside_a_freeze_and_without_approvals() -> None:
    windows = parse([YEAR_END, FRIDAY])
    refusals, notes = enforce(
        windows, 2, github(("alice",)), at(2026, 12, 25, 17), break_glass=False
    )
    assert refusals == [
        "inside freeze window: year-end freeze (2026-12-20 .. 2027-01-04 UTC)",
        "inside freeze window: no Friday evening changes (cron '* 16-23 * * 5' UTC)",
        "without the required approvals: 2 approval(s) required, 1 given (alice)",
    ]
    assert notes == []


def test_break_glass_turns_every_refusal_into_a_note_to_audit() -> None:
    windows = parse([YEAR_END])
    refusals, notes = enforce(windows, 1, None, at(2026, 12, 25), break_glass=True)
    assert refusals == []
    assert notes == [
        "BREAK-GLASS: going on inside freeze window: "
        "year-end freeze (2026-12-20 .. 2027-01-04 UTC)",
        "BREAK-GLASS: going on without the required approvals: "
        "this revision came from no known pull/merge request: 1 approval(s) required",
    ]


def test_enforce_outside_freezes_with_enough_approvals_has_nothing_to_say() -> None:
    windows = parse([YEAR_END, FRIDAY])
    for break_glass in (False, True):
        assert enforce(
            windows, 1, github(("alice",)), at(2026, 12, 19, 12), break_glass=break_glass
        ) == ([], [])
