"""The `gitlab` format: a GitLab Code Quality report (`artifacts:reports:codequality`).

A JSON list with one issue per finding, which GitLab shows in the merge request
widget and the diff. The fingerprint is a stable hash of what identifies a
finding, so GitLab can tell new problems from fixed ones between pipelines.
An applied conftest exception is an `info` issue, so the widget shows what was
excepted (--suppress-exceptions leaves them out).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cd_checks.findings import Finding, Level, Report
from cd_checks.report.escaping import defuse_json
from cd_checks.report.wording import rule_id

_SEVERITY: dict[Level, str] = {"error": "major", "warning": "minor", "exception": "info"}


def render(report: Report, *, color: bool = False) -> str:
    issues = [_issue(finding) for finding in (*report.findings, *report.shown_exceptions)]
    return defuse_json(json.dumps(issues, indent=2, ensure_ascii=False)) + "\n"


def fingerprint(finding: Finding) -> str:
    """md5 hex of path, check/rule, line, column and message; stable across runs."""
    parts = [finding.path, rule_id(finding), str(finding.line), str(finding.column)]
    key = "\0".join([*parts, finding.message])
    raw = key.encode("utf-8", "surrogateescape")  # a name that is not UTF-8 keeps its bytes
    return hashlib.md5(raw, usedforsecurity=False).hexdigest()


def _issue(finding: Finding) -> dict[str, Any]:
    return {
        "description": finding.message,
        "check_name": rule_id(finding),
        "fingerprint": fingerprint(finding),
        "severity": _SEVERITY[finding.severity],
        "location": {"path": finding.path, "lines": {"begin": finding.line or 1}},
    }
