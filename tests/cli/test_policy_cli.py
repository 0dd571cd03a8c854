"""`cd-checks policy test`: what the user sees (lines, summary, exit code) from real Rego tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cd_checks.cli import main

FIXTURES = Path(__file__).parent.parent / "rego" / "fixtures"
UNITTESTS = FIXTURES / "unittests" / "policy"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the unit-test fixture copied to policy/."""
    shutil.copytree(UNITTESTS, tmp_path / "policy")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_failing_test_exits_1_with_pass_fail_lines(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "test"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "PASS - policy/ports_test.rego:3 - cd_checks.ports.test_privileged_port_denied",
        "PASS - policy/ports_test.rego:7 - cd_checks.ports.test_high_port_allowed",
        "FAIL - policy/ports_test.rego:12 - cd_checks.ports.test_https_allowed_wrongly: "
        "undefined (a condition in the test body was false)",
        "",
        "3 tests, 2 passed, 1 failed",
    ]


def test_run_selects_tests_and_all_passing_exits_0(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "test", "policy", "--run", "denied|high_port"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 tests, 2 passed, 0 failed"


def test_json_format(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "test", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["summary"] == {"tests": 3, "passed": 2, "failed": 1}
    assert report["tests"][2] == {
        "namespace": "cd_checks.ports",
        "name": "test_https_allowed_wrongly",
        "passed": False,
        "message": "undefined (a condition in the test body was false)",
        "file": "policy/ports_test.rego",
        "line": 12,
    }


def test_missing_directory_exits_2_with_one_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "test", "rules"]) == 2
    assert capsys.readouterr().err == "cd-checks: error: policy path not found: rules\n"


def test_no_policy_dir_and_no_config_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["policy", "test"]) == 2
    assert capsys.readouterr().err == "cd-checks: error: policy path not found: policy\n"


def test_v0_policies_need_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(FIXTURES / "v0" / "policy", tmp_path / "policy")
    (tmp_path / "policy" / "deny_test.rego").write_text(
        "package main\n\ntest_deployment_denied {\n"
        '  count(deny) == 1 with input as {"kind": "Deployment", "name": "web"}\n}\n',
        "utf-8",
    )
    monkeypatch.chdir(tmp_path)
    assert main(["policy", "test"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cd-checks: error: policy/deny.rego:3:11: ")
    assert "looks like Rego v0 syntax; rerun with --rego-version v0" in err
    assert main(["policy", "test", "--rego-version", "v0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 tests, 1 passed, 0 failed"


def test_defaults_come_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "limits.rego").write_text(
        'package limits\n\ndeny[msg] {\n  input.n > data.limits.max\n  msg := "too many"\n}\n',
        "utf-8",
    )
    (tmp_path / "rules" / "limits_test.rego").write_text(
        'package limits\n\ntest_too_many {\n  deny["too many"] with input as {"n": 6}\n}\n', "utf-8"
    )
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "limits.yaml").write_text("limits:\n  max: 5\n", "utf-8")
    (tmp_path / "cd-checks.yml").write_text(
        "policy:\n  paths: [rules]\n  data: [ref]\n  rego_version: v0\n", "utf-8"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["policy", "test"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "PASS - rules/limits_test.rego:3 - limits.test_too_many",
        "",
        "1 tests, 1 passed, 0 failed",
    ]


def test_data_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "owners_test.rego").write_text(
        'package checks.owners\n\ntest_known if "ops" in data.owners\n', "utf-8"
    )
    (tmp_path / "owners.json").write_text('{"owners": ["ops"]}', "utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["policy", "test", "--data", "owners.json"]) == 0
    assert main(["policy", "test"]) == 1
    assert "FAIL - policy/owners_test.rego:3 - checks.owners.test_known" in capsys.readouterr().out


def test_policy_test_honours_the_repository_root(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import EXAMPLES

    assert main(["-C", str(EXAMPLES), "policy", "test"]) == 0
    assert capsys.readouterr().out.strip().endswith("4 tests, 4 passed, 0 failed")
