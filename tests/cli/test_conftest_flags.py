"""`cd-checks validate` with conftest test's flags, inputs and outputs, end to end.

Cases translated from conftest's acceptance.bats (blank file name, stdin, --parser,
configuration file, exceptions, multiple policy and namespace flags, --fail-on-warn,
--no-color, -o tap/table/json) and its docs (--ignore, CONFTEST_* variables), run
on a small repository with a real Rego engine; each asserts the exit code and what
the user reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run, write_tree

Cli = Callable[..., Run]

KUBERNETES = """package main

deny contains msg if {
\tinput.kind == "Deployment"
\tnot input.spec.template.spec.securityContext.runAsNonRoot
\tmsg := sprintf("Containers must not run as root in Deployment %s", [input.metadata.name])
}

warn contains msg if {
\tinput.kind == "Service"
\tmsg := sprintf("Found service %s but services are not allowed", [input.metadata.name])
}
"""

SERVICE = """---
apiVersion: v1
kind: Service
metadata:
  name: hello-kubernetes
spec:
  type: LoadBalancer
"""

DEPLOYMENT = """---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello-kubernetes
spec:
  template:
    spec:
      containers:
        - name: hello
          image: nginx
"""

GRAFANA = """[server]
http_port = 3000

[users]
verify_email_enabled = false
"""

GRAFANA_POLICY = """package main

deny contains "Users should verify their e-mail address" if {
\tinput.users.verify_email_enabled == "false"
}

deny contains "Users should verify their e-mail address" if {
\tinput.users.verify_email_enabled == false
}
"""


@pytest.fixture
def kubernetes(tmp_path: Path) -> Path:
    """conftest's examples/kubernetes, plus a broken file the runs below must not read."""
    return write_tree(
        tmp_path / "repo",
        {
            "policy/kubernetes.rego": KUBERNETES,
            "service.yaml": SERVICE,
            "deployment.yaml": DEPLOYMENT,
            "elsewhere/broken.yaml": "---\nkey: [unclosed\n",
        },
    )


def lines(run: Run) -> list[str]:
    return run.out.splitlines()


# -- file names -------------------------------------------------------------------------


def test_a_blank_file_name_is_skipped_not_the_whole_repository(cli: Cli, kubernetes: Path) -> None:
    run = cli("-C", kubernetes, "validate", "--no-cache", "service.yaml", "")
    assert run.code == 0, run.out + run.err
    assert lines(run) == [
        "service.yaml  warning  policy/main.warn  "
        "Found service hello-kubernetes but services are not allowed",
        "",
        "1 warning in 1 file",
    ]


def test_only_blank_file_names_is_an_error(cli: Cli, kubernetes: Path) -> None:
    run = cli("-C", kubernetes, "validate", "", "")
    assert run.code == 2
    assert run.err == "cd-checks: error: no files found: every file name given is blank\n"


def test_a_file_no_parser_reads_is_named_not_passed_silently(cli: Cli, kubernetes: Path) -> None:
    write_tree(kubernetes, {"tool.exe": "MZ\x90", "Makefile.unknownkind": "all:\n"})
    run = cli("-C", kubernetes, "validate", "--no-cache", "tool.exe", "Makefile.unknownkind")
    assert run.code == 0
    out = lines(run)
    assert out[-1] == "2 warnings in 0 files"
    assert out[0].startswith(
        "Makefile.unknownkind  warning  syntax/not-checked  not checked: no parser reads this "
        "kind of file (name one with --parser: "
    )
    assert out[2].startswith("tool.exe  warning  syntax/not-checked  not checked: ")
    strict = cli("-C", kubernetes, "validate", "--no-cache", "--fail-on-warn", "tool.exe")
    assert strict.code == 1


# -- policies, namespaces, data ------------------------------------------------------------


def test_fail_on_a_deployment_and_output_results_once(cli: Cli, kubernetes: Path) -> None:
    run = cli("-C", kubernetes, "validate", "--no-cache", "-p", "policy", "deployment.yaml")
    assert run.code == 1
    assert lines(run) == [
        "deployment.yaml  error    policy/main.deny  "
        "Containers must not run as root in Deployment hello-kubernetes",
        "",
        "1 error in 1 file",
    ]


def test_policy_flag_replaces_the_configured_policies(cli: Cli, kubernetes: Path) -> None:
    write_tree(
        kubernetes,
        {
            "cd-checks.yml": "policy:\n  paths: [policy]\n",
            "org/main.rego": 'package main\n\ndeny contains "org says no" if input.kind\n',
            "team/main.rego": 'package main\n\ndeny contains "team says no" if input.kind\n',
        },
    )
    run = cli(
        "-C", kubernetes, "validate", "--no-cache", "-p", "org", "--policy", "team", "service.yaml"
    )
    assert run.code == 1
    assert lines(run) == [
        "service.yaml  error    policy/main.deny  org says no",
        "service.yaml  error    policy/main.deny  team says no",
        "",
        "2 errors in 1 file",
    ]


def test_data_flag_loads_data_for_the_policies(cli: Cli, kubernetes: Path) -> None:
    write_tree(
        kubernetes,
        {
            "exclusions/services.yaml": "---\nservices:\n  ports: [22]\n",
            "datapolicy/main.rego": """package main

import data.services

deny contains msg if {
\tsome port in input.spec.ports
\tport.port in services.ports
\tmsg := sprintf("Cannot expose port %v", [port.port])
}
""",
            "ssh.yaml": "---\nkind: Service\nspec:\n  ports:\n    - port: 22\n",
        },
    )
    run = cli(
        "-C", kubernetes, "validate", "--no-cache", "-p", "datapolicy", "-d", "exclusions",
        "ssh.yaml",
    )  # fmt: skip
    assert run.code == 1, run.err
    assert "ssh.yaml  error    policy/main.deny  Cannot expose port 22" in lines(run)


def test_multiple_namespace_flags_and_short_form(cli: Cli, kubernetes: Path) -> None:
    write_tree(
        kubernetes,
        {
            "nested/group1.rego": 'package group1\n\ndeny contains "group1 fails" if true\n',
            "nested/group2.rego": 'package group2\n\ndeny contains "group2 fails" if true\n',
            "data.json": '{"a": 1}\n',
        },
    )
    args = ("-C", kubernetes, "validate", "--no-cache", "-p", "nested", "data.json")
    run = cli(*args, "--namespace", "group1", "-n", "group2")
    assert run.code == 1
    assert lines(run)[-1] == "2 errors in 1 file"


# -- stdin, --parser -------------------------------------------------------------------------


def _piped(repo: Path, data: str, *args: str) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "cd_checks", "-C", str(repo), "validate", "--no-cache", *args],
        input=data.encode(),
        capture_output=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def test_stdin_is_yaml_by_default_and_named_dash(kubernetes: Path) -> None:
    run = _piped(kubernetes, SERVICE, "-p", "policy", "-")
    assert run.code == 0, run.err
    assert run.out.splitlines() == [
        "-  warning  policy/main.warn  Found service hello-kubernetes but services are not allowed",
        "",
        "1 warning in 1 file",
    ]


def test_stdin_filename_names_the_findings(kubernetes: Path) -> None:
    run = _piped(kubernetes, DEPLOYMENT, "-", "--stdin-filename", "rendered/app.yaml", "-o", "tap")
    assert run.code == 1, run.err
    assert run.out.splitlines() == [
        "1..2",
        "not ok 1 - rendered/app.yaml - main - "
        "Containers must not run as root in Deployment hello-kubernetes",
        "# successes",
        "ok 2 - rendered/app.yaml - main - SUCCESS",  # the warn rule passed
    ]


def test_stdin_with_parser_flag(kubernetes: Path) -> None:
    write_tree(kubernetes, {"inipolicy/grafana.rego": GRAFANA_POLICY})
    run = _piped(kubernetes, GRAFANA, "-p", "inipolicy", "--parser", "ini", "-")
    assert run.code == 1, run.err
    assert "-  error    policy/main.deny  Users should verify their e-mail address" in run.out


def test_parser_flag_forces_the_parser_of_a_named_file(cli: Cli, kubernetes: Path) -> None:
    write_tree(kubernetes, {"inipolicy/grafana.rego": GRAFANA_POLICY, "grafana.custom": GRAFANA})
    args = ("-C", kubernetes, "validate", "--no-cache", "-p", "inipolicy", "grafana.custom")
    run = cli(*args, "--parser", "ini")
    assert run.code == 1, run.err
    assert (
        "grafana.custom  error    policy/main.deny  Users should verify their e-mail address"
        in (lines(run))
    )


def test_unknown_parser_is_one_error_line_listing_the_parsers(cli: Cli, kubernetes: Path) -> None:
    run = cli("-C", kubernetes, "validate", "--parser", "cue", "service.yaml")
    assert run.code == 2
    first, hint = run.err.splitlines()
    assert first.startswith("cd-checks: error: invalid value for '--parser': unknown parser 'cue'")
    assert "ini, json" in first and "yaml" in first
    assert hint == "Try 'cd-checks validate --help'."


def test_stdin_filename_without_dash_is_a_usage_error(cli: Cli, kubernetes: Path) -> None:
    run = cli("-C", kubernetes, "validate", "--stdin-filename", "x.yaml", "service.yaml")
    assert run.code == 2
    assert run.err.splitlines()[0] == (
        "cd-checks: error: --stdin-filename names standard input: give `-` too"
    )


# -- --ignore, exit codes, output -------------------------------------------------------------


def test_ignore_skips_matching_files_of_a_directory(cli: Cli, kubernetes: Path) -> None:
    run = cli("-C", kubernetes, "validate", "--no-cache", "--ignore", "broken|deployment")
    assert run.code == 0, run.out
    assert lines(run)[-1] == "1 warning in 1 file"
    bad = cli("-C", kubernetes, "validate", "--ignore", "(")
    assert bad.code == 2
    assert bad.err.startswith("cd-checks: error: --ignore '(': not a regular expression: ")


def test_fail_on_warn_and_no_fail(cli: Cli, kubernetes: Path) -> None:
    base = ("-C", kubernetes, "validate", "--no-cache")
    assert cli(*base, "service.yaml").code == 0
    assert cli(*base, "--fail-on-warn", "service.yaml").code == 1
    assert cli(*base, "--no-fail", "deployment.yaml").code == 0


def test_quiet_prints_only_when_the_run_fails(cli: Cli, kubernetes: Path) -> None:
    base = ("-C", kubernetes, "validate", "--no-cache", "--quiet")
    passed = cli(*base, "service.yaml")
    assert (passed.code, passed.out) == (0, "")
    failed = cli(*base, "deployment.yaml")
    assert failed.code == 1 and lines(failed)[-1] == "1 error in 1 file"
    written = cli(*base, "service.yaml", "--format", "sarif", "-o", kubernetes / "r.sarif")
    assert written.code == 0 and (kubernetes / "r.sarif").is_file()


def test_no_color_beats_color_always(cli: Cli, kubernetes: Path) -> None:
    coloured = cli("--color", "always", "-C", kubernetes, "validate", "--no-cache", "service.yaml")
    assert "\033[33m" in coloured.out
    plain = cli(
        "--color", "always", "-C", kubernetes, "validate", "--no-cache", "--no-color",
        "service.yaml",
    )  # fmt: skip
    assert "\033[" not in plain.out


def test_o_names_a_conftest_format_or_a_file(cli: Cli, kubernetes: Path) -> None:
    base = ("-C", kubernetes, "validate", "--no-cache", "deployment.yaml")
    table = cli(*base, "-o", "table")
    assert lines(table)[3:5] == [
        "│ success │ deployment.yaml │ main      │ SUCCESS" + " " * 55 + " │",
        "│ failure │ deployment.yaml │ main      │ "
        "Containers must not run as root in Deployment hello-kubernetes │",
    ]
    document = json.loads(cli(*base, "--output", "json").out)
    assert document[0]["filename"] == "deployment.yaml"
    written = cli(*base, "-o", kubernetes / "report.json")
    assert written.out == "" and (kubernetes / "report.json").is_file()
    assert cli(*base, "--format", "sarif", "-o", "table").code == 2
    unavailable = cli(*base, "-o", "azuredevops")
    assert unavailable.err == (
        "cd-checks: error: -o azuredevops: conftest's azuredevops format is not available here\n"
    )


def test_strict_passes_conftest_s_own_example_policy(cli: Cli, kubernetes: Path) -> None:
    plain = cli("-C", kubernetes, "validate", "--no-cache", "service.yaml")
    strict = cli("-C", kubernetes, "validate", "--no-cache", "--strict", "service.yaml")
    assert (strict.code, strict.out, strict.err) == (plain.code, plain.out, plain.err)


SLOPPY = """package main

import data.exclusions

deny contains msg if {
\tinput.kind == "Service"
\tport := input.spec.ports[0]
\tmsg := "services are not allowed"
}

name_of(kind, x) := kind
"""


def test_strict_refuses_what_opa_strict_mode_refuses(cli: Cli, kubernetes: Path) -> None:
    (kubernetes / "policy/sloppy.rego").write_text(SLOPPY)
    assert cli("-C", kubernetes, "validate", "--no-cache", "service.yaml").code == 0
    run = cli("-C", kubernetes, "validate", "--no-cache", "--strict", "service.yaml")
    assert (run.code, run.out) == (2, "")
    assert run.err == (
        "cd-checks: error: --strict: 3 Rego strict-mode error(s): "
        "policy/sloppy.rego:3: rego_compile_error: import data.exclusions unused; "
        "policy/sloppy.rego:7: rego_compile_error: assigned var port unused; "
        "policy/sloppy.rego:11: rego_compile_error: unused argument x. "
        "(hint: use _ (wildcard variable) instead)\n"
    )
    # conftest.toml's `strict = true` and CONFTEST_STRICT say the same.
    (kubernetes / "conftest.toml").write_text("strict = true\n")
    assert cli("-C", kubernetes, "validate", "--no-cache", "service.yaml").code == 2


# -- conftest.toml and CONFTEST_* (acceptance: "picking up settings from configuration file")


CONFIGFILE = {
    "conftest.toml": 'policy = "test"\nnamespace = "conftest"\n',
    "test/deny.rego": """package conftest

deny contains "Containers must not run as root" if {
\tinput.kind == "Deployment"
\tnot input.spec.template.spec.securityContext.runAsNonRoot
}
""",
    "deployment.yaml": DEPLOYMENT,
}


def test_conftest_toml_settings_are_picked_up(cli: Cli, tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "configfile", CONFIGFILE)
    run = cli("-C", repo, "validate", "--no-cache", "deployment.yaml")
    assert run.code == 1, run.err
    assert lines(run)[0] == (
        "deployment.yaml  error    policy/conftest.deny  Containers must not run as root"
    )


def test_cd_checks_yml_comes_before_conftest_toml(cli: Cli, tmp_path: Path) -> None:
    repo = write_tree(
        tmp_path / "configfile",
        {**CONFIGFILE, "cd-checks.yml": "policy:\n  namespaces: [main]\n"},
    )
    run = cli("-C", repo, "validate", "--no-cache", "deployment.yaml")
    assert run.code == 0, run.out  # namespace main has no rules in test/
    assert lines(run)[-1] == "no problems in 1 file"


def test_conftest_variables_come_before_conftest_toml(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_tree(tmp_path / "configfile", CONFIGFILE)
    monkeypatch.setenv("CONFTEST_NAMESPACE", "nothing")
    assert cli("-C", repo, "validate", "--no-cache", "deployment.yaml").code == 0
    monkeypatch.setenv("CONFTEST_NAMESPACE", "conftest")
    monkeypatch.setenv("CONFTEST_OUTPUT", "tap")
    monkeypatch.setenv("CONFTEST_NO_FAIL", "true")
    run = cli("-C", repo, "validate", "--no-cache", "deployment.yaml")
    assert (run.code, lines(run)[0]) == (0, "1..1")


def test_config_file_flag_and_bad_conftest_toml(cli: Cli, tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "configfile", {**CONFIGFILE, "conftest.toml": 'polcy = "x"\n'})
    run = cli("-C", repo, "validate", "deployment.yaml")
    assert run.code == 2
    assert run.err == (
        f"cd-checks: error: {repo / 'conftest.toml'}: unknown key 'polcy'; did you mean 'policy'?\n"
    )
    write_tree(repo, {"ci.toml": CONFIGFILE["conftest.toml"]})
    assert cli("-C", repo, "validate", "--no-cache", "-c", "ci.toml", "deployment.yaml").code == 1
    update = write_tree(repo, {"up.toml": 'update = ["https://example.com/p.rego"]\n'})
    refused = cli("-C", update, "validate", "--config-file", "up.toml", "deployment.yaml")
    assert refused.code == 2 and "update: not supported by cd-checks" in refused.err


def test_cd_checks_flags_beat_conftest_variables(
    cli: Cli, kubernetes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GitHub Action passes --format and --fail-on: a CONFTEST_* variable left in the
    job's environment for conftest changes neither."""
    monkeypatch.setenv("CONFTEST_OUTPUT", "tap")
    monkeypatch.setenv("CONFTEST_FAIL_ON_WARN", "true")
    base = ("-C", kubernetes, "validate", "--no-cache", "service.yaml")
    run = cli(*base, "--format", "json", "--fail-on", "error")
    assert run.code == 0
    assert json.loads(run.out)["summary"]["warnings"] == 1
    conftest_like = cli(*base)
    assert (conftest_like.code, lines(conftest_like)[:2]) == (1, ["1..2", "# warnings"])
    monkeypatch.setenv("CONFTEST_NO_FAIL", "maybe")
    bad = cli(*base)
    assert (bad.code, bad.err) == (
        2,
        "cd-checks: error: CONFTEST_NO_FAIL='maybe': not true or false\n",
    )


def test_a_named_directory_with_nothing_to_check_is_named(cli: Cli, kubernetes: Path) -> None:
    write_tree(kubernetes, {"docker/Containerfile.unknownkind": "FROM alpine\n"})
    run = cli("-C", kubernetes, "validate", "--no-cache", "docker")
    assert run.code == 0
    assert lines(run)[0].startswith(
        "docker  warning  syntax/not-checked  not checked: no file in this directory is of a "
        "kind cd-checks reads ("
    )
    assert lines(run)[-1] == "1 warning in 0 files"


def test_conftest_toml_paths_stay_inside_the_checkout(cli: Cli, tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "configfile", {**CONFIGFILE, "conftest.toml": 'policy = "/etc"\n'})
    run = cli("-C", repo, "validate", "deployment.yaml")
    assert run.code == 2
    assert run.err.startswith(f"cd-checks: error: {repo / 'conftest.toml'}: policy[0]: /etc")
