"""conftest's examples/ directories, translated, give the outcomes conftest's suite states.

One test (or a few) per directory the issue names: kubernetes, kubernetes/combine, nginx,
ini, toml, hcl2, docker, exceptions, data, compose, namespace, configfile. The expected
exit codes, counts and messages are those of conftest's acceptance.bats and example
READMEs for the same inputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest_parity.parity import (
    cd_checks,
    conftest_counts,
    example,
    messages,
    severities,
)

Capsys = pytest.CaptureFixture[str]

DEPLOYMENT_FAILURES = [
    "Containers must not run as root in Deployment hello-kubernetes",
    "Deployment hello-kubernetes must provide app/release labels for pod selectors",
    "Found deployment hello-kubernetes but deployments are not allowed",
    "hello-kubernetes must include Kubernetes recommended labels",
]


# -- kubernetes ------------------------------------------------------------------------------


def test_nginx_example_passes_and_a_plain_listener_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    root = example("nginx", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "nginx.conf", "--format", "json")
    assert run.code == 0, run.out + run.err
    assert messages(run) == []
    text = (root / "nginx.conf").read_text()
    (root / "nginx.conf").write_text(text.replace("return 301 https://", "return 301 http://"))
    run = cd_checks(capsys, "validate", "nginx.conf", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["Server listening without SSL must redirect to HTTPS"]


def test_toml_disallowed_cipher_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Can parse toml files".
    example("toml", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "traefik.toml", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == [
        'Following ciphers are not allowed: ["TLS_RSA_WITH_AES_256_GCM_SHA384"]'
    ]


def test_compose_latest_tag_and_old_version_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "No images tagged latest" (from the compose example's policy).
    example("compose", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "docker-compose.yml", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == [
        "Must be using at least version 3.5 of the Compose file format",
        "No images tagged latest",
    ]
    run = cd_checks(capsys, "validate", "docker-compose-valid.yml", "--format", "json")
    assert run.code == 0, run.out + run.err


def test_kubernetes_service_passes_with_one_warning(kubernetes: Path, capsys: Capsys) -> None:
    # acceptance.bats: "Not fail when testing a service with a warning".
    run = cd_checks(capsys, "validate", "service.yaml", "--format", "json")
    assert run.code == 0, run.out + run.err
    assert severities(run) == {"warning": 1}
    assert messages(run) == ["Found service hello-kubernetes but services are not allowed"]


def test_kubernetes_deployment_fails_on_every_rule_including_the_complete_rule_violation(
    kubernetes: Path, capsys: Capsys
) -> None:
    # acceptance.bats: "Fail when testing a deployment with root containers"; the
    # violation rule is a complete rule whose value is an array (issue 13, defect 1).
    run = cd_checks(capsys, "validate", "deployment.yaml", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert severities(run) == {"error": 4}
    assert messages(run) == DEPLOYMENT_FAILURES


def test_kubernetes_deployment_results_are_output_only_once(
    kubernetes: Path, capsys: Capsys
) -> None:
    # acceptance.bats: "Output results only once" (four failures and the summary).
    run = cd_checks(capsys, "validate", "deployment.yaml")
    assert run.code == 1, run.out + run.err
    for message in DEPLOYMENT_FAILURES:
        assert run.out.count(message) == 1, run.out


def test_kubernetes_multi_file_fails_when_the_last_file_is_fine(
    kubernetes: Path, capsys: Capsys
) -> None:
    # acceptance.bats: "Multi-file tests correctly fail when last file is fine".
    run = cd_checks(capsys, "validate", "deployment.yaml", "service.yaml", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert severities(run) == {"error": 4, "warning": 1}


def test_kubernetes_combine_reports_the_deployment_no_service_selects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # examples/kubernetes/combine: `violation := [msg] if` over all documents at once.
    example("kubernetes/combine", tmp_path, monkeypatch)
    run = cd_checks(
        capsys, "validate", "-p", "combine.rego", "combine.yaml", "--combine", "--format", "json"
    )
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["Deployment 'goodbye-kubernetes' has no matching service"]


def test_ini_grafana_typed_values_and_keys_before_the_first_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Can parse ini files". Only the e-mail rule may fail: the others
    # hold only if 3000 is a number and true/false are booleans, as conftest gives them.
    example("ini", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "grafana.ini", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["Users should verify their e-mail address"]


def test_hcl2_terraform_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Can parse hcl files" (ALB `my-alb-listener` is using HTTP ...).
    example("hcl2", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "terraform.tf", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == sorted(
        [
            "ALB `my-alb-listener` is using HTTP rather than HTTPS",
            "ASG `my-rule` defines a fully open ingress",
            "Azure disk `source` is not encrypted",
            'AWS resource: "aws_alb_listener" named "my-alb-listener" is missing required '
            'tags: {"environment", "owner"}',
            'AWS resource: "aws_db_security_group" named "my-group" is missing required '
            'tags: {"environment", "owner"}',
            'AWS resource: "aws_security_group_rule" named "my-rule" is missing required '
            'tags: {"environment", "owner"}',
        ]
    )


def test_hcl2_unit_tests_use_parse_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    example("hcl2", tmp_path, monkeypatch)
    run = cd_checks(capsys, "policy", "test")
    assert run.code == 0, run.out + run.err
    assert "2 tests, 2 passed" in run.out, run.out


def test_docker_image_denied_in_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Can parse docker files".
    example("docker", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "Dockerfile", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == ['unallowed image found ["openjdk:8-jdk-alpine"]']


def test_docker_all_namespaces_adds_the_commands_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Test command with all namespaces flag".
    example("docker", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "Dockerfile", "--all-namespaces", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == [
        'unallowed commands found ["apk add --no-cache python3 python3-dev build-base '
        '&& pip3 install awscli==1.18.1"]',
        'unallowed image found ["openjdk:8-jdk-alpine"]',
    ]


def test_exceptions_one_failure_one_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Exceptions reported correctly" and "Exceptions output":
    # 2 tests, 0 passed, 0 warnings, 1 failure, 1 exception; an EXCP line naming the query.
    example("exceptions", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "deployments.yaml", "--no-color")
    assert run.code == 1, run.out + run.err
    assert "Containers must not run as root in Deployment cannot-run-as-root" in run.out
    assert "Containers must not run as root in Deployment can-run-as-root" not in run.out
    excp = [line for line in run.out.splitlines() if "EXCP" in line]
    assert len(excp) == 1, run.out
    assert "deployments.yaml" in excp[0] and "run_as_root" in excp[0], excp
    assert re.search(r"\b1 exception\b", run.out), run.out


def test_exceptions_counted_in_conftest_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    example("exceptions", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "deployments.yaml", "--format", "conftest-json")
    assert run.code == 1, run.out + run.err
    assert conftest_counts(run) == {
        "tests": 2,
        "successes": 0,
        "warnings": 0,
        "failures": 1,
        "exceptions": 1,
    }


def test_suppress_exceptions_hides_the_line_but_keeps_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Suppress exceptions output".
    example("exceptions", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "deployments.yaml", "--no-color", "--suppress-exceptions")
    assert run.code == 1, run.out + run.err
    assert "EXCP" not in run.out
    assert re.search(r"\b1 exception\b", run.out), run.out


def test_data_documents_reach_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Can load data along with rego policies".
    example("data", tmp_path, monkeypatch)
    run = cd_checks(
        capsys, "validate", "-p", "policy", "-d", "exclusions", "service.yaml", "--format", "json"
    )
    assert run.code == 1, run.out + run.err
    assert messages(run) == ["Cannot expose port 22 on LoadBalancer. Denied ports: [22, 21]"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--namespace", "group1"], ["nested json group1 failed"]),
        (["--namespace", "group2"], ["nested json group2 failed"]),
        (
            ["--namespace", "group1", "--namespace", "group2"],
            ["nested json group1 failed", "nested json group2 failed"],
        ),
        (["--namespace", "group*"], ["nested json group1 failed", "nested json group2 failed"]),
        (["--namespace", "gr?up2"], ["nested json group2 failed"]),
        (["--all-namespaces"], ["nested json group1 failed", "nested json group2 failed"]),
    ],
    ids=["group1", "group2", "both", "glob", "glob-one", "all"],
)
def test_namespace_selection(
    flags: list[str],
    expected: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Capsys,
) -> None:
    # conftest tests/nested: name overlap, several --namespace flags; globs (issue 13, 8).
    example("namespace", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "data.json", *flags, "--format", "json")
    assert run.code == 1, run.out + run.err
    assert messages(run) == expected


def test_namespace_not_present_passes_with_nothing_tested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Pass when testing a blank namespace" (issue 13, defect 3); here
    # the default `main` has no rules at all.
    example("namespace", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "data.json", "--format", "json")
    assert run.code == 0, run.out + run.err
    assert messages(run) == []
    run = cd_checks(capsys, "validate", "data.json", "--namespace", "notpresent")
    assert run.code == 0, run.out + run.err


def test_configfile_conftest_toml_sets_policy_dir_and_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Fail due to picking up settings from configuration file".
    example("configfile", tmp_path, monkeypatch)
    run = cd_checks(capsys, "validate", "deployment.yaml")
    assert run.code == 1, run.out + run.err
    assert "Containers must not run as root" in run.out


def test_kubernetes_combine_unit_test_reads_the_combined_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # combine_test.rego: parse_combined_config_files, relative to the test's directory.
    example("kubernetes/combine", tmp_path, monkeypatch)
    run = cd_checks(capsys, "policy", "test", "-p", ".")
    assert run.code == 0, run.out + run.err
    assert "1 test, 1 passed" in run.out or "1 tests, 1 passed" in run.out, run.out


def test_toml_failing_unit_test_fails_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Fail when unit test rego".
    example("toml", tmp_path, monkeypatch)
    run = cd_checks(capsys, "policy", "test", "-p", "policy")
    assert run.code == 1, run.out + run.err
    assert "1 failed" in run.out or "1 failure" in run.out, run.out


def test_data_documents_reach_the_unit_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    # acceptance.bats: "Can load data in unit tests".
    example("data", tmp_path, monkeypatch)
    run = cd_checks(capsys, "policy", "test", "-p", "policy", "-d", "exclusions")
    assert run.code == 0, run.out + run.err
    assert "1 test, 1 passed" in run.out or "1 tests, 1 passed" in run.out, run.out


def test_kubernetes_service_counts_five_tests_four_passed_one_warning(
    kubernetes: Path, capsys: Capsys
) -> None:
    # acceptance.bats: "The number of tests run is accurate":
    # 5 tests, 4 passed, 1 warning, 0 failures, 0 exceptions.
    run = cd_checks(capsys, "validate", "service.yaml", "--format", "conftest-json")
    assert run.code == 0, run.out + run.err
    assert conftest_counts(run) == {
        "tests": 5,
        "successes": 4,
        "warnings": 1,
        "failures": 0,
        "exceptions": 0,
    }


def test_nginx_unit_tests_parse_config_and_parse_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capsys
) -> None:
    example("nginx", tmp_path, monkeypatch)
    run = cd_checks(capsys, "policy", "test")
    assert run.code == 0, run.out + run.err
    assert "4 tests, 4 passed" in run.out, run.out
