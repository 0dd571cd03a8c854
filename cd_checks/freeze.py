"""Freeze windows and required approvals of a change type: parsed once, checked against a clock.

A freeze window is a dated range (`from`/`to`, dates or ISO datetimes, UTC) or a 5-field cron
expression whose every matching UTC minute is frozen, each with a reason. `enforce()` turns the
windows active at `now` and a shortfall of approvals into refusals, or with break-glass into notes
the caller audits. Pure: the clock and the pull/merge request (cd_checks.audit.identity) are
handed in; nothing here reads the environment, the network or prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

from croniter import CroniterBadDateError, CroniterError, croniter

from cd_checks.errors import ConfigError

if TYPE_CHECKING:
    from cd_checks.audit.identity import ChangeRequest

KEYS = ("from", "to", "cron", "reason")
CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
DEFAULT_HORIZON = timedelta(days=14)
# Any fixed instant works for "does this expression ever match": croniter searches 50 years on.
_PROBE = datetime(2000, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class FreezeWindow:
    """Frozen from `start` (inclusive) to `end` (exclusive), or during every minute `cron` matches.

    `start`/`end` are aware UTC datetimes; None is open-ended. A cron window has neither.
    """

    reason: str
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None


def parse(raw: object, where: str = "freeze") -> tuple[FreezeWindow, ...]:
    """The windows of a `freeze:` list; one ConfigError line naming `where[index]` if one is bad."""
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ConfigError(f"{where}: must be a list of windows, not {_kind(raw)}")
    return tuple(_window(entry, f"{where}[{index}]") for index, entry in enumerate(raw))


def is_active(window: FreezeWindow, now: datetime) -> bool:
    """Whether `now` (naive = UTC) falls inside `window`."""
    now = _utc(now)
    if window.cron is not None:
        # match() is true within the 60 seconds that follow a matching minute's start.
        return bool(croniter.match(window.cron, now))
    after_start = window.start is None or window.start <= now
    return after_start and (window.end is None or now < window.end)


def active(windows: Sequence[FreezeWindow], now: datetime) -> FreezeWindow | None:
    """The first window (config order) that is active at `now`, or None."""
    return next((window for window in windows if is_active(window, now)), None)


def upcoming(
    windows: Sequence[FreezeWindow], now: datetime, horizon: timedelta = DEFAULT_HORIZON
) -> tuple[datetime, FreezeWindow] | None:
    """The earliest start, after `now` and within `horizon`, of a window not active at `now`.

    A window active at `now` is `active()`'s business, so it is skipped here.
    """
    now = _utc(now)
    starts = [
        (start, index)
        for index, window in enumerate(windows)
        if not is_active(window, now)
        and (start := _next_start(window, now)) is not None
        and start <= now + horizon
    ]
    if not starts:
        return None
    start, index = min(starts)
    return start, windows[index]


def next_start(
    windows: Sequence[FreezeWindow], now: datetime, horizon: timedelta = DEFAULT_HORIZON
) -> datetime | None:
    """When the next freeze (of a window not active at `now`) starts, within `horizon`."""
    found = upcoming(windows, now, horizon)
    return found[0] if found else None


def describe(window: FreezeWindow) -> str:
    """The reason and when: "year-end freeze (2026-12-20 .. 2027-01-04 UTC)"."""
    if window.cron is not None:
        return f"{window.reason} (cron '{window.cron}' UTC)"
    if window.start is not None and window.end is not None:
        return f"{window.reason} ({_show(window.start)} .. {_show_end(window.end)} UTC)"
    if window.start is not None:
        return f"{window.reason} (from {_show(window.start)} UTC)"
    assert window.end is not None  # parse() never builds a window without a bound
    word = "through" if _midnight(window.end) else "until"
    return f"{window.reason} ({word} {_show_end(window.end)} UTC)"


def approvals_problem(required: int, request: ChangeRequest | None) -> str | None:
    """Why the approvals of `request` do not meet `required`, or None when they do.

    The author's own approval is not subtracted: ChangeRequest does not hold the author (and
    GitHub refuses a self-approval anyway); GitLab projects decide that in their own settings.
    """
    if required <= 0:
        return None
    need = f"{required} approval(s) required"
    if request is None:
        return f"this revision came from no known pull/merge request: {need}"
    if isinstance(request.approvers, str):
        return f"{need}, but {_unreadable(request)}"
    approvers = sorted(set(request.approvers))
    if len(approvers) >= required:
        return None
    given = f"{len(approvers)} given" + (f" ({', '.join(approvers)})" if approvers else "")
    return f"{need}, {given}"


def enforce(
    windows: Sequence[FreezeWindow],
    required: int,
    request: ChangeRequest | None,
    now: datetime,
    *,
    break_glass: bool,
) -> tuple[list[str], list[str]]:
    """(refusals, notes) for a rollout at `now`: active freezes and missing approvals.

    With `break_glass` every refusal becomes a "BREAK-GLASS: ..." note for the caller to audit;
    without it the notes are empty.
    """
    # (what is wrong, what break-glass goes on despite)
    found = [
        ("inside freeze window", describe(window)) for window in windows if is_active(window, now)
    ]
    problem = approvals_problem(required, request)
    if problem is not None:
        found.append(("without the required approvals", problem))
    if not break_glass:
        return [f"{what}: {detail}" for what, detail in found], []
    return [], [f"BREAK-GLASS: going on {what}: {detail}" for what, detail in found]


def _window(entry: object, where: str) -> FreezeWindow:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: must be a mapping with from/to or cron, and reason")
    unknown = sorted(str(key) for key in entry if key not in KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(KEYS)})")
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{where}: reason is required (a non-empty text)")
    if "cron" in entry:
        if "from" in entry or "to" in entry:
            raise ConfigError(f"{where}: give cron or from/to, not both")
        return FreezeWindow(reason.strip(), cron=_cron(entry["cron"], where))
    if "from" not in entry and "to" not in entry:
        raise ConfigError(f"{where}: give from and/or to, or cron")
    return _dated(entry, reason.strip(), where)


def _dated(entry: Mapping[object, object], reason: str, where: str) -> FreezeWindow:
    start = _bound(entry["from"], "from", where) if "from" in entry else None
    end = _bound(entry["to"], "to", where) if "to" in entry else None
    if start is not None and end is not None and start >= end:
        # A date `to` ends a day later, so only a datetime `to` can be the very moment of `from`.
        same = start == end and isinstance(_moment(entry["to"]), datetime)
        relation = "is the same moment as" if same else "is after"
        raise ConfigError(
            f"{where}: from {_text(entry['from'])} {relation} to {_text(entry['to'])}"
        )
    return FreezeWindow(reason, start=start, end=end)


def _bound(value: object, key: str, where: str) -> datetime:
    """An aware UTC datetime; a date `to` means through the end of that day."""
    moment = _moment(value)
    if moment is None:
        raise ConfigError(f"{where}: {key} {_text(value)} is not a date or ISO datetime")
    if isinstance(moment, datetime):
        return _utc(moment)
    midnight = datetime.combine(moment, time(), tzinfo=timezone.utc)
    return midnight + timedelta(days=1) if key == "to" else midnight


def _moment(value: object) -> date | datetime | None:
    if isinstance(value, date):  # datetime is a date too
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return date.fromisoformat(text)  # a day without a time: `to` then takes all of it
    except ValueError:
        pass
    if text[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not read "Z"
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _cron(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: cron must be a text of 5 fields, not {_kind(value)}")
    fields = value.split()
    if len(fields) != 5:
        raise ConfigError(f"{where}: cron '{value}' has {len(fields)} fields, not 5")
    expression = " ".join(fields)
    for index, field in enumerate(fields):
        # One field at a time, the others "*", to name the field that croniter refuses.
        alone = " ".join(field if i == index else "*" for i in range(5))
        if not croniter.is_valid(alone):
            raise ConfigError(
                f"{where}: cron '{expression}': {CRON_FIELDS[index]} field '{field}' is not valid"
            )
    try:
        croniter(expression, _PROBE).get_next(datetime)
    except CroniterBadDateError:
        raise ConfigError(f"{where}: cron '{expression}' never matches") from None
    except CroniterError as exc:
        raise ConfigError(f"{where}: cron '{expression}' is not valid: {exc}") from None
    return expression


def _next_start(window: FreezeWindow, now: datetime) -> datetime | None:
    """The next start after `now` of a window not active at `now`."""
    if window.cron is None:
        return window.start if window.start is not None and window.start > now else None
    try:
        # Not active now, so the first matching minute after now begins a frozen stretch.
        found: datetime = croniter(window.cron, now).get_next(datetime)
    except CroniterBadDateError:
        return None
    return found.astimezone(timezone.utc)


def _unreadable(request: ChangeRequest) -> str:
    if request.system == "gitlab":
        what, token = f"merge request !{request.number}", "CD_CHECKS_GITLAB_TOKEN (or GITLAB_TOKEN)"
        how = "read its approvals"
    else:
        what, token, how = f"pull request #{request.number}", "GITHUB_TOKEN", "read its reviews"
    if request.source == "commit message":
        return (
            f"{what} is named by the commit message only and could not be confirmed: "
            f"set {token} so the API can confirm it and {how}"
        )
    return f"the approvers of {what} could not be read: set {token} so the API can {how}"


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _midnight(moment: datetime) -> bool:
    return moment.time() == time()


def _show(moment: datetime) -> str:
    if _midnight(moment):
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


def _show_end(end: datetime) -> str:
    """An exclusive midnight end reads as the inclusive day before it."""
    return _show(end - timedelta(days=1)) if _midnight(end) else _show(end)


def _text(value: object) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a text", int: "a number", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)
