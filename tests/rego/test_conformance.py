"""The embedded-engine conformance set: the Rego features that chose regorus over regopy.

Each case is a small policy a conftest user writes every day. If a regorus
upgrade breaks one of them, the pin in pyproject.toml must not move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cd_checks.errors import PolicyError
from cd_checks.rego import PolicySource, RuleResult, open_engine, run_tests

FIXTURES = Path(__file__).parent / "fixtures"


def write_policy(directory: Path, text: str, name: str = "policy.rego") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, "utf-8")
    return directory


def messages(policy_dir: Path, document: Any, **source: Any) -> list[str]:
    evaluator = open_engine(PolicySource((policy_dir,), **source), engine="embedded")
    (outcome,) = evaluator.evaluate([document], namespaces=None)
    assert outcome.errors == ()
    return sorted(result.message for result in outcome.results)


def test_unit_test_with_input_as_calling_a_builtin(tmp_path: Path) -> None:
    # regopy failed this case and poisoned every later query on the interpreter.
    write_policy(
        tmp_path,
        "package main\n\n"
        "deny contains msg if {\n"
        '\tmsg := sprintf("image %s is not pinned", [input.image])\n'
        '\tnot contains(input.image, "@sha256:")\n'
        "}\n",
    )
    write_policy(
        tmp_path,
        "package main\n\n"
        "test_unpinned if {\n"
        '\tdeny["image nginx:1 is not pinned"] with input as {"image": "nginx:1"}\n'
        "}\n\n"
        "test_pinned if {\n"
        '\tcount(deny) == 0 with input as {"image": "nginx@sha256:abc"}\n'
        "}\n",
        name="policy_test.rego",
    )
    results = run_tests(PolicySource((tmp_path,)))
    assert [(r.name, r.passed) for r in results] == [
        ("test_unpinned", True),
        ("test_pinned", True),
    ]


def test_some_key_value_in_object(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "package main\n\n"
        "deny contains msg if {\n"
        "\tsome name, value in input.labels\n"
        '\tvalue == ""\n'
        '\tmsg := sprintf("label %s is empty", [name])\n'
        "}\n",
    )
    document = {"labels": {"team": "", "app": "web", "tier": ""}}
    assert messages(tmp_path, document) == ["label team is empty", "label tier is empty"]


def test_every(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "package main\n\n"
        "deny contains msg if {\n"
        "\tnot all_tls\n"
        '\tmsg := "every listener must use TLS"\n'
        "}\n\n"
        "all_tls if {\n"
        "\tevery listener in input.listeners {\n"
        "\t\tlistener.tls == true\n"
        "\t}\n"
        "}\n",
    )
    assert messages(tmp_path, {"listeners": [{"tls": True}, {"tls": False}]}) == [
        "every listener must use TLS"
    ]
    assert messages(tmp_path, {"listeners": [{"tls": True}]}) == []


BUILTINS = """package main

deny contains "sprintf" if sprintf("%s-%d", ["a", 1]) == "a-1"
deny contains "regex.match" if regex.match(`^v[0-9]+\\.[0-9]+$`, input.version_tag)
deny contains "semver.compare" if semver.compare(input.version, "1.2.0") < 0
deny contains "glob.match" if glob.match("*.example.com", ["."], input.host)
deny contains "net.cidr_contains" if net.cidr_contains("10.0.0.0/8", input.ip)
deny contains "time.parse_duration_ns" if time.parse_duration_ns(input.timeout) == 90000000000
"""


def test_builtins(tmp_path: Path) -> None:
    write_policy(tmp_path, BUILTINS)
    document = {
        "version_tag": "v1.2",
        "version": "1.1.9",
        "host": "api.example.com",
        "ip": "10.1.2.3",
        "timeout": "1m30s",
    }
    assert messages(tmp_path, document) == sorted(
        [
            "sprintf",
            "regex.match",
            "semver.compare",
            "glob.match",
            "net.cidr_contains",
            "time.parse_duration_ns",
        ]
    )


def test_builtins_say_no_when_the_input_does_not_match(tmp_path: Path) -> None:
    write_policy(tmp_path, BUILTINS)
    document = {
        "version_tag": "1.2",
        "version": "1.3.0",
        "host": "api.example.org",
        "ip": "192.168.1.1",
        "timeout": "30s",
    }
    assert messages(tmp_path, document) == ["sprintf"]


def test_v0_file_is_rejected_in_v1_mode_with_the_hint() -> None:
    with pytest.raises(PolicyError) as caught:
        open_engine(PolicySource((FIXTURES / "v0" / "policy",)), engine="embedded")
    message = str(caught.value)
    assert message.startswith(f"{FIXTURES / 'v0' / 'policy' / 'deny.rego'}:3:11: ")
    assert "looks like Rego v0 syntax" in message
    assert "--rego-version v0" in message
    assert "\n" not in message


def test_v0_file_evaluates_in_v0_mode() -> None:
    source = PolicySource((FIXTURES / "v0" / "policy",), rego_version="v0")
    evaluator = open_engine(source, engine="embedded")
    outcomes = evaluator.evaluate(
        [{"kind": "Deployment", "name": "web"}, {"kind": "Service", "name": "web"}],
        namespaces=["main"],
    )
    assert [o.results for o in outcomes] == [
        (RuleResult("main", "deny", "failure", "Deployment web is not allowed", {}),),
        (),
    ]


def test_v1_file_is_rejected_in_v0_mode_instead_of_misread(tmp_path: Path) -> None:
    write_policy(tmp_path, 'package main\n\ndeny contains msg if {\n\tinput.x\n\tmsg := "x"\n}\n')
    with pytest.raises(PolicyError, match=r"looks like Rego v1 syntax.*--rego-version v1"):
        open_engine(PolicySource((tmp_path,), rego_version="v0"), engine="embedded")


def test_v1_file_with_import_rego_v1_is_fine_in_v0_mode(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        'package main\n\nimport rego.v1\n\ndeny contains msg if {\n\tinput.x\n\tmsg := "x"\n}\n',
    )
    assert messages(tmp_path, {"x": True}, rego_version="v0") == ["x"]


# -- issue 13: conftest's own examples that regorus 0.13 did not run as OPA does ----------


def test_some_in_a_comprehension_may_shadow_an_outer_name(tmp_path: Path) -> None:
    # regorus 0.13: "var `c` used before definition"; OPA: the inner `c` is a new variable.
    write_policy(
        tmp_path,
        "package main\n\n"
        "deny contains msg if {\n"
        "\tsome c in input.containers\n"
        "\timages := {i | some c in input.containers; i := c.image}\n"
        '\tc.image == "nginx:latest"\n'
        '\tmsg := sprintf("latest tag among %d images", [count(images)])\n'
        "}\n\n"
        "warn contains msg if {\n"
        "\tsome v in input.containers\n"
        "\tnested := [[v | some v in input.containers] | some v in input.containers]\n"
        '\tv.image == "redis:7"\n'
        '\tmsg := sprintf("%d x %d", [count(nested), count(nested[0])])\n'
        "}\n",
    )
    document = {"containers": [{"image": "nginx:latest"}, {"image": "redis:7"}]}
    assert messages(tmp_path, document) == ["2 x 2", "latest tag among 2 images"]


def test_a_shadowing_rename_keeps_error_columns(tmp_path: Path) -> None:
    def error_of(outer: str) -> str:
        directory = write_policy(
            tmp_path / outer,
            "package main\n\n"
            "deny contains msg if {\n"
            f"\tsome {outer} in input.containers\n"
            "\tn := count([x | some c in input.containers; x := c.image + 1])\n"
            '\tmsg := sprintf("%d", [n])\n'
            "}\n",
        )
        source = PolicySource((directory,))
        evaluator = open_engine(source, engine="embedded", show_builtin_errors=True)
        (outcome,) = evaluator.evaluate([{"containers": [{"image": "x"}]}], namespaces=None)
        (error,) = outcome.errors
        return error.message.replace(str(directory), "DIR")

    # `c` is renamed inside the comprehension; `d` needs no rename: the same message.
    assert error_of("c") == error_of("d")
    assert error_of("c").startswith("DIR/policy.rego:5:")


def test_rego_metadata_rule(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "package main\n\n"
        "# METADATA\n"
        "# title: Privileged containers\n"
        "# custom:\n"
        "#   id: K8S-7\n"
        "deny contains msg if {\n"
        "\tinput.privileged\n"
        "\tannotations := rego.metadata.rule()\n"
        '\tmsg := sprintf("%s: %s (%s)", [annotations.custom.id, annotations.title,'
        " annotations.scope])\n"
        "}\n\n"
        "warn contains msg if {\n"
        "\tinput.privileged\n"
        '\tmsg := sprintf("no metadata: %v", [rego.metadata.rule()])\n'
        "}\n",
    )
    assert messages(tmp_path, {"privileged": True}) == [
        "K8S-7: Privileged containers (rule)",
        "no metadata: {}",
    ]


def test_complete_rules_as_conftest_reads_them(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "package main\n\n"
        'violation := [{"msg": "as an array"}] if input.a\n\n'
        "deny if input.a\n\n"  # a boolean: conftest counts it as passed
        'warn := "a string" if input.a\n',
    )
    assert messages(tmp_path, {"a": True}) == ["as an array"]


def test_parse_config_builtin(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "package main\n\n"
        "deny contains msg if {\n"
        '\tcfg := parse_config("yaml", input.text)\n'
        '\tmsg := sprintf("port %d", [cfg.port])\n'
        "}\n",
    )
    assert messages(tmp_path, {"text": "port: 8080\n"}) == ["port 8080"]


def test_net_lookup_ip_addr_is_an_error_of_its_rule_only(tmp_path: Path) -> None:
    write_policy(
        tmp_path,
        "package main\n\n"
        'deny contains "resolves" if count(net.lookup_ip_addr("localhost")) > 0\n\n'
        'warn contains "kept" if input.a\n',
    )
    evaluator = open_engine(PolicySource((tmp_path,)), engine="embedded")
    (outcome,) = evaluator.evaluate([{"a": True}], namespaces=None)
    assert [r.message for r in outcome.results] == ["kept"]
    assert [e.rule for e in outcome.errors] == ["deny"]
