"""The `sarif` format: SARIF 2.1.0 for GitHub code scanning and other viewers.

One run whose driver is cd-checks, with a rule per `check/rule` that occurs and
a result per finding. Paths stay relative to %SRCROOT% (the repository root), so
code scanning can link them; a region is given only when the line is known,
since SARIF requires startLine >= 1. An applied conftest exception is a result of
level `note` carrying an in-source suppression (the policy's own `exception` rule),
so viewers such as code scanning show it as suppressed, not as an open alert;
--suppress-exceptions leaves them out.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from cd_checks import __version__
from cd_checks.findings import EXCEPTION, Finding, Report
from cd_checks.report.escaping import defuse_json
from cd_checks.report.wording import rule_id

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SRCROOT = "%SRCROOT%"


def render(report: Report, *, color: bool = False) -> str:
    listed = (*report.findings, *report.shown_exceptions)
    rule_ids = sorted({rule_id(finding) for finding in listed})
    rule_index = {identifier: index for index, identifier in enumerate(rule_ids)}
    run = {
        "tool": {"driver": _driver(rule_ids)},
        "results": [_result(f, rule_index[rule_id(f)]) for f in listed],
        "columnKind": "unicodeCodePoints",
    }
    log = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return defuse_json(json.dumps(log, indent=2, ensure_ascii=False)) + "\n"


def _driver(rule_ids: list[str]) -> dict[str, Any]:
    return {
        "name": "cd-checks",
        "version": __version__,
        "rules": [_rule(identifier) for identifier in rule_ids],
    }


def _rule(identifier: str) -> dict[str, Any]:
    check, _, rule = identifier.partition("/")
    return {
        "id": identifier,
        "name": identifier,
        "shortDescription": {"text": f"cd-checks {check} check, rule {rule}"},
        "properties": {"tags": [check]},
    }


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": rule_id(finding),
        "ruleIndex": rule_index,
        "level": "note" if finding.severity == EXCEPTION else finding.severity,
        "message": {"text": finding.message},
        "locations": [{"physicalLocation": _physical_location(finding)}],
    }
    if finding.severity == EXCEPTION:
        result["suppressions"] = [{"kind": "inSource", "justification": finding.message}]
    return result


def _physical_location(finding: Finding) -> dict[str, Any]:
    # The bytes of a name that is not UTF-8 come back as themselves (%XX).
    uri = quote(finding.path, safe="/", errors="surrogateescape")
    artifact = {"uri": uri, "uriBaseId": SRCROOT}
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if finding.line is not None and finding.line >= 1:
        region = {"startLine": finding.line}
        if finding.column is not None and finding.column >= 1:
            region["startColumn"] = finding.column
        physical["region"] = region
    return physical
