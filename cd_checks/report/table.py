"""The `table` format: conftest's `--output table`, a box-drawn table for a terminal.

Columns RESULT, FILE, NAMESPACE, MESSAGE (headers centred, cells left-aligned,
one space of padding), one row per success, exception, warning and failure of
each file and namespace (`report.conftest_results`), in conftest's order. An
empty report prints nothing, as conftest. A message of several lines takes
several lines of its row; long messages are not wrapped.
"""

from __future__ import annotations

from collections.abc import Sequence

from cd_checks.findings import Report
from cd_checks.report.conftest_results import CheckResult, check_results
from cd_checks.report.escaping import defuse_text, escape_controls, quote_path

HEADER = ("RESULT", "FILE", "NAMESPACE", "MESSAGE")


def render(report: Report, *, color: bool = False) -> str:
    rows = [row for result in check_results(report) for row in _rows(result)]
    if not rows:
        return ""
    cells = [[cell.split("\n") for cell in row] for row in rows]
    widths = [
        max([len(HEADER[i]), *(len(line) for row in cells for line in row[i])])
        for i in range(len(HEADER))
    ]
    lines = [_rule("┌", "┬", "┐", widths), _header(widths), _rule("├", "┼", "┤", widths)]
    for row in cells:
        lines += _row(row, widths)
    lines.append(_rule("└", "┴", "┘", widths))
    return defuse_text("\n".join(lines) + "\n")


def _rows(result: CheckResult) -> list[tuple[str, str, str, str]]:
    file, namespace = quote_path(result.filename), escape_controls(result.namespace, keep="")
    rows = [("success", file, namespace, "SUCCESS")] * result.successes
    for label, found in (
        ("exception", result.exceptions),
        ("warning", result.warnings),
        ("failure", result.failures),
    ):
        rows += [(label, file, namespace, escape_controls(f.message)) for f in found]
    return rows


def _rule(left: str, middle: str, right: str, widths: Sequence[int]) -> str:
    return left + middle.join("─" * (width + 2) for width in widths) + right


def _header(widths: Sequence[int]) -> str:
    cells = []
    for title, width in zip(HEADER, widths, strict=True):
        before = (width - len(title)) // 2
        cells.append(" " * before + title + " " * (width - len(title) - before))
    return "│ " + " │ ".join(cells) + " │"


def _row(row: list[list[str]], widths: Sequence[int]) -> list[str]:
    height = max(len(cell) for cell in row)
    lines = []
    for index in range(height):
        parts = [
            (cell[index] if index < len(cell) else "").ljust(width)
            for cell, width in zip(row, widths, strict=True)
        ]
        lines.append("│ " + " │ ".join(parts) + " │")
    return lines
