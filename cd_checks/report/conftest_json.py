"""The `conftest-json` format: conftest's `--output json`, key for key, for tools that parse it.

A list of check results, one per file and namespace (`report.conftest_results`):
`filename`, `namespace`, `successes`, then `warnings`, `failures` and `exceptions`
when not empty, each result `{"msg": ...}` plus `loc: {file, line}` (the policy's `_loc`, else
the finding's place when its line is known) and `metadata` (the result object's other
keys). Written as conftest writes it: tab-indented, `<`, `>` and `&` escaped
as Go's encoder does, and standard input named "" (conftest's `-` becomes "").
cd-checks' own metadata (check, rule, column) is in `--format json`, not here.
"""

from __future__ import annotations

import json
from typing import Any

from cd_checks.findings import Finding, Report
from cd_checks.report.conftest_results import STDIN, CheckResult, check_results
from cd_checks.report.escaping import defuse_json

# Go's encoding/json escapes these inside strings (they only occur inside strings).
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def render(report: Report, *, color: bool = False) -> str:
    document = [_result(result) for result in check_results(report)]
    text = json.dumps(document, indent="\t", ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES.items():
        text = text.replace(raw, escaped)
    return defuse_json(text) + "\n"


def _result(result: CheckResult) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "filename": "" if result.filename == STDIN else result.filename,
        "namespace": result.namespace,
        "successes": result.successes,
    }
    for key in ("warnings", "failures", "exceptions"):
        found: list[Finding] = getattr(result, key)
        if found:
            shown[key] = [_message(finding) for finding in found]
    return shown


def _message(finding: Finding) -> dict[str, Any]:
    """conftest's Result: `msg`, `loc` (the policy's `_loc`, else the finding's place when
    its line is known), `metadata` (the result's other keys), as output/result.go NewResult."""
    message: dict[str, Any] = {"msg": finding.message}
    extra = dict(finding.metadata)
    loc = _policy_loc(extra.pop("_loc", None))
    if loc is not None:
        message["loc"] = loc
    elif finding.line is not None:
        message["loc"] = {"file": finding.path, "line": finding.line}
    if extra:
        message["metadata"] = extra
    return message


def _policy_loc(value: Any) -> dict[str, Any] | None:
    """conftest's parseLocation: a string `file` and a number `line`, each when given;
    None when neither is."""
    if not isinstance(value, dict):
        return None
    loc: dict[str, Any] = {}
    if isinstance(value.get("file"), str) and value["file"]:
        loc["file"] = value["file"]
    line = value.get("line")
    if isinstance(line, int | float) and not isinstance(line, bool):
        loc["line"] = int(line) if float(line).is_integer() else line
    return loc or None
