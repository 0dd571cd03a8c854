"""run_tests: Rego unit tests like `conftest verify`, with pass/fail, file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cd_checks.errors import PolicyError
from cd_checks.rego import PolicySource, TestResult, run_tests

FIXTURES = Path(__file__).parent / "fixtures"
UNITTESTS = FIXTURES / "unittests" / "policy"


def test_reports_each_test_with_file_and_line() -> None:
    results = run_tests(PolicySource((UNITTESTS,)))
    test_file = str(UNITTESTS / "ports_test.rego")
    assert results == [
        TestResult("cd_checks.ports", "test_privileged_port_denied", True, None, test_file, 3),
        TestResult("cd_checks.ports", "test_high_port_allowed", True, None, test_file, 7),
        TestResult(
            "cd_checks.ports",
            "test_https_allowed_wrongly",
            False,
            "undefined (a condition in the test body was false)",
            test_file,
            12,
        ),
    ]


def test_run_filters_on_namespace_dot_name() -> None:
    results = run_tests(PolicySource((UNITTESTS,)), run=r"ports\.test_high")
    assert [r.name for r in results] == ["test_high_port_allowed"]
    assert run_tests(PolicySource((UNITTESTS,)), run="no_such_test") == []


def test_invalid_run_pattern() -> None:
    with pytest.raises(PolicyError, match="invalid test name pattern"):
        run_tests(PolicySource((UNITTESTS,)), run="(")


def test_a_test_that_errors_fails_with_the_error(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        'package main\n\ndeny contains msg if {\n  msg := sprintf("%d", [input.n + 1])\n}\n',
        "utf-8",
    )
    (tmp_path / "p_test.rego").write_text(
        'package main\n\ntest_type_error if {\n  count(deny) == 1 with input as {"n": "x"}\n}\n'
        "\ntest_false if {\n  false\n}\n\ntest_value := 3\n",
        "utf-8",
    )
    error = f'{tmp_path / "p.rego"}:4:30: `add` expects numeric argument. Got `"x"` instead'
    results = {r.name: r for r in run_tests(PolicySource((tmp_path,)))}
    assert not results["test_type_error"].passed
    # A builtin's error leaves the test undefined, as in OPA (conftest: a bare FAIL).
    assert results["test_type_error"].message == f"undefined: a builtin failed ({error})"
    shown = run_tests(PolicySource((tmp_path,)), show_builtin_errors=True)
    assert {r.name: r.message for r in shown}["test_type_error"] == error
    assert not results["test_false"].passed
    assert results["test_value"].message == "evaluated to 3, not true"


def test_tests_in_several_packages_use_data(tmp_path: Path) -> None:
    (tmp_path / "a.rego").write_text(
        'package team.a\n\ntest_owner if data.owners.a == "ops"\n', "utf-8"
    )
    (tmp_path / "b.rego").write_text("package team.b\n\ntest_b if true\n", "utf-8")
    (tmp_path / "owners.yaml").write_text("owners:\n  a: ops\n", "utf-8")
    results = run_tests(PolicySource((tmp_path,), (tmp_path / "owners.yaml",)))
    assert [(r.namespace, r.name, r.passed) for r in results] == [
        ("team.a", "test_owner", True),
        ("team.b", "test_b", True),
    ]


def test_v0_policies_and_tests(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text('package main\n\ndeny[msg] {\n  input.x\n  msg := "x"\n}\n')
    (tmp_path / "p_test.rego").write_text(
        'package main\n\ntest_x {\n  deny["x"] with input as {"x": true}\n}\n'
    )
    with pytest.raises(PolicyError, match="--rego-version v0"):
        run_tests(PolicySource((tmp_path,)))
    (result,) = run_tests(PolicySource((tmp_path,), rego_version="v0"))
    assert result.passed
