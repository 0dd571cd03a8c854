"""What each report format promises beyond its golden file.

SARIF validates against the official SARIF 2.1.0 schema (vendored in data/),
JUnit parses back with the right counts, GitHub commands are escaped the way
the runner unescapes them, GitLab issues have the Code Quality shape, text is
coloured only on request, and every format copes with a clean run.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cd_checks import __version__
from cd_checks.findings import Finding, Report, Severity
from cd_checks.report import FORMATS, github, gitlab

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
ANSI = re.compile("\033\\[[0-9;]*m")


def validate_sarif(text: str) -> dict[str, Any]:
    log: dict[str, Any] = json.loads(text)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]
    assert errors == []
    return log


def test_registry_has_cd_checks_and_conftest_formats() -> None:
    assert list(FORMATS) == [
        "text",
        "json",
        "junit",
        "sarif",
        "github",
        "gitlab",
        "conftest-json",
        "tap",
        "table",
    ]


def test_vendored_schema_is_the_official_sarif_2_1_0_schema() -> None:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    assert schema["properties"]["version"]["enum"] == ["2.1.0"]
    assert schema["definitions"]["region"]["properties"]["startLine"]["minimum"] == 1


def test_sarif_validates_against_the_schema(report: Report) -> None:
    log = validate_sarif(FORMATS["sarif"](report))
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "cd-checks"
    assert run["tool"]["driver"]["version"] == __version__
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert rule_ids == sorted({f"{f.check}/{f.rule}" for f in report.findings})
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]


def test_sarif_locations_are_relative_with_regions_only_when_known(report: Report) -> None:
    results = validate_sarif(FORMATS["sarif"](report))["runs"][0]["results"]
    located = {(r["ruleId"], r["level"]): r["locations"][0]["physicalLocation"] for r in results}
    no_line = located[("policy/server_tokens", "error")]
    assert no_line == {"artifactLocation": {"uri": "nginx/site.conf", "uriBaseId": "%SRCROOT%"}}
    assert located[("syntax/yaml", "error")]["region"] == {"startLine": 12, "startColumn": 3}
    assert located[("schema/required", "warning")]["region"] == {"startLine": 30}


def test_sarif_rejected_by_the_schema_when_broken(report: Report) -> None:
    # The schema check must be able to fail: a region with line 0 is invalid SARIF.
    log = json.loads(FORMATS["sarif"](report))
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    with pytest.raises(AssertionError):
        validate_sarif(json.dumps(log))


def test_sarif_uri_escapes_spaces() -> None:
    report = Report.build([Finding("my dir/a.yml", 1, 1, "syntax", "yaml", "error", "x")], 1)
    log = validate_sarif(FORMATS["sarif"](report))
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert uri["uri"] == "my%20dir/a.yml"


def test_junit_parses_back_with_counts(report: Report) -> None:
    root = ET.fromstring(FORMATS["junit"](report))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "2", "0")
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert list(suites) == ["syntax", "schema", "policy"]
    assert [suites[name].get("failures") for name in suites] == ["1", "0", "1"]
    failed = {
        str(case.get("name")): case
        for case in root.iter("testcase")
        if case.find("failure") is not None
    }
    assert sorted(failed) == ["nginx/site.conf", "roles/web/tasks/main.yml"]
    text = failed["nginx/site.conf"].findtext("failure") or ""
    assert text.startswith("nginx/site.conf  error  policy/server_tokens  server_tokens")
    syntax_case = suites["syntax"].find("testcase")
    assert syntax_case is not None
    assert "roles/web/tasks/main.yml:12:3  error  syntax/yaml" in (
        syntax_case.findtext("failure") or ""
    )


def test_junit_lists_warnings_without_failing(report: Report) -> None:
    root = ET.fromstring(FORMATS["junit"](report))
    schema_case = root.find("testsuite[@name='schema']/testcase")
    assert schema_case is not None
    assert schema_case.find("failure") is None
    assert "roles/web/tasks/main.yml:30  warning  schema/required" in (
        schema_case.findtext("system-out") or ""
    )


def test_junit_replaces_characters_xml_cannot_hold() -> None:
    finding = Finding("a.yml", 1, 1, "syntax", "yaml", "error", "bad byte \x01 here")
    root = ET.fromstring(FORMATS["junit"](Report.build([finding], 1)))
    assert "bad byte \ufffd here" in (root.findtext("testsuite/testcase/failure") or "")


def test_github_commands_carry_file_line_col_and_title(report: Report) -> None:
    lines = FORMATS["github"](report).splitlines()
    assert lines[0] == (
        "::warning file=cd-checks.yml,line=4,col=7,title=policy/canary_size"
        '::canary "size" is 20%25, above the 10%25 limit'
    )
    assert lines[1] == (
        "::error file=nginx/site.conf,title=policy/server_tokens"
        "::server_tokens must be off, got: on (100%25 of servers)%0Asee policies/nginx.rego"
    )
    assert lines[2] == (
        "::error file=roles/web/tasks/main.yml,line=12,col=3,title=syntax/yaml"
        "::mapping values are not allowed here"
    )


@pytest.mark.parametrize(
    ("raw", "data", "prop"),
    [
        ("100%", "100%25", "100%25"),
        ("a\r\nb", "a%0D%0Ab", "a%0D%0Ab"),
        ("%0A", "%250A", "%250A"),
        ("C:\\x,y", "C:\\x,y", "C%3A\\x%2Cy"),
        ("plain/path.yml", "plain/path.yml", "plain/path.yml"),
    ],
)
def test_github_escaping(raw: str, data: str, prop: str) -> None:
    assert github.escape_data(raw) == data
    assert github.escape_property(raw) == prop


def test_github_escapes_properties_in_commands() -> None:
    finding = Finding("odd,name:1.yml", 2, None, "syntax", "yaml", "error", "m")
    command = FORMATS["github"](Report.build([finding], 1))
    assert command == "::error file=odd%2Cname%3A1.yml,line=2,title=syntax/yaml::m\n"


def test_github_step_summary_has_heading_counts_and_table(report: Report) -> None:
    summary = github.step_summary(report)
    assert summary.startswith("## cd-checks validate\n")
    assert "2 errors, 2 warnings in 12 files" in summary
    rows = [line for line in summary.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(report.findings)  # header, separator, findings
    assert "`nginx/site.conf`" in summary
    assert "(100% of servers)<br>see policies/nginx.rego" in summary


def test_gitlab_code_quality_shape(report: Report) -> None:
    issues = json.loads(FORMATS["gitlab"](report))
    assert len(issues) == len(report.findings)
    for issue in issues:
        assert set(issue) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["severity"] in {"major", "minor"}
        assert re.fullmatch("[0-9a-f]{32}", issue["fingerprint"])
        assert set(issue["location"]) == {"path", "lines"}
        assert issue["location"]["lines"]["begin"] >= 1
    by_check = {issue["check_name"]: issue for issue in issues}
    assert by_check["syntax/yaml"]["severity"] == "major"
    assert by_check["syntax/yaml"]["location"] == {
        "path": "roles/web/tasks/main.yml",
        "lines": {"begin": 12},
    }
    assert by_check["schema/required"]["severity"] == "minor"
    assert by_check["policy/server_tokens"]["location"]["lines"] == {"begin": 1}


def test_gitlab_fingerprints_are_stable_and_distinct(report: Report) -> None:
    first = [issue["fingerprint"] for issue in json.loads(FORMATS["gitlab"](report))]
    again = [issue["fingerprint"] for issue in json.loads(FORMATS["gitlab"](report))]
    assert first == again
    assert len(set(first)) == len(first)
    moved = Finding("cd-checks.yml", 5, 7, "policy", "canary_size", "warning", "m")
    assert gitlab.fingerprint(moved) != gitlab.fingerprint(
        Finding("cd-checks.yml", 4, 7, "policy", "canary_size", "warning", "m")
    )


def test_text_is_plain_by_default_and_coloured_on_request(report: Report) -> None:
    plain = FORMATS["text"](report)
    coloured = FORMATS["text"](report, color=True)
    assert ANSI.search(plain) is None
    assert ANSI.search(coloured) is not None
    assert ANSI.sub("", coloured) == plain


def test_text_groups_by_file_and_ends_with_summary(report: Report) -> None:
    lines = FORMATS["text"](report).splitlines()
    assert lines[0] == "cd-checks.yml:4:7  warning  policy/canary_size  " + (
        'canary "size" is 20%, above the 10% limit'
    )
    nginx = "nginx/site.conf  error    policy/server_tokens  server_tokens must be off"
    assert nginx + ", got: on (100% of servers)" in lines
    assert "    see policies/nginx.rego" in lines
    assert (
        "roles/web/tasks/main.yml:30  warning  schema/required  'name' is a required property"
        in lines
    )
    assert lines[-1] == "2 errors, 2 warnings in 12 files"
    assert lines.count("") == 3  # between the three files and before the summary


def test_json_document(report: Report) -> None:
    document = json.loads(FORMATS["json"](report))
    assert list(document) == ["version", "summary", "findings"]
    assert document["version"] == 1
    assert document["summary"] == {"files": 12, "errors": 2, "warnings": 2}
    assert [Finding.from_dict(raw) for raw in document["findings"]] == list(report.findings)


@pytest.mark.parametrize(
    ("errors", "warnings", "files", "line"),
    [
        (0, 0, 1, "no problems in 1 file"),
        (1, 0, 3, "1 error in 3 files"),
        (0, 1, 2, "1 warning in 2 files"),
        (3, 1, 12, "3 errors, 1 warning in 12 files"),
    ],
)
def test_text_summary_line(errors: int, warnings: int, files: int, line: str) -> None:
    error: Severity = "error"
    warning: Severity = "warning"
    severities = [error] * errors + [warning] * warnings
    findings = [
        Finding(f"f{i}.yml", i + 1, None, "syntax", "yaml", severity, "m")
        for i, severity in enumerate(severities)
    ]
    assert FORMATS["text"](Report.build(findings, files)).splitlines()[-1] == line


def test_empty_report_text(empty_report: Report) -> None:
    assert FORMATS["text"](empty_report) == "no problems in 12 files\n"
    assert ANSI.sub("", FORMATS["text"](empty_report, color=True)) == "no problems in 12 files\n"


def test_empty_report_json(empty_report: Report) -> None:
    assert json.loads(FORMATS["json"](empty_report)) == {
        "version": 1,
        "summary": {"files": 12, "errors": 0, "warnings": 0},
        "findings": [],
    }


def test_empty_report_junit(empty_report: Report) -> None:
    root = ET.fromstring(FORMATS["junit"](empty_report))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")
    case = root.find("testsuite/testcase")
    assert case is not None
    assert case.find("failure") is None
    assert case.findtext("system-out") == "no problems in 12 files\n"


def test_empty_report_sarif(empty_report: Report) -> None:
    log = validate_sarif(FORMATS["sarif"](empty_report))
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["tool"]["driver"]["rules"] == []


def test_empty_report_github(empty_report: Report) -> None:
    assert FORMATS["github"](empty_report) == ""
    assert github.step_summary(empty_report) == (
        "## cd-checks validate\n\n:white_check_mark: no problems in 12 files\n"
    )


def test_empty_report_gitlab(empty_report: Report) -> None:
    assert json.loads(FORMATS["gitlab"](empty_report)) == []
