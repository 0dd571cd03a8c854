"""Loading policies and data: every mistake is one PolicyError line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cd_checks.errors import PolicyError
from cd_checks.rego import PolicySource, open_engine
from cd_checks.rego.conftest import ConftestEvaluator
from cd_checks.rego.sandbox import BoundedEvaluator


def policy_dir(tmp_path: Path, text: str, name: str = "policy.rego") -> Path:
    directory = tmp_path / "policy"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text, "utf-8")
    return directory


def load_error(source: PolicySource) -> str:
    with pytest.raises(PolicyError) as caught:
        open_engine(source, engine="embedded")
    message = str(caught.value)
    assert "\n" not in message
    assert "Stack backtrace" not in message
    return message


def test_syntax_error_has_file_line_column(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, "package main\n\ndeny contains msg if {\n  msg := [1,\n}\n")
    message = load_error(PolicySource((directory,)))
    assert message == f"{directory / 'policy.rego'}:4:7: expecting `}}` while parsing set"


def test_unsafe_variable_is_reported_when_loading(tmp_path: Path) -> None:
    directory = policy_dir(
        tmp_path, 'package main\n\ndeny contains msg if {\n  input.kind\n  x > 1\n  msg := "a"\n}\n'
    )
    message = load_error(PolicySource((directory,)))
    assert message == f"{directory / 'policy.rego'}:5:3: use of undefined variable `x` is unsafe"


def test_unknown_function_is_a_policy_error_not_a_rule_error(tmp_path: Path) -> None:
    directory = policy_dir(
        tmp_path, "package main\n\ndeny contains msg if {\n\tinput.kind\n\tmsg := nope.fn(1)\n}\n"
    )
    evaluator = open_engine(PolicySource((directory,)), engine="embedded")
    with pytest.raises(PolicyError, match=r"policy.rego:5:\d+: could not find function nope.fn"):
        evaluator.evaluate([{"kind": "x"}], namespaces=None)


def test_v1_partial_object_deny_is_refused_with_conftests_words(tmp_path: Path) -> None:
    # conftest's tests/problematic-if: `deny[msg] if` in Rego v1 builds an object.
    directory = policy_dir(tmp_path, 'package main\n\ndeny[msg] if {\n\tmsg := "foo"\n}\n')
    message = load_error(PolicySource((directory,)))
    assert message == (
        f"{directory / 'policy.rego'}:3: rule is using 'if' keyword without 'contains' "
        "keyword (in Rego v1 `deny[msg] if` builds an object): "
        "write `deny contains msg if { ... }`"
    )


def test_a_ref_head_deny_rule_is_still_refused(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, 'package main\n\ndeny.x contains "a" if {\n\tinput.bad\n}\n')
    message = load_error(PolicySource((directory,)))
    assert message == (
        f"{directory / 'policy.rego'}:3: rule 'deny' must be a set of messages: "
        "write `deny contains msg if { ... }`"
    )


def test_empty_policy_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("no policies here\n", "utf-8")
    assert load_error(PolicySource((tmp_path / "empty",))) == (
        f"no policies found in {tmp_path / 'empty'}"
    )


def test_directory_with_only_tests_has_no_policies(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, "package main\n\ntest_x if true\n", "x_test.rego")
    assert load_error(PolicySource((directory,))) == f"no policies found in {directory}"


def test_missing_policy_path(tmp_path: Path) -> None:
    assert load_error(PolicySource((tmp_path / "nope",))) == (
        f"policy path not found: {tmp_path / 'nope'}"
    )


def test_single_policy_file_as_path(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, 'package main\n\ndeny contains "always" if true\n')
    evaluator = open_engine(PolicySource((directory / "policy.rego",)), engine="embedded")
    (outcome,) = evaluator.evaluate([{}], namespaces=["main"])
    assert [r.message for r in outcome.results] == ["always"]


def test_missing_data_path(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, "package main\n")
    message = load_error(PolicySource((directory,), (tmp_path / "data",)))
    assert message == f"data path not found: {tmp_path / 'data'}"


def test_invalid_yaml_data_has_line_and_column(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, "package main\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bad.yaml").write_text("a: [1, 2\nb: 3\n", "utf-8")
    message = load_error(PolicySource((directory,), (tmp_path / "data",)))
    assert message.startswith(f"{tmp_path / 'data' / 'bad.yaml'}:2:2: invalid YAML")


def test_invalid_json_data(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, "package main\n")
    (tmp_path / "data.json").write_text('{"a": }', "utf-8")
    message = load_error(PolicySource((directory,), (tmp_path / "data.json",)))
    assert message.startswith(f"{tmp_path / 'data.json'}:1:7: invalid JSON")


def test_data_must_be_a_mapping(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, "package main\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n", "utf-8")
    message = load_error(PolicySource((directory,), (tmp_path / "list.yaml",)))
    assert (
        message == f"{tmp_path / 'list.yaml'}: a data document must be a mapping at the top level"
    )


def test_conflicting_data_names_both_files(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, "package main\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.yaml").write_text("limits:\n  max: 1\n  min: 0\n", "utf-8")
    (tmp_path / "data" / "b.json").write_text('{"limits": {"max": 2}}', "utf-8")
    message = load_error(PolicySource((directory,), (tmp_path / "data",)))
    assert message == (
        f"{tmp_path / 'data' / 'b.json'}: data.limits.max conflicts with the value from "
        f"{tmp_path / 'data' / 'a.yaml'}"
    )


def test_data_documents_merge_at_the_root(tmp_path: Path) -> None:
    directory = policy_dir(
        tmp_path,
        "package main\n\n"
        'deny contains sprintf("%v %v %v", [data.limits.max, data.limits.min, data.owners]) '
        "if true\n",
    )
    (tmp_path / "data" / "nested").mkdir(parents=True)
    (tmp_path / "data" / "a.yml").write_text("limits:\n  max: 1\n", "utf-8")
    (tmp_path / "data" / "nested" / "b.json").write_text('{"limits": {"min": 0}}', "utf-8")
    (tmp_path / "data" / "nested" / "c.yaml").write_text("owners: [ops]\n", "utf-8")
    (tmp_path / "data" / "notes.txt").write_text("ignored\n", "utf-8")
    evaluator = open_engine(PolicySource((directory,), (tmp_path / "data",)), engine="embedded")
    (outcome,) = evaluator.evaluate([{}], namespaces=None)
    assert [r.message for r in outcome.results] == ['1 0 ["ops"]']


def test_engine_auto_without_conftest_is_embedded(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, 'package main\n\ndeny contains "x" if true\n')
    evaluator = open_engine(PolicySource((directory,)), which=lambda name: None)
    # The embedded engine, in its bounded child process.
    assert isinstance(evaluator, BoundedEvaluator)


def test_engine_conftest_without_the_binary_says_how_to_fix(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, 'package main\n\ndeny contains "x" if true\n')
    with pytest.raises(PolicyError) as caught:
        open_engine(PolicySource((directory,)), engine="conftest", which=lambda name: None)
    assert "conftest binary on PATH" in str(caught.value)
    assert "--engine embedded" in str(caught.value)


def test_engine_embedded_ignores_conftest_on_path(tmp_path: Path) -> None:
    directory = policy_dir(tmp_path, 'package main\n\ndeny contains "x" if true\n')
    evaluator = open_engine(
        PolicySource((directory,)), engine="embedded", which=lambda name: "/usr/bin/conftest"
    )
    assert not isinstance(evaluator, ConftestEvaluator)


def test_unsafe_variable_found_only_while_evaluating_is_a_policy_error(tmp_path: Path) -> None:
    directory = policy_dir(
        tmp_path, "package main\n\ndeny contains msg if {\n  input.x\n  msg := zzz\n}\n"
    )
    evaluator = open_engine(PolicySource((directory,)), engine="embedded")
    assert evaluator.evaluate([{}], namespaces=None)[0].results == ()
    with pytest.raises(PolicyError) as caught:
        evaluator.evaluate([{"x": True}], namespaces=None)
    assert str(caught.value) == f"{directory / 'policy.rego'}:5:10: var zzz is unsafe"
