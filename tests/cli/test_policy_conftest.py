"""`cd-checks policy test` with conftest verify's flags and outputs, and conftest's builtins
parse_config, parse_config_file and parse_combined_config_files in Rego unit tests
(translated from conftest's verify command, output/*.go, tests/builtin-errors and its docs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run

Cli = Callable[..., Run]
Repo = Callable[..., Path]


@pytest.fixture
def repo(repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """The repository, made the working directory: paths show as the user typed them."""

    def make(files: dict[str, str]) -> Path:
        root = repo(files)
        monkeypatch.chdir(root)
        return root

    return make


POLICY = """package main

deny contains msg if {
\tinput.kind == "Deployment"
\tnot input.spec.replicas
\tmsg := "replicas must be set"
}
"""
TESTS = """package main

test_denied if {
\tcount(deny) == 1 with input as {"kind": "Deployment", "spec": {}}
}

test_wrongly_expected if {
\tcount(deny) == 1 with input as {"kind": "Service"}
}

todo_test_later if {
\tfalse
}
"""
FILES = {"policy/deny.rego": POLICY, "policy/deny_test.rego": TESTS}


def test_stdout_output_is_conftest_verify_s(cli: Cli, repo: Repo) -> None:
    run = cli("-C", repo(FILES), "policy", "test", "-p", "policy", "-o", "stdout")
    assert run.code == 1, run.err
    assert run.out.splitlines() == [
        "FAIL - policy/deny_test.rego -  - data.main.test_wrongly_expected",
        "",
        "3 tests, 1 passed, 0 warnings, 1 failure, 0 exceptions, 1 skipped",
    ]


def test_default_text_names_the_skipped_test(cli: Cli, repo: Repo) -> None:
    run = cli("-C", repo(FILES), "policy", "test")
    assert run.code == 1
    assert "SKIP - policy/deny_test.rego:11 - main.todo_test_later" in run.out
    assert run.out.splitlines()[-1] == "3 tests, 1 passed, 1 failed, 1 skipped"


def test_json_output_is_conftest_verify_s(cli: Cli, repo: Repo) -> None:
    run = cli("-C", repo(FILES), "policy", "test", "--output", "json")
    assert run.code == 1
    assert '\n\t{\n\t\t"filename"' in run.out  # Go's json.Indent with tabs
    assert json.loads(run.out) == [
        {"filename": "policy/deny_test.rego", "namespace": "", "successes": 1},
        {
            "filename": "policy/deny_test.rego",
            "namespace": "",
            "successes": 0,
            "failures": [{"msg": "data.main.test_wrongly_expected"}],
        },
        {
            "filename": "policy/deny_test.rego",
            "namespace": "",
            "successes": 0,
            "skipped": [{"msg": "data.main.todo_test_later"}],
        },
    ]


def test_tap_table_and_junit_outputs(cli: Cli, repo: Repo) -> None:
    root = repo(FILES)
    tap = cli("-C", root, "policy", "test", "-o", "tap").out.splitlines()
    assert tap[:4] == [
        "1..1",
        "# successes",
        "ok 1 - policy/deny_test.rego -  - SUCCESS",
        "1..1",
    ]
    assert "not ok 1 - policy/deny_test.rego -  - data.main.test_wrongly_expected" in tap
    table = cli("-C", root, "policy", "test", "-o", "table").out.splitlines()
    assert table[:4] == [
        "┌─────────┬───────────────────────┬───────────┬─────────────────────────────────┐",
        "│ RESULT  │         FILE          │ NAMESPACE │             MESSAGE             │",
        "├─────────┼───────────────────────┼───────────┼─────────────────────────────────┤",
        "│ success │ policy/deny_test.rego │           │ SUCCESS                         │",
    ]
    junit = cli("-C", root, "policy", "test", "-o", "junit").out
    assert '<testsuite tests="3" failures="1" skipped="1"' in junit
    assert 'name="policy/deny_test.rego - data.main.test_wrongly_expected"' in junit
    hidden = cli("-C", root, "policy", "test", "-o", "junit", "--junit-hide-message").out
    assert 'name="policy/deny_test.rego - ' not in hidden


def test_quiet_prints_nothing_when_every_test_passes(cli: Cli, repo: Repo) -> None:
    root = repo({"policy/deny.rego": POLICY, "policy/deny_test.rego": TESTS})
    run = cli("-C", root, "policy", "test", "--quiet", "--run", "test_denied")
    assert (run.code, run.out) == (0, "")
    failing = cli("-C", root, "policy", "test", "--quiet")
    assert failing.code == 1
    assert "FAIL - policy/deny_test.rego:7" in failing.out


def test_format_and_output_together_is_a_usage_error(cli: Cli, repo: Repo) -> None:
    run = cli("-C", repo(FILES), "policy", "test", "--format", "json", "-o", "json")
    assert run.code == 2
    assert "--format and -o/--output name the same thing" in run.err


def test_data_short_flag(cli: Cli, repo: Repo) -> None:
    files = {
        "policy/p.rego": "package main\n\nlimit := data.limits.max\n",
        "policy/p_test.rego": "package main\n\ntest_limit if {\n\tlimit == 3\n}\n",
        "data/limits.yaml": "limits:\n  max: 3\n",
    }
    run = cli("-C", repo(files), "policy", "test", "-d", "data")
    assert run.code == 0, run.out + run.err


def test_trace_shows_print_output(cli: Cli, repo: Repo) -> None:
    files = {
        "policy/p.rego": "package main\n",
        "policy/p_test.rego": 'package main\n\ntest_p if {\n\tprint("checking", 1)\n}\n',
    }
    root = repo(files)
    run = cli("-C", root, "policy", "test", "--trace")
    assert run.code == 0
    assert "  PRNT  policy/p_test.rego:4: checking 1" in run.out.splitlines()
    stdout = cli("-C", root, "policy", "test", "--trace", "-o", "stdout")
    assert stdout.out.splitlines() == [
        "file: policy/p_test.rego | query: data.main.test_p",
        "TRAC  Enter data.main.test_p (policy/p_test.rego:3)",
        'TRAC  | Eval policy/p_test.rego:4: print("checking", 1)',
        "TRAC  success",
        "PRNT  policy/p_test.rego:4: checking 1",
    ]


# -- conftest's builtins in unit tests ---------------------------------------------------

HCL_LIKE = """package main

deny contains msg if {
\tsome name, listener in input.listeners
\tlistener.protocol == "HTTP"
\tmsg := sprintf("listener %s uses HTTP", [name])
}
"""


def test_parse_config_in_a_unit_test(cli: Cli, repo: Repo) -> None:
    tests = (
        "package main\n\n"
        "test_http_denied if {\n"
        '\tcfg := parse_config("yaml", "listeners:\\n  web:\\n    protocol: HTTP\\n")\n'
        '\tdeny["listener web uses HTTP"] with input as cfg\n'
        "}\n\n"
        "test_https_allowed if {\n"
        '\tcfg := parse_config("json", `{"listeners": {"web": {"protocol": "HTTPS"}}}`)\n'
        "\tcount(deny) == 0 with input as cfg\n"
        "}\n"
    )
    run = cli(
        "-C", repo({"policy/p.rego": HCL_LIKE, "policy/p_test.rego": tests}), "policy", "test"
    )
    assert run.code == 0, run.out + run.err
    assert run.out.splitlines()[-1] == "2 tests, 2 passed, 0 failed"


def test_parse_config_file_is_relative_to_the_policy_file(cli: Cli, repo: Repo) -> None:
    # conftest joins the path to the directory of the policy that calls it.
    files = {
        "policy/p.rego": HCL_LIKE,
        "policy/tests/p_test.rego": "package main\n\n"
        "test_failure if {\n"
        '\tcount(deny) == 1 with input as parse_config_file("../../fixtures/failure.yaml")\n'
        "}\n\n"
        "test_combined if {\n"
        '\tfiles := parse_combined_config_files(["../../fixtures/failure.yaml", '
        '"../../fixtures/list.json"])\n'
        "\tcount(files) == 3\n"
        '\tfiles[0].path == "fixtures/failure.yaml"\n'
        '\tfiles[1].contents == "a"\n'
        "}\n",
        "fixtures/failure.yaml": "listeners:\n  web:\n    protocol: HTTP\n",
        "fixtures/list.json": '["a", "b"]',
    }
    root = repo(files)
    run = cli("-C", root, "policy", "test", "policy")
    assert run.code == 0, run.out + run.err


def test_parse_config_file_never_reads_outside_the_repository(
    cli: Cli, repo: Repo, tmp_path: Path
) -> None:
    (tmp_path / "secret.yaml").write_text("password: hunter2\n", "utf-8")
    files = {
        "policy/p.rego": "package main\n",
        "policy/p_test.rego": "package main\n\n"
        "test_escape if {\n"
        '\tparse_config_file("../../secret.yaml").password == "hunter2"\n'
        "}\n",
    }
    run = cli("-C", repo(files), "policy", "test", "--show-builtin-errors")
    assert run.code == 1
    assert "parse_config_file: ../secret.yaml: outside the repository, not read" in run.out
    assert "hunter2" not in run.out


BUILTIN_ERRORS = {
    # conftest's tests/builtin-errors
    "policy/main.rego": 'package main\n\ndeny contains {"msg": msg} if {\n'
    '\tinput.test_field == 123\n\tmsg := "some error"\n}\n',
    "policy/main_test.rego": "package main\n\ntest_deny_valid if {\n"
    '\tnot deny with input as parse_config_file("file_does_not_exist.yaml")\n}\n',
}


def test_a_builtin_error_fails_the_test(cli: Cli, repo: Repo) -> None:
    run = cli("-C", repo(BUILTIN_ERRORS), "policy", "test", "-o", "stdout")
    assert run.code == 1
    assert run.out.splitlines()[-1] == (
        "1 test, 0 passed, 0 warnings, 1 failure, 0 exceptions, 0 skipped"
    )


def test_show_builtin_errors_gives_the_error(cli: Cli, repo: Repo) -> None:
    run = cli("-C", repo(BUILTIN_ERRORS), "policy", "test", "--show-builtin-errors")
    assert run.code == 1
    (line,) = [line for line in run.out.splitlines() if line.startswith("FAIL")]
    assert line.endswith(
        "parse_config_file: policy/file_does_not_exist.yaml: no such file or directory"
    )
    assert not line.endswith(")")  # not "undefined: a builtin failed (...)"


@pytest.mark.parametrize("flag", ["--show-builtin-errors", None])
def test_validate_keeps_other_findings_when_parse_config_file_fails(
    cli: Cli, repo: Repo, flag: str | None
) -> None:
    policy = (
        "package main\n\n"
        'warn contains "still here" if input.kind\n\n'
        "deny contains msg if {\n"
        '\tparse_config_file("missing.yaml").x\n'
        '\tmsg := "never"\n'
        "}\n"
    )
    root = repo({"policy/p.rego": policy, "a.yaml": "---\nkind: A\n"})
    run = cli("-C", root, "validate", "--no-cache", "--format", "json", *([flag] if flag else []))
    found = {(f["rule"], f["message"]) for f in json.loads(run.out)["findings"]}
    assert ("main.warn", "still here") in found
    errors = [m for rule, m in found if rule == "main.deny"]
    if flag:
        assert run.code == 1
        assert "parse_config_file: " in errors[0]
        assert errors[0].endswith("/policy/missing.yaml: no such file or directory")
    else:
        assert errors == []


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--report", "fails"], "needs OPA's evaluation trace"),
        (["--capabilities", "caps.json"], "capabilities file"),
    ],
)
def test_verify_flags_the_engine_cannot_honour_are_named(
    cli: Cli, repo: Repo, args: list[str], why: str
) -> None:
    run = cli("-C", repo(FILES), "policy", "test", *args)
    assert run.code == 2
    assert run.err.startswith(f"cd-checks: error: {args[0]} is conftest verify's, not cd-checks'")
    assert why in run.err


def test_strict_checks_the_policies_and_their_tests(cli: Cli, repo: Repo) -> None:
    root = repo(FILES)
    # The example is strict-clean: the same verdict with and without --strict.
    assert cli("-C", root, "policy", "test", "--strict").code == 1
    (root / "policy/deny_test.rego").write_text(
        TESTS.replace("test_denied if {", "test_denied if {\n\tunused := 1")
    )
    run = cli("-C", root, "policy", "test", "--strict")
    assert run.code == 2 and run.out == ""
    assert run.err == (
        "cd-checks: error: --strict: 1 Rego strict-mode error(s): "
        "policy/deny_test.rego:4: rego_compile_error: assigned var unused unused\n"
    )
