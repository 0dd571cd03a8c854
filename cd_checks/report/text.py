"""The `text` format: findings grouped by file for a person at a terminal.

One line per finding, `path:line:col  severity  check/rule  message` (further lines of a
multi-line message indented), a blank line between files, then the summary line. An
applied conftest exception is a line in conftest's words after the file's findings
(`EXCP - path - namespace - query`), unless suppressed; with --trace, the evaluation
trace comes first, as conftest prints it (`file: F | query: Q`, `TRAC ...`). ANSI
colour only when the caller asks for it (the CLI decides from --color, NO_COLOR,
FORCE_COLOR, TERM and whether stdout is a TTY). Unusual paths are quoted as git quotes
them and control characters in messages escaped, so a file name or message cannot
start a line, move the cursor or run a CI workflow command (`report.escaping`).
"""

from __future__ import annotations

from collections.abc import Iterator

from cd_checks.findings import Finding, Level, Report
from cd_checks.report.escaping import defuse_text, escape_controls
from cd_checks.report.wording import exception_line, location, rule_id, summary_line

_RESET = "\033[0m"
_BOLD = "\033[1m"
_DIM = "\033[2m"
_RED = "\033[31m"
_YELLOW = "\033[33m"
_GREEN = "\033[32m"
_CYAN = "\033[36m"
_BLUE = "\033[34m"
_SEVERITY_STYLE: dict[Level, str] = {
    "error": _BOLD + _RED,
    "warning": _YELLOW,
    "exception": _CYAN,
    "trace": _BLUE,
}
# Padded to the longest severity so the rule and message columns line up.
_SEVERITY_WIDTH = max(len(name) for name in ("error", "warning"))
_CONTINUATION = "    "


def render(report: Report, *, color: bool = False) -> str:
    return "".join(chunks(report, color=color))


def chunks(report: Report, *, color: bool = False) -> Iterator[str]:
    """The rendered report a file at a time, for writing as it is made."""
    excepted: dict[str, list[Finding]] = {}
    for exception in report.shown_exceptions:
        excepted.setdefault(exception.path, []).append(exception)
    if report.traces:  # conftest's trace: `file: F | query: Q`, then its TRAC lines
        yield defuse_text("".join(_trace(f, color=color) for f in report.traces)) + "\n"
    groups = report.by_path()
    for path in sorted({*groups, *excepted}):
        lines = [_line(f, color=color) for f in groups.get(path, ())]
        lines += [_exception(f, color=color) for f in excepted.get(path, ())]
        yield defuse_text("".join(lines)) + "\n"
    yield defuse_text(_summary(report, color=color))


def _line(finding: Finding, *, color: bool) -> str:
    severity = finding.severity.ljust(_SEVERITY_WIDTH)
    where, rule = location(finding), rule_id(finding)
    if color:
        where = _paint(where, _BOLD)
        severity = _paint(severity, _SEVERITY_STYLE[finding.severity])
        rule = _paint(rule, _DIM)
    # Continuation lines of a long message are indented so each finding still
    # starts a line with its location.
    message = escape_controls(finding.message).replace("\n", "\n" + _CONTINUATION)
    return f"{where}  {severity}  {rule}  {message}\n"


def _exception(finding: Finding, *, color: bool) -> str:
    line = exception_line(finding)
    return (_paint("EXCP", _CYAN) + line[4:] if color else line) + "\n"


def _trace(finding: Finding, *, color: bool) -> str:
    """A line of the evaluation trace as the engine wrote it (`TRAC  ...`, `PRNT  ...`)."""
    line = escape_controls(finding.message)
    return (_paint(line, _BLUE) if color else line) + "\n"


def _summary(report: Report, *, color: bool) -> str:
    line = summary_line(report)
    if not color:
        return line + "\n"
    style = (
        _RED
        if report.errors
        else _YELLOW
        if report.warnings
        else _CYAN
        if report.exceptions
        else _GREEN
    )
    return _paint(line, _BOLD + style) + "\n"


def _paint(text: str, style: str) -> str:
    return f"{style}{text}{_RESET}"
