"""The `github` format: GitHub Actions workflow commands, plus the step summary.

`render` gives one `::error`/`::warning` command a finding, which GitHub shows
as an annotation on the file and line of the pull request, and a `::notice` per
applied conftest exception (as conftest's github output), unless suppressed. `step_summary` gives
the Markdown the CLI appends to $GITHUB_STEP_SUMMARY, capped well below
GitHub's 1 MiB limit however many findings there are. `from_workspace` makes
paths relative to the checkout ($GITHUB_WORKSPACE, handed in by the CLI) when
the repository root is a subdirectory of it, since annotations and code
scanning resolve paths from the checkout. Names and messages are escaped the
way the runner unescapes them (`escape_data`, `escape_property`), so each finding
is exactly one command whatever its file is called; in the summary they cannot
close their code span or add links, images or HTML. This module never reads the
environment itself.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from cd_checks.findings import EXCEPTION, Finding, Report
from cd_checks.report.escaping import encodable, escape_controls
from cd_checks.report.wording import location, plural, rule_id, summary_line

_SUMMARY_HEADING = "## cd-checks validate"
_SEVERITY_ICON = {"error": ":x:", "warning": ":warning:"}
# Rows of the summary table: the first ones are read, the rest are in the
# annotations and the SARIF report. With the cell caps below a summary stays
# under about 150 KiB even when every character needs escaping, far below the
# 1 MiB GitHub accepts for one step.
SUMMARY_ROWS = 50
_CELL_CHARS = {"location": 300, "rule": 100, "message": 500}


def render(report: Report, *, color: bool = False) -> str:
    # A name that is not UTF-8 cannot reach the runner as it is: its bytes show escaped.
    listed = (*report.findings, *report.shown_exceptions)
    return encodable("".join(_command(finding) for finding in listed))


def step_summary(report: Report, *, rows: int = SUMMARY_ROWS) -> str:
    """A Markdown heading, the counts and a table of the first `rows` findings, errors first."""
    lines = [_SUMMARY_HEADING, ""]
    if not report.findings:
        return "\n".join([*lines, f":white_check_mark: {summary_line(report)}", ""])
    lines += [summary_line(report), "", "| Severity | Location | Rule | Message |"]
    lines.append("| --- | --- | --- | --- |")
    # Sorting is stable: within a severity the report's file/line order stays.
    ordered = sorted(report.findings, key=lambda finding: finding.severity != "error")
    lines += [_table_row(finding) for finding in ordered[:rows]]
    hidden = len(ordered) - rows
    if hidden > 0:
        lines += ["", f"... and {plural(hidden, 'more finding')}: {_WHERE_THE_REST_ARE}"]
    return "\n".join([*lines, ""])


_WHERE_THE_REST_ARE = (
    "see the annotations of this step, the SARIF report in code scanning, "
    "or run `cd-checks validate` locally."
)


def from_workspace(report: Report, root: Path, workspace: str | None) -> Report:
    """The report with paths relative to `workspace` when `root` lies below it."""
    if not workspace:
        return report
    try:
        prefix = root.resolve().relative_to(Path(workspace).resolve()).as_posix()
    except ValueError:
        return report  # a root outside the checkout: nothing better to say
    if prefix == ".":
        return report
    moved = tuple(replace(f, path=f"{prefix}/{f.path}") for f in report.findings)
    excepted = tuple(replace(f, path=f"{prefix}/{f.path}") for f in report.exceptions)
    return replace(report, findings=moved, exceptions=excepted)


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
    # The file= property keeps the real name (GitHub attaches the annotation by it);
    # the message shows its control characters escaped, as in the text format.
    command = "notice" if finding.severity == EXCEPTION else finding.severity
    return f"::{command} {joined}::{escape_data(escape_controls(finding.message))}\n"


def _table_row(finding: Finding) -> str:
    cells = [
        f"{_SEVERITY_ICON[finding.severity]} {finding.severity}",
        _code(_clip(location(finding), _CELL_CHARS["location"])),
        _code(_clip(rule_id(finding), _CELL_CHARS["rule"])),
        _markdown_text(_clip(escape_controls(finding.message), _CELL_CHARS["message"])),
    ]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _code(text: str) -> str:
    """A code span that `text` cannot close: the fence is longer than any run of backticks
    in it (CommonMark), padded with a space when the text starts or ends with one."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded}{fence}"


# Markdown a finding's message could use to add a link, an image, a code span or HTML.
_MARKDOWN_SPECIAL = re.compile(r"([\\`\[\]])")
_HTML_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _markdown_text(text: str) -> str:
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return re.sub("[&<>]", lambda found: _HTML_SPECIAL[found[0]], escaped)


def _cell(text: str) -> str:
    """Keep a table cell on one row: escape pipes, turn newlines into <br>."""
    return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")
