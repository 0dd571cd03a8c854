"""The `json` format: the report as a stable, versioned JSON document.

Shape: `{"version": 1, "summary": {"files", "errors", "warnings"}, "findings": [...]}`
with each finding as `Finding.to_dict()`. Key order is fixed; bump `version` on
any incompatible change, since scripts read this. Control and other invisible
characters are `\\u` escapes (`report.escaping.defuse_json`): same value, safe log.
"""

from __future__ import annotations

import json
from typing import Any

from cd_checks.findings import Report
from cd_checks.report.escaping import defuse_json

VERSION = 1


def render(report: Report, *, color: bool = False) -> str:
    return defuse_json(json.dumps(_document(report), indent=2, ensure_ascii=False)) + "\n"


def _document(report: Report) -> dict[str, Any]:
    return {
        "version": VERSION,
        "summary": {"files": report.files, "errors": report.errors, "warnings": report.warnings},
        "findings": [finding.to_dict() for finding in report.findings],
    }
