"""Wording shared by the human-readable formats: where a finding is, and the counts.

Pure string functions over `Finding` and `Report`; no format-specific markup.
"""

from __future__ import annotations

from cd_checks.findings import Finding, Report


def plural(count: int, word: str) -> str:
    """`1 error`, `2 errors`, `0 files`."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def location(finding: Finding) -> str:
    """`path:line:col`, leaving out the parts that are unknown."""
    parts = [finding.path]
    if finding.line is not None:
        parts.append(str(finding.line))
        if finding.column is not None:
            parts.append(str(finding.column))
    return ":".join(parts)


def rule_id(finding: Finding) -> str:
    """The `check/rule` name a user passes to ignore or look up a rule."""
    return f"{finding.check}/{finding.rule}"


def summary_line(report: Report) -> str:
    """`3 errors, 1 warning in 12 files`, or `no problems in 12 files`."""
    counts = [
        plural(count, word)
        for count, word in ((report.errors, "error"), (report.warnings, "warning"))
        if count
    ]
    problems = ", ".join(counts) if counts else "no problems"
    return f"{problems} in {plural(report.files, 'file')}"
