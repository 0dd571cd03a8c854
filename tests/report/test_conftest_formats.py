"""conftest's output shapes (conftest-json, tap, table) and applied exceptions in every format.

Cases translated from conftest's output tests (output/json_test.go, tap_test.go,
table_test.go, standard_test.go): a file under a namespace with a warning and a
failure, standard input, several files, and exceptions (EXCP, counted, suppressible).
"""

from __future__ import annotations

import json
from dataclasses import replace

from cd_checks.findings import Finding, Report
from cd_checks.report import FORMATS

SERVICE = "examples/kubernetes/service.yaml"
QUERY = 'data.main.exception[_][_] == "run_as_root"'


def policy(path: str, severity: str, message: str, rule: str = "namespace.deny") -> Finding:
    return Finding(path, None, None, "policy", rule, severity, message)  # type: ignore[arg-type]


def warning_and_failure(path: str = SERVICE) -> Report:
    return Report.build(
        [
            policy(path, "warning", "first warning", "namespace.warn"),
            policy(path, "error", "first failure"),
        ],
        files=1,
        paths=(path,),
    )


def excepted(*, suppressed: bool = False) -> Report:
    report = Report.build(
        [
            policy("deployments.yaml", "error", "Containers must not run as root", "main.deny_x"),
            policy("deployments.yaml", "exception", QUERY, "main.deny_run_as_root"),
        ],
        files=1,
        paths=("deployments.yaml",),
    )
    return replace(report, suppressed=suppressed)


# -- conftest-json (output/json_test.go) --------------------------------------------------


def test_conftest_json_no_warnings_or_errors() -> None:
    report = replace(Report.build([], 1, paths=(SERVICE,)), namespaces=("namespace",))
    assert FORMATS["conftest-json"](report).split("\n") == [
        "[",
        "\t{",
        f'\t\t"filename": "{SERVICE}",',
        '\t\t"namespace": "namespace",',
        '\t\t"successes": 0',
        "\t}",
        "]",
        "",
    ]


def test_conftest_json_a_warning_and_a_failure() -> None:
    assert FORMATS["conftest-json"](warning_and_failure()).split("\n") == [
        "[",
        "\t{",
        f'\t\t"filename": "{SERVICE}",',
        '\t\t"namespace": "namespace",',
        '\t\t"successes": 0,',
        '\t\t"warnings": [',
        "\t\t\t{",
        '\t\t\t\t"msg": "first warning"',
        "\t\t\t}",
        "\t\t],",
        '\t\t"failures": [',
        "\t\t\t{",
        '\t\t\t\t"msg": "first failure"',
        "\t\t\t}",
        "\t\t]",
        "\t}",
        "]",
        "",
    ]


def test_conftest_json_names_standard_input_the_empty_string() -> None:
    document = json.loads(FORMATS["conftest-json"](warning_and_failure("-")))
    assert [result["filename"] for result in document] == [""]


def test_conftest_json_lists_every_file_and_exceptions_even_when_suppressed_elsewhere() -> None:
    report = replace(excepted(), paths=("deployments.yaml", "service.yaml"))
    assert json.loads(FORMATS["conftest-json"](report)) == [
        {
            "filename": "deployments.yaml",
            "namespace": "main",
            "successes": 0,
            "failures": [{"msg": "Containers must not run as root"}],
            "exceptions": [{"msg": QUERY}],
        },
        {"filename": "service.yaml", "namespace": "main", "successes": 0},
    ]


def test_conftest_json_escapes_html_characters_as_go_does() -> None:
    report = Report.build([policy("a.yaml", "error", "a < b && c > d", "main.deny")], 1)
    assert '"msg": "a \\u003c b \\u0026\\u0026 c \\u003e d"' in FORMATS["conftest-json"](report)


def test_conftest_json_result_metadata_and_policy_location() -> None:
    # conftest's output/result.go NewResult and tests/source-location: a result object's
    # `_loc` is its `loc`, its other keys (besides msg) its `metadata`.
    finding = replace(
        policy("data.yaml", "error", "test", "main.deny"),
        metadata={"other": "metadata", "_loc": {"file": "test.txt", "line": 123}},
    )
    shown = json.loads(FORMATS["conftest-json"](Report.build([finding], 1, paths=("data.yaml",))))
    assert shown[0]["failures"] == [
        {"msg": "test", "loc": {"file": "test.txt", "line": 123}, "metadata": {"other": "metadata"}}
    ]


def test_conftest_json_location_without_a_policy_loc_is_the_findings_place() -> None:
    finding = replace(policy("a.yaml", "warning", "w", "main.warn"), line=4, metadata={"_loc": 1})
    shown = json.loads(FORMATS["conftest-json"](Report.build([finding], 1, paths=("a.yaml",))))
    assert shown[0]["warnings"] == [{"msg": "w", "loc": {"file": "a.yaml", "line": 4}}]


# -- tap (output/tap_test.go) ---------------------------------------------------------------


def test_tap_no_warnings_or_errors_prints_nothing() -> None:
    assert FORMATS["tap"](Report.build([], 1, paths=(SERVICE,))) == ""


def test_tap_records_failure_and_warnings() -> None:
    assert FORMATS["tap"](warning_and_failure()).split("\n") == [
        "1..2",
        f"not ok 1 - {SERVICE} - namespace - first failure",
        "# warnings",
        f"not ok 2 - {SERVICE} - namespace - first warning",
        "",
    ]


def test_tap_handles_stdin_input() -> None:
    report = Report.build([policy("-", "error", "first failure")], 1)
    assert FORMATS["tap"](report) == "1..1\nnot ok 1 - - namespace - first failure\n"


def test_tap_exceptions_are_ok_lines() -> None:
    assert FORMATS["tap"](excepted()).split("\n") == [
        "1..2",
        "not ok 1 - deployments.yaml - main - Containers must not run as root",
        "# exceptions",
        f"ok 2 - deployments.yaml - main - {QUERY}",
        "",
    ]


# -- table (output/table_test.go) -----------------------------------------------------------


def test_table_no_warnings_or_errors_prints_nothing() -> None:
    assert FORMATS["table"](Report.build([], 1, paths=(SERVICE,))) == ""


def test_table_a_warning_and_a_failure() -> None:
    assert FORMATS["table"](warning_and_failure()).split("\n") == [
        "┌─────────┬──────────────────────────────────┬───────────┬───────────────┐",
        "│ RESULT  │               FILE               │ NAMESPACE │    MESSAGE    │",
        "├─────────┼──────────────────────────────────┼───────────┼───────────────┤",
        "│ warning │ examples/kubernetes/service.yaml │ namespace │ first warning │",
        "│ failure │ examples/kubernetes/service.yaml │ namespace │ first failure │",
        "└─────────┴──────────────────────────────────┴───────────┴───────────────┘",
        "",
    ]


# -- applied exceptions in cd-checks' formats (standard_test.go, acceptance "Exceptions") ---


def test_text_shows_excp_line_in_conftests_words_and_counts_it() -> None:
    assert FORMATS["text"](excepted()).split("\n") == [
        "deployments.yaml  error    policy/main.deny_x  Containers must not run as root",
        f"EXCP - deployments.yaml - main - {QUERY}",
        "",
        "1 error, 1 exception in 1 file",
        "",
    ]


def test_suppressed_exceptions_are_counted_but_not_listed() -> None:
    assert FORMATS["text"](excepted(suppressed=True)).split("\n") == [
        "deployments.yaml  error    policy/main.deny_x  Containers must not run as root",
        "",
        "1 error, 1 exception in 1 file",
        "",
    ]
    document = json.loads(FORMATS["json"](excepted(suppressed=True)))
    assert document["summary"] == {"files": 1, "errors": 1, "warnings": 0, "exceptions": 1}
    assert "exceptions" not in document
    for name in ("github", "gitlab", "sarif", "junit", "tap", "table", "conftest-json"):
        assert "run_as_root" in FORMATS[name](excepted()), name
        assert "run_as_root" not in FORMATS[name](excepted(suppressed=True)), name


def test_only_exceptions_is_no_problem() -> None:
    report = Report.build([policy("a.yaml", "exception", QUERY, "main.deny_run_as_root")], 1)
    assert not report.failed("warning")
    assert FORMATS["text"](report).endswith("\nno problems, 1 exception in 1 file\n")
    junit = FORMATS["junit"](report)
    assert '<skipped message="1 exception applied" />' in junit
    assert 'skipped="1"' in junit


def test_json_lists_exceptions_before_findings_with_their_count() -> None:
    document = json.loads(FORMATS["json"](excepted()))
    assert document["summary"]["exceptions"] == 1
    assert list(document) == ["version", "summary", "exceptions", "findings"]
    assert document["exceptions"] == [
        {
            "path": "deployments.yaml",
            "line": None,
            "column": None,
            "check": "policy",
            "rule": "main.deny_run_as_root",
            "severity": "exception",
            "message": QUERY,
        }
    ]


def test_json_without_exceptions_keeps_its_shape() -> None:
    document = json.loads(FORMATS["json"](warning_and_failure()))
    assert list(document) == ["version", "summary", "findings"]
    assert list(document["summary"]) == ["files", "errors", "warnings"]


def test_github_sarif_and_gitlab_mark_exceptions_as_notes() -> None:
    assert (
        f"::notice file=deployments.yaml,title=policy/main.deny_run_as_root::{QUERY}\n"
        in FORMATS["github"](excepted())
    )
    results = json.loads(FORMATS["sarif"](excepted()))["runs"][0]["results"]
    assert [(r["level"], r.get("suppressions")) for r in results] == [
        ("error", None),
        ("note", [{"kind": "inSource", "justification": QUERY}]),
    ]
    issues = json.loads(FORMATS["gitlab"](excepted()))
    assert [issue["severity"] for issue in issues] == ["major", "info"]


def test_trace_comes_first_in_text_only() -> None:
    trace = [
        Finding("svc.yaml", None, None, "policy", "trace", "trace", "file: svc.yaml | query: q"),
        Finding("svc.yaml", None, None, "policy", "trace", "trace", "TRAC  q = []"),
    ]
    report = Report.build([*trace, policy("svc.yaml", "warning", "a service", "main.warn")], 1)
    assert report.failed("warning") and not report.failed("error")  # traces count for nothing
    assert FORMATS["text"](report).split("\n") == [
        "file: svc.yaml | query: q",
        "TRAC  q = []",
        "",
        "svc.yaml  warning  policy/main.warn  a service",
        "",
        "1 warning in 1 file",
        "",
    ]
    assert "TRAC" not in FORMATS["json"](report)
    assert "TRAC" not in FORMATS["conftest-json"](report)


def passed(path: str, rule: str) -> Finding:
    return Finding(path, None, None, "policy", rule, "success", "")


def service_with_successes() -> Report:
    """conftest's examples/kubernetes service.yaml: 4 rules pass, 1 warns."""
    rules = ("main.deny", "main.deny_x", "main.violation", "main.deny_y")
    warned = policy("service.yaml", "warning", "Found service", "main.warn")
    return Report.build([*(passed("service.yaml", r) for r in rules), warned], 1)


def test_successes_are_counted_in_conftests_formats_only() -> None:
    report = service_with_successes()
    assert report.successes == (("service.yaml", "main", 4),)
    assert json.loads(FORMATS["conftest-json"](report)) == [
        {
            "filename": "service.yaml",
            "namespace": "main",
            "successes": 4,
            "warnings": [{"msg": "Found service"}],
        }
    ]
    assert FORMATS["tap"](report).split("\n") == [
        "1..5",
        "# warnings",
        "not ok 1 - service.yaml - main - Found service",
        "# successes",
        *(f"ok {n} - service.yaml - main - SUCCESS" for n in range(2, 6)),
        "",
    ]
    assert FORMATS["table"](report).split("\n")[3:8] == [
        "│ success │ service.yaml │ main      │ SUCCESS       │",
        "│ success │ service.yaml │ main      │ SUCCESS       │",
        "│ success │ service.yaml │ main      │ SUCCESS       │",
        "│ success │ service.yaml │ main      │ SUCCESS       │",
        "│ warning │ service.yaml │ main      │ Found service │",
    ]
    assert FORMATS["text"](report) == (
        "service.yaml  warning  policy/main.warn  Found service\n\n1 warning in 1 file\n"
    )
    assert "success" not in FORMATS["json"](report)
