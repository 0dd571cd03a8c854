"""The `junit` format: JUnit XML for GitLab test reports and Jenkins.

One <testsuite> per check family (syntax, schema, policy) that has findings;
in it one <testcase> per file, named by the file's path. A file with an error
is a <failure> whose text lists every finding of that family in the file,
`path:line:col  severity  check/rule  message`, one a line. A file with only
warnings passes and lists them in <system-out>: warnings do not fail the
default `--fail-on error`, so they must not show as failed tests. A file whose
only policy results are applied conftest exceptions is a <skipped> testcase (the
rule was excepted, not passed), its exceptions listed like findings. A clean run
is one passing testcase, so the report is never empty. Unusual paths are quoted
as git quotes them, characters XML cannot hold are replaced, and no line of the
document reads as a CI workflow command (`report.escaping.defuse_xml`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from cd_checks.findings import CHECKS, Finding, Report
from cd_checks.report.escaping import defuse_xml, quote_path
from cd_checks.report.wording import location, plural, rule_id, summary_line

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
# XML 1.0 cannot carry these code points even escaped; ElementTree writes them raw.
# (Surrogates are the bytes of a name that is not UTF-8: no encoding can write them.)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def render(report: Report, *, color: bool = False) -> str:
    listed = (*report.findings, *report.shown_exceptions)
    found = [_suite(check, listed) for check in CHECKS]
    suites = [suite for suite in found if suite is not None] or [_clean_suite(report)]
    root = ET.Element("testsuites", name="cd-checks")
    root.extend(suites)
    _set_counts(root)
    ET.indent(root)
    return defuse_xml(_DECLARATION + ET.tostring(root, encoding="unicode") + "\n")


def _suite(check: str, findings: Sequence[Finding]) -> ET.Element | None:
    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.check == check:
            by_path.setdefault(finding.path, []).append(finding)
    if not by_path:
        return None
    suite = ET.Element("testsuite", name=check)
    suite.extend(_testcase(check, path, group) for path, group in sorted(by_path.items()))
    _set_counts(suite)
    return suite


def _testcase(check: str, path: str, findings: list[Finding]) -> ET.Element:
    name = quote_path(path)
    case = ET.Element("testcase", classname=check, name=name, file=name)
    body = _xml_safe("".join(_line(finding) for finding in findings))
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = sum(1 for f in findings if f.severity == "warning")
    if errors:
        counts = plural(errors, "error") + (f", {plural(warnings, 'warning')}" if warnings else "")
        failure = ET.SubElement(case, "failure", message=counts, type="error")
        failure.text = body
        return case
    if not warnings:  # only exceptions: the rules were excepted, not passed
        excepted = plural(len(findings), "exception")
        ET.SubElement(case, "skipped", message=f"{excepted} applied")
    ET.SubElement(case, "system-out").text = body
    return case


def _clean_suite(report: Report) -> ET.Element:
    suite = ET.Element("testsuite", name="cd-checks")
    case = ET.SubElement(suite, "testcase", classname="cd-checks", name="validate")
    ET.SubElement(case, "system-out").text = summary_line(report) + "\n"
    _set_counts(suite)
    return suite


def _set_counts(element: ET.Element) -> None:
    """Set tests/failures/errors(/skipped) from the testcases below `element`."""
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(1 for case in cases if case.find("failure") is not None)))
    element.set("errors", "0")
    if element.tag == "testsuite":
        skipped = sum(1 for case in cases if case.find("skipped") is not None)
        element.set("skipped", str(skipped))


def _line(finding: Finding) -> str:
    return f"{location(finding)}  {finding.severity}  {rule_id(finding)}  {finding.message}\n"


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
