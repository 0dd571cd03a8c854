"""The `json` format: the report as a stable, versioned JSON document.

Shape: `{"version": 1, "summary": {"files", "errors", "warnings"}, "findings":
[...]}` with each finding as `Finding.to_dict()`. A run with applied conftest
exceptions also has `summary.exceptions` (their count) and `"exceptions": [...]`
before `findings` (each a finding of severity `exception`; left out with --suppress-
exceptions, the count stays): keys added only then, so existing readers see what
they saw. Key order is fixed; bump `version` on any incompatible change, since
scripts read this. Control and other invisible characters are `\\u` escapes
(`report.escaping.defuse_json`): same value, safe log. The text is exactly
`json.dumps(document, indent=2, ensure_ascii=False)`, written finding by finding
with the C string encoder (an indented dump runs the pure-Python encoder: seconds
for tens of thousands of findings), so it can be streamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from cd_checks.findings import Report
from cd_checks.report.escaping import defuse_json

VERSION = 1
# Findings written per chunk when streamed: few writes, little held at once.
BATCH = 500


def render(report: Report, *, color: bool = False) -> str:
    return "".join(chunks(report, color=color))


def chunks(report: Report, *, color: bool = False) -> Iterator[str]:
    """The rendered document in pieces, for writing as it is made."""
    head: dict[str, Any] = {"version": VERSION, "summary": _summary(report)}
    if report.shown_exceptions:
        head["exceptions"] = [f.to_dict() for f in report.shown_exceptions]
    head["findings"] = []
    text = json.dumps(head, indent=2, ensure_ascii=False)
    if not report.findings:
        yield defuse_json(text) + "\n"
        return
    # `"findings": []` ends the document: open the list there and fill it in.
    yield defuse_json(text.removesuffix("[]\n}") + "[\n")
    for start in range(0, len(report.findings), BATCH):
        body = _findings([f.to_dict() for f in report.findings[start : start + BATCH]])
        last = start + BATCH >= len(report.findings)
        yield defuse_json(body + ("\n" if last else ",\n"))
    yield "  ]\n}\n"


def _summary(report: Report) -> dict[str, int]:
    summary = {"files": report.files, "errors": report.errors, "warnings": report.warnings}
    if report.exceptions:
        summary["exceptions"] = len(report.exceptions)
    return summary


# Between two members of a finding, as `indent=2` puts them four levels in.
_MEMBER = ",\n      "


def _findings(items: list[dict[str, Any]]) -> str:
    """Findings as `json.dumps(..., indent=2)` writes them four levels in, with one call
    of the C encoder: the indent is in the separator. A raw newline never occurs inside
    a JSON string, so `},<newline>` only ever stands between two findings (a finding's
    members are scalars; were one not, only the layout would differ, never the value)."""
    flat = json.dumps(items, ensure_ascii=False, separators=(_MEMBER, ": "))
    between = flat[2:-2].replace("}" + _MEMBER + "{", "\n    },\n    {\n      ")
    return f"    {{\n      {between}\n    }}"
