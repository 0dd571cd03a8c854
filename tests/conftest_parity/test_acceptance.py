"""conftest's acceptance.bats (and tests/*/test.bats) cases, translated to cd-checks.

Each test names the bats case it stands for. The flags are conftest's (`-p`, `-d`,
`--parser`, `--namespace`, `-o tap`, ...); the outcome differs only where cd-checks
deliberately differs (see the README, "Coming from conftest"): a usage error such as a
missing policy directory exits 2, not 1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import write_tree
from tests.conftest_parity.parity import (
    FIXTURES,
    cd_checks,
    conftest_counts,
    example,
    messages,
    process,
    severities,
)

Capsys = pytest.CaptureFixture[str]
SERVICE_WARNING = "Found service hello-kubernetes but services are not allowed"
V0_POLICY = 'package main\n\ndeny[msg] {\n\tinput.kind == "Secret"\n\tmsg := "no secrets"\n}\n'
V1_POLICY = 'package main\n\ndeny contains "no secrets" if input.kind == "Secret"\n'


# -- files and the command line --------------------------------------------------------


def test_blank_filename_is_skipped(kubernetes: Path, capsys: Capsys) -> None:
    # "Not fail when passed an explicit blank filename" (issue 13, defect 2): the blank
    # argument must not widen the run to the whole directory (deployment.yaml fails).
    run = cd_checks(capsys, "validate", "-p", "policy", "service.yaml", "", "--format", "json")
    assert run.code == 0, run.out + run.err
    assert {f["path"] for f in json.loads(run.out)["findings"]} == {"service.yaml"}


def test_fail_on_warn(kubernetes: Path, capsys: Capsys) -> None:
    # "Fail when testing a service with warnings" (--fail-on-warn).
    run = cd_checks(capsys, "validate", "--fail-on-warn", "-p", "policy", "service.yaml")
    assert run.code == 1, run.out + run.err


def test_no_fail(kubernetes: Path, capsys: Capsys) -> None:
    # conftest --no-fail: failures reported, exit 0.
    run = cd_checks(capsys, "validate", "--no-fail", "-p", "policy", "deployment.yaml")
    assert run.code == 0, run.out + run.err
    assert "Found deployment hello-kubernetes but deployments are not allowed" in run.out


def test_quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys) -> None:
    # conftest --quiet: nothing printed for a passing run; a failing one still reports.
    example("compose", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "--quiet", "docker-compose-valid.yml")
    assert (run.code, run.out) == (0, ""), run.out + run.err
    run = cd_checks(capsys, "validate", "--quiet", "docker-compose.yml")
    assert run.code == 1 and "No images tagged latest" in run.out, run.out + run.err


def test_missing_policy_directory_is_an_error(kubernetes: Path, capsys: Capsys) -> None:
    # "Fail when testing with no policies path": conftest exits 1; cd-checks calls a
    # usage error 2, on one line (a documented difference).
    run = cd_checks(capsys, "validate", "-p", "internal/", "deployment.yaml")
    assert run.code == 2, run.out + run.err
    assert run.err.startswith("cd-checks: error: ") and "internal" in run.err
    assert len(run.err.splitlines()) == 1, run.err


def test_unknown_namespace_passes(kubernetes: Path, capsys: Capsys) -> None:
    # "Pass when testing a blank namespace" (issue 13, defect 3).
    run = cd_checks(
        capsys, "validate", "--namespace", "notpresent", "-p", "policy", "deployment.yaml"
    )
    assert run.code == 0, run.out + run.err
    assert cd_checks(capsys, "validate", "-p", "policy", "deployment.yaml").code == 1


def test_several_input_kinds_in_one_run(kubernetes: Path, capsys: Capsys) -> None:
    # "Test command with multiple input type": a TOML file beside the YAML one.
    (kubernetes / "traefik.toml").write_bytes((FIXTURES / "toml" / "traefik.toml").read_bytes())
    run = cd_checks(capsys, "validate", "traefik.toml", "service.yaml", "-p", "policy")
    assert run.code == 0, run.out + run.err
    assert SERVICE_WARNING in run.out


def test_several_policy_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # "Can have multiple policy flags": 2 failures, one from each directory.
    example("multidir", tmp_path, monkeypatch)
    run = cd_checks(
        capsys, "validate", "--policy", "org", "--policy", "team", "data.json", "--format", "json"
    )
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["Org policy forbids foo=bar", "Team policy forbids baz=qux"]


def test_a_rego_file_as_the_policy_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # "Allow .rego files in the policy flag": a Terraform plan (JSON) against one file.
    example("hcl1", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "-p", "policy/base.rego", "gke-show.json")
    assert run.code == 1, run.out + run.err
    assert (
        "Terraform plan will change prohibited resources in the following namespaces: "
        "google_iam, google_container"
    ) in run.out


def test_ignore_regex_skips_matching_files_of_a_directory(kubernetes: Path, capsys: Capsys) -> None:
    # conftest --ignore: files of a directory argument whose path matches are not tested.
    run = cd_checks(
        capsys,
        "validate",
        "-p",
        "policy",
        ".",
        "--ignore",
        "deployment|combine",
        "--format",
        "json",
    )
    assert run.code == 0, run.out + run.err
    assert messages(run) == [SERVICE_WARNING]


def test_an_explicit_file_of_an_unsupported_kind_is_never_checked_as_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # issue 13, defect 9: "no problems in 0 files", exit 0, for a file given explicitly.
    # conftest stops with an error; cd-checks says so in a warning naming the file (the
    # README's known differences), which --fail-on-warn makes fail.
    root = example("kubernetes", tmp_path, monkeypatch)
    (root / "notes.bin").write_bytes(b"\x00\x01binary")
    run = cd_checks(capsys, "validate", "-p", "policy", "notes.bin")
    assert "no problems" not in run.out
    assert re.search(r"^notes\.bin .*not checked", run.out, re.M), run.out + run.err
    run = cd_checks(capsys, "validate", "--fail-on-warn", "-p", "policy", "notes.bin")
    assert run.code == 1, run.out + run.err


def test_conftest_environment_variables(
    kubernetes: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # conftest reads its flags from CONFTEST_* variables too (viper's AutomaticEnv).
    (kubernetes / "policy").rename(kubernetes / "rules")
    monkeypatch.setenv("CONFTEST_POLICY", "rules")
    run = cd_checks(capsys, "validate", "deployment.yaml", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert severities(run) == {"error": 4}
    monkeypatch.setenv("CONFTEST_NAMESPACE", "notpresent")
    run = cd_checks(capsys, "validate", "deployment.yaml")
    assert run.code == 0, run.out + run.err


@pytest.mark.parametrize("command", [["validate", "data.yaml"], ["policy", "test"]])
@pytest.mark.parametrize(
    ("policy", "version", "code"),
    [(V0_POLICY, "v0", 0), (V0_POLICY, "v1", 2), (V1_POLICY, "v0", 2), (V1_POLICY, "v1", 0)],
    ids=["v0-as-v0", "v0-as-v1", "v1-as-v0", "v1-as-v1"],
)
def test_rego_version(
    command: list[str], policy: str, version: str, code: int, repo_dir: Path, capsys: Capsys
) -> None:
    # tests/rego-version: TEST and VERIFY, each policy under each --rego-version; conftest's
    # refusal (exit 1) is a usage error here (exit 2).
    write_tree(repo_dir, {"policy/p.rego": policy, "data.yaml": "---\nkind: ConfigMap\n"})
    if command[0] == "policy":
        write_tree(repo_dir, {"policy/p_test.rego": policy.split("\n", 1)[0] + "\n"})
    run = cd_checks(capsys, *command, "--policy=policy/p.rego", f"--rego-version={version}")
    assert run.code == code, run.out + run.err


# -- stdin and --parser ----------------------------------------------------------------


@pytest.mark.parametrize("parser", [[], ["--parser", "yaml"]], ids=["detected", "parser-yaml"])
def test_yaml_on_stdin(parser: list[str], kubernetes: Path) -> None:
    # "when testing a YAML document via stdin, default parser should be yaml ..." and
    # "Pass when testing a YAML document via stdin".
    stdin = (kubernetes / "service.yaml").read_text()
    run = process(kubernetes, "validate", *parser, "-p", "policy", "-", stdin=stdin)
    assert run.code == 0, run.out + run.err
    assert SERVICE_WARNING in run.out


def test_ini_on_stdin_with_parser_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # "Can parse stdin with parser flag": typed INI values through stdin too.
    root = example("ini", tmp_path, monkeypatch)
    stdin = (root / "grafana.ini").read_text()
    run = process(root, "validate", "-p", "policy", "--parser", "ini", "-", stdin=stdin)
    assert run.code == 1, run.out + run.err
    assert "Users should verify their e-mail address" in run.out
    assert "Basic auth should be enabled" not in run.out


def test_stdin_filename_picks_the_parser_and_names_the_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `helm template ... | cd-checks validate - --stdin-filename NAME` (issue 13).
    root = example("ini", tmp_path, monkeypatch)
    stdin = (root / "grafana.ini").read_text()
    run = process(
        root, "validate", "-", "--stdin-filename", "rendered/grafana.ini", "--format", "json",
        stdin=stdin,
    )  # fmt: skip
    assert run.code == 1, run.out + run.err
    findings = [f for f in json.loads(run.out)["findings"] if f["check"] == "policy"]
    assert [(f["path"], f["message"]) for f in findings] == [
        ("rendered/grafana.ini", "Users should verify their e-mail address")
    ]


def test_parser_flag_forces_the_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # "Using --parser should force the chosen parser and fail the rego policy".
    example("hcl2", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "-p", "policy", "terraform.tf", "--parser", "ini")
    assert run.code == 1, run.out + run.err
    assert "ALB `my-alb-listener`" not in run.out


def test_unknown_parser_is_one_error_line_naming_the_parsers(
    kubernetes: Path, capsys: Capsys
) -> None:
    run = cd_checks(capsys, "validate", "--parser", "cue", "service.yaml")
    assert run.code == 2, run.out + run.err
    assert run.err.startswith("cd-checks: error: ") and "hcl2" in run.err and "yaml" in run.err


# -- parsers and cd-checks parse -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "code", "message"),
    [
        ("xml", ["pom.xml"], 1, "--- maven-plugin must have the version: 3.6.1"),
        ("properties", ["sample.properties"], 0, None),
        ("dotenv", ["sample.env"], 1, "MYSQL_USER should not be root"),
        ("ignore/gitignore", [".gitignore"], 1, "id_rsa files should be ignored"),
        ("ignore/dockerignore", [".dockerignore"], 1, ".git directories should be ignored"),
        ("hcl1", ["-p", "policy/gke.rego", "gke.tf"], 0, None),
        ("docker", ["Dockerfile"], 1, 'unallowed image found ["openjdk:8-jdk-alpine"]'),
        ("edn", ["app.edn"], 1, "production environment should have error only logging"),
    ],
    ids=["xml", "properties", "dotenv", "gitignore", "dockerignore", "hcl1", "dockerfile", "edn"],
)
def test_can_parse(
    name: str,
    args: list[str],
    code: int,
    message: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capsys,
) -> None:
    # "Can parse xml files", "Can parse properties files", ".gitignore", ".dockerignore",
    # "Can parse hcl1 files", "Can parse docker files", "Can parse edn files"; dotenv
    # from examples/dotenv.
    example(name, tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", *args)
    assert run.code == code, run.out + run.err
    if message:
        assert message in run.out, run.out


def test_an_ignore_file_is_one_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # The ignore parser hands the whole file to the policy as one list of entries.
    root = example("ignore/gitignore", tmp_path, monkeypatch)
    (root / ".gitignore").write_text("node_modules\nid_rsa\n")
    run = cd_checks(capsys, "validate", ".gitignore")
    assert run.code == 0, run.out + run.err
    (root / ".gitignore").write_text("node_modules\n")
    run = cd_checks(capsys, "validate", ".gitignore")
    assert run.code == 1, run.out + run.err


def test_properties_rules_fire_on_bad_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    root = example("properties", tmp_path, monkeypatch)
    with (root / "sample.properties").open("a") as handle:
        handle.write("db.secret=hunter2\nlogin.url=ftp.example.com\n")
    run = cd_checks(capsys, "validate", "sample.properties", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == [
        "'db.secret' may contain a secret value",
        "Must have a valid uri defined 'ftp.example.com'",
    ]


def test_nested_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys) -> None:
    # "Test command works with nested namespaces": 1 test, 0 passed, 1 failure.
    example("hcl1", tmp_path, monkeypatch)
    run = cd_checks(
        capsys, "validate", "--namespace", "main.gke", "-p", "policy/", "gke.tf", "--format", "json"
    )
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["File path index to key value does not exist"]


def test_combine_hcl1_and_reference_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # "Can combine configs and reference by file" (--parser hcl1, --combine).
    example("hcl1", tmp_path, monkeypatch)
    run = cd_checks(
        capsys, "validate", "-p", "policy/gke_combine.rego", "gke.tf", "--combine",
        "--parser", "hcl1", "--all-namespaces",
    )  # fmt: skip
    assert run.code == 0, run.out + run.err


def test_jsonc_comments_are_read(repo_dir: Path, capsys: Capsys) -> None:
    write_tree(
        repo_dir,
        {
            "policy/main.rego": 'package main\n\ndeny contains "debug is on" if input.debug\n',
            "settings.jsonc": '{\n  // editor settings\n  "debug": true /* why */\n}\n',
        },
    )
    run = cd_checks(capsys, "validate", "settings.jsonc", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["debug is on"]


def test_ini_shape_as_conftest_parse_prints_it(repo_dir: Path, capsys: Capsys) -> None:
    # conftest's INI parser (go-ini + conftest's typing): keys before the first section
    # and [DEFAULT] are left out and never merged into sections; names keep their case;
    # numbers and booleans are typed, anything else stays a string.
    text = (
        "top = 1\n\n[DEFAULT]\nshared = on\n\n"
        "[Server]\nHttpPort = 3000\nratio = 0.5\nenabled = true\nname = web\nmode = yes\n"
    )
    write_tree(repo_dir, {"app.ini": text})
    run = cd_checks(capsys, "parse", "app.ini")
    assert run.code == 0, run.out + run.err
    assert json.loads(run.out) == {
        "Server": {"HttpPort": 3000, "ratio": 0.5, "enabled": True, "name": "web", "mode": "yes"}
    }


def test_tfvars_are_hcl2(repo_dir: Path, capsys: Capsys) -> None:
    write_tree(
        repo_dir,
        {
            "policy/main.rego": (
                'package main\n\ndeny contains "too many instances" if input.instance_count > 2\n'
            ),
            "prod.tfvars": 'region         = "eu-west-1"\ninstance_count = 3\n',
        },
    )
    run = cd_checks(capsys, "validate", "prod.tfvars", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["too many instances"]


def test_parse_prints_what_a_policy_sees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # "Can parse inputs with 'conftest parse'".
    example("docker", tmp_path, monkeypatch)
    run = cd_checks(capsys, "parse", "Dockerfile")
    assert run.code == 0, run.out + run.err
    assert '"Cmd": "from"' in run.out


@pytest.mark.parametrize(
    "files", [["user1.yaml", "user2.yaml"], ["users.yaml"]], ids=["two-files", "multi-document"]
)
def test_combine_counts(
    files: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # "Can combine yaml files" and "Combining multi-document yaml file has same result":
    # 2 tests, 1 passed, 0 warnings, 1 failure.
    example("combine", tmp_path, monkeypatch)
    args = ("validate", "-p", "policy", "team.yaml", *files, "--combine")
    run = cd_checks(capsys, *args, "--format", "conftest-json")
    assert run.code == 1, run.out + run.err
    assert conftest_counts(run) == {
        "tests": 2,
        "successes": 1,
        "warnings": 0,
        "failures": 1,
        "exceptions": 0,
    }
    run = cd_checks(capsys, *args, "--format", "json")
    assert messages(run) == ['Missing users ["jane.doe@example.com"]']


# -- policy semantics ------------------------------------------------------------------


def test_bare_boolean_deny_counts_as_conftest_counts_it(repo_dir: Path, capsys: Capsys) -> None:
    # tests/problematic-if: "Bare deny rule can be used without contains or if" gives
    # 1 test, 1 passed (conftest reads a value that is not a list as no message), and
    # "Test works as expected using contains and if" gives 1 test, 1 failure. (The issue's
    # text says a true boolean deny is a failure; conftest's own suite says it passes.)
    write_tree(
        repo_dir,
        {
            "policy/bare.rego": "package main\n\ndeny if {\n\ttrue\n}\n",
            "data.yaml": "---\nfoo: bar\n",
        },
    )
    run = cd_checks(capsys, "validate", "data.yaml", "--format", "conftest-json")
    assert run.code == 0, run.out + run.err
    assert conftest_counts(run) == {
        "tests": 1,
        "successes": 1,
        "warnings": 0,
        "failures": 0,
        "exceptions": 0,
    }
    (repo_dir / "policy" / "bare.rego").write_text(
        'package main\n\ndeny contains msg if {\n\tmsg := "foo"\n}\n'
    )
    run = cd_checks(capsys, "validate", "data.yaml", "--format", "conftest-json")
    assert run.code == 1, run.out + run.err
    assert conftest_counts(run) == {
        "tests": 1,
        "successes": 0,
        "warnings": 0,
        "failures": 1,
        "exceptions": 0,
    }


def test_the_old_partial_set_form_is_refused(repo_dir: Path, capsys: Capsys) -> None:
    # tests/problematic-if: "Error is raised when if is used without contains".
    write_tree(
        repo_dir,
        {
            "policy/main.rego": 'package main\n\ndeny[msg] if {\n\tmsg := "foo"\n}\n',
            "data.json": "{}\n",
        },
    )
    run = cd_checks(capsys, "validate", "data.json")
    assert run.code == 2, run.out + run.err
    assert run.err.startswith("cd-checks: error: ") and "contains" in run.err


def test_empty_document_is_evaluated_with_null_input(repo_dir: Path, capsys: Capsys) -> None:
    # issue 13, defect 7: conftest evaluates an empty document with input null.
    write_tree(
        repo_dir,
        {
            "policy/main.rego": 'package main\n\ndeny contains "empty document" if input == null\n',
            "empty.yaml": "---\n# nothing yet\n",
        },
    )
    run = cd_checks(capsys, "validate", "empty.yaml", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["empty document"]


def test_data_conftest_file_names_the_file(repo_dir: Path, capsys: Capsys) -> None:
    # issue 13, defect 9: data.conftest.file = {"name": ..., "dir": ...}.
    policy = (
        "package main\n\n"
        "deny contains msg if {\n"
        '\tendswith(data.conftest.file.name, "prod.yaml")\n'
        '\tmsg := sprintf("prod file %s", [data.conftest.file.name])\n'
        "}\n"
    )
    write_tree(
        repo_dir,
        {"policy/main.rego": policy, "env/prod.yaml": "---\na: 1\n", "env/dev.yaml": "---\na: 1\n"},
    )
    run = cd_checks(capsys, "validate", "env/", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert [f["path"] for f in json.loads(run.out)["findings"]] == ["env/prod.yaml"]


def test_a_comprehension_may_redeclare_an_outer_name(repo_dir: Path, capsys: Capsys) -> None:
    # issue 13, defect 6: valid Rego (OPA accepts it) that regorus 0.13 refused.
    policy = (
        "package main\n\n"
        "deny contains msg if {\n"
        "\tsome c in input.containers\n"
        "\timages := {i | some c in input.containers; i := c.image}\n"
        '\tc.image == "nginx:latest"\n'
        '\tmsg := sprintf("latest tag among %d images", [count(images)])\n'
        "}\n"
    )
    write_tree(
        repo_dir,
        {
            "policy/main.rego": policy,
            "pod.json": '{"containers": [{"image": "nginx:latest"}, {"image": "redis:7"}]}\n',
        },
    )
    run = cd_checks(capsys, "validate", "pod.json", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["latest tag among 2 images"]


def test_rego_metadata_rule(repo_dir: Path, capsys: Capsys) -> None:
    # issue 13, defect 6: rego.metadata.rule() gives the rule's METADATA annotations.
    policy = (
        "package main\n\n"
        "# METADATA\n"
        "# title: No debug\n"
        "# custom:\n"
        "#   id: APP-001\n"
        "deny contains msg if {\n"
        "\tinput.debug\n"
        '\tmsg := sprintf("%s: debug is on", [rego.metadata.rule().custom.id])\n'
        "}\n"
    )
    write_tree(repo_dir, {"policy/main.rego": policy, "app.json": '{"debug": true}\n'})
    run = cd_checks(capsys, "validate", "app.json", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["APP-001: debug is on"]


def test_a_builtin_error_loses_no_other_finding(repo_dir: Path, capsys: Capsys) -> None:
    # examples/builtin-errors, and issue 13 defect 6: one failing builtin never aborts
    # the run; every other rule's finding is still reported.
    policy = (
        "package main\n\n"
        'deny_dns contains "testing DNS resolution" if net.lookup_ip_addr("not-real-domainxyz")\n\n'
        'deny contains "real finding" if input.kind == "Deployment"\n'
    )
    write_tree(repo_dir, {"policy/main.rego": policy, "d.json": '{"kind": "Deployment"}\n'})
    run = cd_checks(capsys, "validate", "d.json", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert "real finding" in messages(run)


def test_a_builtin_error_in_one_body_loses_no_finding_of_another_body(
    repo_dir: Path, capsys: Capsys
) -> None:
    # examples/builtin-errors: conftest leaves the failing body undefined (without
    # --show-builtin-errors) and still reports the other `deny` body's finding.
    policy = (
        "package main\n\n"
        'deny contains "testing DNS resolution" if net.lookup_ip_addr("not-real-domainxyz")\n\n'
        'deny contains "real finding" if input.kind == "Deployment"\n'
    )
    write_tree(repo_dir, {"policy/main.rego": policy, "d.json": '{"kind": "Deployment"}\n'})
    run = cd_checks(capsys, "validate", "d.json", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert "real finding" in messages(run)


def test_show_builtin_errors_in_validate(repo_dir: Path, capsys: Capsys) -> None:
    # conftest: a failing builtin leaves its rule undefined, unless --show-builtin-errors.
    write_tree(
        repo_dir,
        {
            "policy/main.rego": (
                'package main\n\ndeny contains "too big" if to_number(input.size) > 10\n'
            ),
            "a.json": '{"size": "ten"}\n',
        },
    )
    run = cd_checks(capsys, "validate", "a.json", "--format", "json")
    assert run.code == 0, run.out + run.err
    assert messages(run) == []
    run = cd_checks(capsys, "validate", "a.json", "--show-builtin-errors")
    assert run.code == 1, run.out + run.err
    assert "main.rego:3:" in run.out, run.out  # where the builtin failed


# -- outputs ---------------------------------------------------------------------------


def test_tap_output(kubernetes: Path, capsys: Capsys) -> None:
    # "Can output tap format in test command".
    run = cd_checks(capsys, "validate", "-p", "policy/", "-o", "tap", "deployment.yaml")
    assert run.code == 1, run.out + run.err
    assert re.search(r"^not ok \d+ - ", run.out, re.M), run.out


def test_table_output(kubernetes: Path, capsys: Capsys) -> None:
    # "Can output table format in test command".
    run = cd_checks(capsys, "validate", "-p", "policy/", "-o", "table", "deployment.yaml")
    assert run.code == 1, run.out + run.err
    assert "failure" in run.out and "deployment.yaml" in run.out, run.out


def test_conftest_json_shape(kubernetes: Path, capsys: Capsys) -> None:
    # conftest's `-o json`: a list of {filename, namespace, successes, warnings, failures}.
    run = cd_checks(capsys, "validate", "-p", "policy", "--format", "conftest-json", "service.yaml")
    assert run.code == 0, run.out + run.err
    assert json.loads(run.out) == [
        {
            "filename": "service.yaml",
            "namespace": "main",
            "successes": 4,
            "warnings": [{"msg": SERVICE_WARNING}],
        }
    ]


def test_a_result_location_reaches_the_conftest_json(repo_dir: Path, capsys: Capsys) -> None:
    # tests/source-location: a result's `_loc` is its location in `-o json`.
    policy = (
        'package main\n\ndeny contains {"msg": "test", "other": "metadata", "_loc": input.loc}\n'
    )
    write_tree(
        repo_dir,
        {"policy/main.rego": policy, "data.yaml": "---\nloc:\n  file: test.txt\n  line: 123\n"},
    )
    run = cd_checks(capsys, "validate", "-o", "json", "data.yaml")
    assert run.code == 1, run.out + run.err
    assert '"file": "test.txt"' in run.out and '"line": 123' in run.out, run.out


@pytest.mark.parametrize(
    "fmt", ["text", "json", "conftest-json", "tap", "table", "junit", "sarif", "github", "gitlab"]
)
def test_the_applied_exception_shows_in_every_format(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # issue 13, defect 5: "no EXCP lines, no count, in any format".
    example("exceptions", tmp_path, monkeypatch)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    run = cd_checks(capsys, "validate", "deployments.yaml", "--format", fmt)
    assert run.code == 1, run.out + run.err
    assert "data.main.exception[_][_]" in run.out and "run_as_root" in run.out, run.out


def test_no_color(kubernetes: Path) -> None:
    # "Can disable color": no yellow escape even where colour is forced.
    args = ("validate", "-p", "policy", "service.yaml")
    coloured = process(kubernetes, *args, env={"FORCE_COLOR": "1"})
    assert "\x1b[" in coloured.out, coloured.out  # the test can fail
    run = process(kubernetes, *args, "--no-color", env={"FORCE_COLOR": "1"})
    assert run.code == 0, run.out + run.err
    assert "\x1b[" not in run.out


def test_trace(kubernetes: Path, capsys: Capsys) -> None:
    # "Test command has trace flag".
    run = cd_checks(capsys, "validate", "-p", "policy", "service.yaml", "--trace")
    assert run.code == 0, run.out + run.err
    assert "data.kubernetes.is_service" in run.out + run.err


@pytest.mark.parametrize("output", ["json", "tap", "table"])
def test_trace_in_other_outputs(output: str, kubernetes: Path, capsys: Capsys) -> None:
    # "Test command with json/tap/table output and trace flag".
    run = cd_checks(capsys, "validate", "-p", "policy", "service.yaml", "-o", output, "--trace")
    assert run.code == 0, run.out + run.err
    # bats' $output holds both streams; cd-checks keeps the report parseable on stdout.
    assert "data.kubernetes.is_service" in run.out + run.err, run.out


# -- policy test (conftest verify) -----------------------------------------------------


def test_verify_kubernetes(kubernetes: Path, capsys: Capsys) -> None:
    # "Can verify rego tests": 4 tests, 4 passed.
    run = cd_checks(capsys, "policy", "test", "--policy", "policy")
    assert run.code == 0, run.out + run.err
    assert "4 tests, 4 passed" in run.out, run.out


def test_verify_missing_policy_directory(kubernetes: Path, capsys: Capsys) -> None:
    # "Fail when verifying with no policies path" (exit 2 here: a usage error).
    run = cd_checks(capsys, "policy", "test", "-p", "internal/")
    assert run.code == 2, run.out + run.err
    assert run.err.startswith("cd-checks: error: ") and "internal" in run.err, run.err


@pytest.mark.parametrize(("fmt", "expected"), [("tap", r"^ok \d+ - "), ("table", "success")])
def test_verify_outputs(fmt: str, expected: str, kubernetes: Path, capsys: Capsys) -> None:
    # "Can output tap format in verify command", "... table format in verify command".
    run = cd_checks(capsys, "policy", "test", "-p", "policy/", "-o", fmt)
    assert run.code == 0, run.out + run.err
    assert re.search(expected, run.out, re.M), run.out


def test_verify_trace(kubernetes: Path, capsys: Capsys) -> None:
    # "Verify command has trace flag".
    run = cd_checks(capsys, "policy", "test", "--policy", "policy", "--trace")
    assert run.code == 0, run.out + run.err
    assert "data.kubernetes.is_service" in run.out + run.err


def test_show_builtin_errors_in_unit_tests(repo_dir: Path, capsys: Capsys) -> None:
    # tests/builtin-errors: without the flag the test fails; with it the error is named.
    write_tree(
        repo_dir,
        {
            "policy/main.rego": (
                'package main\n\ndeny contains {"msg": "some error"} if input.test_field == 123\n'
            ),
            "policy/main_test.rego": (
                "package main\n\ntest_deny_valid if {\n"
                '\tnot deny with input as parse_config_file("file_does_not_exist.yaml")\n}\n'
            ),
        },
    )
    run = cd_checks(capsys, "policy", "test")
    assert run.code == 1, run.out + run.err
    run = cd_checks(capsys, "policy", "test", "--show-builtin-errors")
    assert run.code == 1, run.out + run.err
    assert "file_does_not_exist.yaml" in run.out + run.err


def test_verify_a_policy_that_reads_its_annotations(repo_dir: Path, capsys: Capsys) -> None:
    # tests/annotations: the message template comes from the rule's METADATA.
    policy = (
        "package main\n\n"
        "import data.services\n\n"
        "# METADATA\n"
        "# title: Denied ports\n"
        "# custom:\n"
        "#   template: 'Cannot expose port %v on LoadBalancer. Denied ports: %v'\n"
        "deny contains msg if {\n"
        '\tinput.spec.type == "LoadBalancer"\n'
        "\tsome port in input.spec.ports\n"
        "\tport.port in services.ports\n"
        "\tmsg := sprintf(rego.metadata.rule().custom.template, [port.port, services.ports])\n"
        "}\n"
    )
    test = (
        "package main\n\n"
        "test_denied_port if {\n"
        '\tdeny["Cannot expose port 22 on LoadBalancer. Denied ports: [22, 21]"] with input as\n'
        '\t\t{"spec": {"type": "LoadBalancer", "ports": [{"port": 22}]}}\n'
        "}\n"
    )
    data = "---\nservices:\n  ports: [22, 21]\n"
    write_tree(
        repo_dir,
        {"policy/base.rego": policy, "policy/base_test.rego": test, "exclusions/s.yaml": data},
    )
    run = cd_checks(capsys, "policy", "test", "--data", "exclusions")
    assert run.code == 0, run.out + run.err
    assert re.search(r"\b1 tests?, 1 passed", run.out), run.out
