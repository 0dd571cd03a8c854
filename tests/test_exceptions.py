"""The expiring-exceptions file: loading, malformed entries, suppression, expiry, unused."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from cd_checks import exceptions
from cd_checks.exceptions import PolicyException
from cd_checks.findings import Finding

TODAY = datetime.date(2026, 11, 27)
FILE = ".cd-checks-exceptions.yml"

VALID = """\
# exceptions reviewed in OPS-100
exceptions:
  - rule: NGINX-005
    paths: ["nginx/sites/legacy.conf"]
    reason: "legacy uploader needs the default body size; ticket OPS-123"
    expires: 2027-01-31
  - rule: MON-005
    paths: "monitoring/alerts/*.yml"
    reason: runbooks are being migrated, OPS-456
    expires: "2026-12-15"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / FILE
    path.write_text(text, "utf-8")
    return path


def policy(path: str, rule: str, line: int = 3) -> Finding:
    return Finding(path, line, 5, "policy", rule, "error", f"{rule} fired")


def exception(
    rule: str, *paths: str, expires: str = "2027-01-31", line: int = 2
) -> PolicyException:
    return PolicyException(rule, paths, "ticket OPS-1", datetime.date.fromisoformat(expires), line)


def test_loads_entries_with_lines(tmp_path: Path) -> None:
    loaded, problems = exceptions.load(write(tmp_path, VALID))
    assert problems == []
    assert loaded == [
        PolicyException(
            "NGINX-005",
            ("nginx/sites/legacy.conf",),
            "legacy uploader needs the default body size; ticket OPS-123",
            datetime.date(2027, 1, 31),
            3,
        ),
        PolicyException(
            "MON-005",
            ("monitoring/alerts/*.yml",),
            "runbooks are being migrated, OPS-456",
            datetime.date(2026, 12, 15),
            7,
        ),
    ]


def test_missing_or_empty_file_is_no_exceptions(tmp_path: Path) -> None:
    assert exceptions.load(tmp_path / FILE) == ([], [])
    assert exceptions.load(write(tmp_path, "")) == ([], [])
    assert exceptions.load(write(tmp_path, "exceptions:\n")) == ([], [])


@pytest.mark.parametrize(
    ("entry", "line", "words"),
    [
        ("  - rule: NGINX-001\n    paths: [a]\n    expires: 2027-01-01\n", 2, "no reason"),
        (
            "  - rule: NGINX-001\n    paths: [a]\n    reason: ''\n    expires: 2027-01-01\n",
            4,
            "reason",
        ),
        (
            "  - rule: NGINX-001\n    paths: [a]\n    reason: r\n    expires: soon\n",
            5,
            "not a date",
        ),
        (
            "  - rule: NGINX-001\n    paths: [a]\n    reason: r\n    expires: 2027-13-01\n",
            5,
            "not a date",
        ),
        ("  - rule: NGINX-001\n    paths: [a]\n    reason: r\n", 2, "no expires"),
        ("  - paths: [a]\n    reason: r\n    expires: 2027-01-01\n", 2, "no rule"),
        ("  - rule: NGINX-001\n    reason: r\n    expires: 2027-01-01\n", 2, "no paths"),
        (
            "  - rule: NGINX-001\n    paths: []\n    reason: r\n    expires: 2027-01-01\n",
            3,
            "paths",
        ),
        (
            "  - rule: X-1\n    path: a\n    paths: [a]\n    reason: r\n    expires: 2027-01-01\n",
            3,
            "unknown key 'path'",
        ),
        ("  - NGINX-001\n", 2, "mapping"),
    ],
)
def test_malformed_entry_is_a_finding_not_an_exception(
    tmp_path: Path, entry: str, line: int, words: str
) -> None:
    loaded, problems = exceptions.load(
        write(tmp_path, "exceptions:\n" + entry), display="ops/exc.yml"
    )
    assert loaded == []
    assert len(problems) == 1
    (problem,) = problems
    assert (problem.path, problem.line, problem.rule, problem.severity) == (
        "ops/exc.yml",
        line,
        "exceptions/invalid",
        "error",
    )
    assert words in problem.message


def test_good_entries_survive_a_bad_neighbour(tmp_path: Path) -> None:
    text = VALID + "  - rule: AGENT-003\n    paths: [agents/x.yml]\n    expires: 2027-01-01\n"
    loaded, problems = exceptions.load(write(tmp_path, text))
    assert [e.rule for e in loaded] == ["NGINX-005", "MON-005"]
    assert [(p.line, p.rule) for p in problems] == [(11, "exceptions/invalid")]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("exceptions: [\n", 2, "invalid YAML"),
        ("- rule: X\n", 1, "top level"),
        ("exceptions: {rule: X}\n", 1, "must be a list"),
        ("excepts: []\n", 1, "unknown key 'excepts'"),
    ],
)
def test_malformed_file_is_a_finding(tmp_path: Path, text: str, line: int, words: str) -> None:
    loaded, problems = exceptions.load(write(tmp_path, text))
    assert loaded == []
    assert [(p.path, p.line, p.rule) for p in problems] == [(FILE, line, "exceptions/invalid")]
    assert words in problems[0].message


def test_live_exception_drops_matching_policy_findings_only() -> None:
    findings = [
        policy("nginx/sites/legacy.conf", "NGINX-005"),
        policy("nginx/sites/legacy.conf", "NGINX-001"),
        policy("nginx/sites/shop.conf", "NGINX-005"),
        Finding("nginx/sites/legacy.conf", 1, 1, "schema", "NGINX-005", "error", "not policy"),
    ]
    kept = exceptions.apply(
        findings,
        [exception("NGINX-005", "nginx/sites/legacy.conf")],
        today=TODAY,
        exceptions_path=FILE,
    )
    assert kept == findings[1:]


def test_globs_use_gitwildmatch() -> None:
    findings = [
        policy("monitoring/alerts/edge/nginx.yml", "MON-005"),
        policy("other/a.yml", "MON-005"),
    ]
    kept = exceptions.apply(
        findings, [exception("MON-005", "monitoring/**/*.yml")], today=TODAY, exceptions_path=FILE
    )
    assert kept == [findings[1]]


def test_exception_is_valid_through_its_expiry_date() -> None:
    findings = [policy("a.conf", "NGINX-003")]
    on_the_day = exception("NGINX-003", "a.conf", expires=TODAY.isoformat())
    assert exceptions.apply(findings, [on_the_day], today=TODAY, exceptions_path=FILE) == []


def test_expired_exception_is_an_error_and_its_findings_come_back() -> None:
    findings = [policy("a.conf", "NGINX-003"), policy("b.conf", "NGINX-003")]
    expired = exception("NGINX-003", "*.conf", expires="2026-11-26", line=9)
    kept = exceptions.apply(findings, [expired], today=TODAY, exceptions_path="ops/exc.yml")
    assert kept[:2] == findings
    (report,) = kept[2:]
    assert (report.path, report.line, report.rule, report.severity) == (
        "ops/exc.yml",
        9,
        "exceptions/expired",
        "error",
    )
    assert "expired on 2026-11-26" in report.message
    assert "2 finding(s) are reported again" in report.message


def test_unused_live_exception_is_a_warning() -> None:
    findings = [policy("a.conf", "NGINX-003")]
    unused = exception("NGINX-002", "a.conf", line=12)
    kept = exceptions.apply(findings, [unused], today=TODAY, exceptions_path=FILE)
    assert kept[0] == findings[0]
    (report,) = kept[1:]
    assert (report.path, report.line, report.rule, report.severity) == (
        FILE,
        12,
        "exceptions/unused",
        "warning",
    )


def test_expired_unused_exception_reports_expired_only() -> None:
    stale = exception("NGINX-002", "a.conf", expires="2025-01-01")
    (report,) = exceptions.apply([], [stale], today=TODAY, exceptions_path=FILE)
    assert report.rule == "exceptions/expired"
    assert "no longer matches anything" in report.message


def test_exceptions_cannot_hide_exception_file_findings() -> None:
    own = Finding(FILE, 2, None, "policy", "exceptions/invalid", "error", "bad entry")
    sneaky = exception("exceptions/invalid", "*")
    kept = exceptions.apply([own], [sneaky], today=TODAY, exceptions_path=FILE)
    assert own in kept
