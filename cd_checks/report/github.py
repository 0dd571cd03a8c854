"""The `github` format: GitHub Actions workflow commands, plus the step summary.

`render` gives one `::error`/`::warning` command a finding, which GitHub shows
as an annotation on the file and line of the pull request. `step_summary` gives
the Markdown the CLI appends to $GITHUB_STEP_SUMMARY; this module never reads
the environment itself.
"""

from __future__ import annotations

from cd_checks.findings import Finding, Report
from cd_checks.report.wording import location, rule_id, summary_line

_SUMMARY_HEADING = "## cd-checks validate"
_SEVERITY_ICON = {"error": ":x:", "warning": ":warning:"}


def render(report: Report, *, color: bool = False) -> str:
    return "".join(_command(finding) for finding in report.findings)


def step_summary(report: Report) -> str:
    """A Markdown heading, the counts and a table of the findings."""
    lines = [_SUMMARY_HEADING, ""]
    if not report.findings:
        return "\n".join([*lines, f":white_check_mark: {summary_line(report)}", ""])
    lines += [summary_line(report), "", "| Severity | Location | Rule | Message |"]
    lines.append("| --- | --- | --- | --- |")
    lines += [_table_row(finding) for finding in report.findings]
    return "\n".join([*lines, ""])


def escape_data(value: str) -> str:
    """Escape a command's message the way the Actions runner unescapes it."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a command property (file, title, ...): data escaping plus `:` and `,`."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _command(finding: Finding) -> str:
    properties = [("file", finding.path)]
    if finding.line is not None:
        properties.append(("line", str(finding.line)))
        if finding.column is not None:
            properties.append(("col", str(finding.column)))
    properties.append(("title", rule_id(finding)))
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::{finding.severity} {joined}::{escape_data(finding.message)}\n"


def _table_row(finding: Finding) -> str:
    cells = [
        f"{_SEVERITY_ICON[finding.severity]} {finding.severity}",
        f"`{location(finding)}`",
        f"`{rule_id(finding)}`",
        finding.message,
    ]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str) -> str:
    """Keep a table cell on one row: escape pipes, turn newlines into <br>."""
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")
