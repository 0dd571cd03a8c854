"""Wording shared by the human-readable formats: where a finding is, and the counts.

Pure string functions over `Finding` and `Report`; no format-specific markup.
Paths and rule names are escaped here (`report.escaping`): a person reads them.
"""

from __future__ import annotations

from cd_checks.findings import Finding, Report, namespace_of
from cd_checks.report.escaping import escape_controls, quote_path


def plural(count: int, word: str) -> str:
    """`1 error`, `2 errors`, `0 files`."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def location(finding: Finding) -> str:
    """`path:line:col` without the unknown parts; an unusual path quoted as git quotes it."""
    parts = [quote_path(finding.path)]
    if finding.line is not None:
        parts.append(str(finding.line))
        if finding.column is not None:
            parts.append(str(finding.column))
    return ":".join(parts)


def rule_id(finding: Finding) -> str:
    """The `check/rule` name a user passes to ignore or look up a rule."""
    return escape_controls(f"{finding.check}/{finding.rule}", keep="")


def summary_line(report: Report) -> str:
    """`3 errors, 1 warning in 12 files`, or `no problems in 12 files`; applied
    exceptions are counted too (`no problems, 1 exception in 2 files`), also when
    suppressed, as conftest's summary does."""
    counts = [
        plural(count, word)
        for count, word in ((report.errors, "error"), (report.warnings, "warning"))
        if count
    ]
    problems = ", ".join(counts) if counts else "no problems"
    if report.exceptions:
        problems += f", {plural(len(report.exceptions), 'exception')}"
    return f"{problems} in {plural(report.files, 'file')}"


def exception_line(finding: Finding) -> str:
    """conftest's line for an applied exception:
    `EXCP - deployments.yaml - main - data.main.exception[_][_] == "run_as_root"`."""
    where = quote_path(finding.path)
    namespace = escape_controls(namespace_of(finding), keep="")
    return f"EXCP - {where} - {namespace} - {escape_controls(finding.message)}"
