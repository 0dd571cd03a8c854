"""conftest semantics on the embedded engine: rule kinds, exceptions, data, namespaces, errors."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cd_checks.rego import Outcome, PolicySource, RuleError, RuleResult, open_engine
from cd_checks.rego.embedded import EmbeddedEvaluator
from cd_checks.rego.model import EngineOptions

SEMANTICS = Path(__file__).parent / "fixtures" / "semantics"
POLICY = SEMANTICS / "policy"
DATA = SEMANTICS / "data"

ROOT_DEPLOYMENT = {
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"owner": "payments"}},
    "spec": {"replicas": 3, "containers": [{"name": "app", "image": "nginx:1.25"}]},
}


def deployment(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"owner": "payments"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True},
            "replicas": 3,
            "containers": [{"name": "app", "image": "nginx:1.25"}],
        },
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        document[section][field] = value
    return document


@pytest.fixture(scope="module")
def evaluator() -> EmbeddedEvaluator:
    return EmbeddedEvaluator(PolicySource((POLICY,), (DATA,)))


def one(
    evaluator: EmbeddedEvaluator, document: Any, namespaces: list[str] | None = None
) -> Outcome:
    (outcome,) = evaluator.evaluate([document], namespaces=namespaces)
    return outcome


def summary(outcome: Outcome) -> list[tuple[str, str, str]]:
    return [(r.kind, r.rule, r.message) for r in outcome.results]


def test_namespaces_are_packages_with_rules(evaluator: EmbeddedEvaluator) -> None:
    assert evaluator.namespaces == ("cd_checks.nginx", "main")


def test_a_clean_document_has_no_results(evaluator: EmbeddedEvaluator) -> None:
    # Six deny/violation/warn definitions in main, all passed: conftest's six successes.
    assert one(evaluator, deployment(), ["main"]) == Outcome((), (), (), (("main", 6),))


def test_bare_deny_is_a_failure(evaluator: EmbeddedEvaluator) -> None:
    outcome = one(evaluator, ROOT_DEPLOYMENT, ["main"])
    assert summary(outcome) == [("failure", "deny", "Deployment web must not run as root")]


def test_suffixed_rules_and_object_results_keep_metadata(evaluator: EmbeddedEvaluator) -> None:
    document = deployment(spec__containers=[{"name": "app", "image": "nginx:latest"}])
    (result,) = one(evaluator, document, ["main"]).results
    assert result == RuleResult(
        namespace="main",
        rule="deny_latest_tag",
        kind="failure",
        message="container app uses the latest tag",
        metadata={"path": ["spec", "containers", 0, "image"], "rule_id": "IMG001"},
    )


def test_violation_reads_yaml_data_and_warn_reads_json_data(evaluator: EmbeddedEvaluator) -> None:
    document = deployment(spec__replicas=1)
    document["metadata"]["labels"]["owner"] = "marketing"
    assert summary(one(evaluator, document, ["main"])) == [
        ("failure", "violation_replicas", "replicas 1 is below the minimum 2"),
        ("warning", "warn_team", "unknown team marketing"),
    ]


def test_bare_warn_is_a_warning(evaluator: EmbeddedEvaluator) -> None:
    document = deployment()
    del document["metadata"]["labels"]
    assert summary(one(evaluator, document, ["main"])) == [("warning", "warn", "no owner label")]


def test_exception_turns_the_named_rule_into_an_exception(evaluator: EmbeddedEvaluator) -> None:
    document = deployment(spec__containers=[{"name": "app", "image": "nginx:latest"}])
    document["metadata"]["namespace"] = "sandbox"
    assert summary(one(evaluator, document, ["main"])) == [
        ("exception", "deny_latest_tag", 'data.main.exception[_][_] == "latest_tag"')
    ]


def test_exception_leaves_other_rules_alone(evaluator: EmbeddedEvaluator) -> None:
    document = dict(
        ROOT_DEPLOYMENT,
        metadata={"name": "web", "namespace": "sandbox", "labels": {"owner": "search"}},
    )
    kinds = {(r.kind, r.rule) for r in one(evaluator, document, ["main"]).results}
    assert kinds == {("failure", "deny"), ("exception", "deny_latest_tag")}


def test_empty_string_exception_covers_the_bare_rules(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        "package main\n\n"
        'deny contains "bare" if true\n'
        'deny_named contains "named" if true\n'
        'warn contains "bare warning" if true\n\n'
        'exception contains [""] if input.skip\n',
        "utf-8",
    )
    evaluator = EmbeddedEvaluator(PolicySource((tmp_path,)))
    assert summary(one(evaluator, {"skip": True})) == [
        ("exception", "deny", 'data.main.exception[_][_] == ""'),
        ("failure", "deny_named", "named"),
        ("exception", "warn", 'data.main.exception[_][_] == ""'),
    ]
    assert [r.kind for r in one(evaluator, {"skip": False}).results] == ["failure"] * 2 + [
        "warning"
    ]


def test_namespace_selection(evaluator: EmbeddedEvaluator) -> None:
    document = {"http": {"server_tokens": "on", "gzip": "off"}}
    nginx = one(evaluator, document, ["cd_checks.nginx"])
    assert summary(nginx) == [
        ("failure", "deny_server_tokens", "server_tokens must be off"),
        ("warning", "warn_gzip", "gzip is off"),
    ]
    assert nginx.results[0].metadata == {"path": ["http", "server_tokens"]}
    everything = one(evaluator, document, None)
    assert {r.namespace for r in everything.results} == {"cd_checks.nginx", "main"}
    assert ("warning", "warn", "no owner label") in summary(everything)


def test_an_undefined_namespace_selects_nothing_like_conftest(
    evaluator: EmbeddedEvaluator,
) -> None:
    # conftest: `--namespace kubernetes` with no such package passes with 0 tests.
    assert one(evaluator, ROOT_DEPLOYMENT, ["kubernetes"]) == Outcome((), ())
    assert one(evaluator, ROOT_DEPLOYMENT, ["lib.helpers"]) == Outcome((), ())


def test_a_type_error_leaves_the_rule_undefined_by_default_like_opa(
    evaluator: EmbeddedEvaluator,
) -> None:
    document = dict(ROOT_DEPLOYMENT, spec={"port": "eighty", "replicas": 1})
    outcome = one(evaluator, document, ["main"])
    assert outcome.errors == ()
    assert summary(outcome) == [
        ("failure", "deny", "Deployment web must not run as root"),
        ("failure", "violation_replicas", "replicas 1 is below the minimum 2"),
    ]


def test_with_show_builtin_errors_a_type_error_is_a_rule_error_and_other_rules_still_run() -> None:
    evaluator = EmbeddedEvaluator(
        PolicySource((POLICY,), (DATA,)), options=EngineOptions(show_builtin_errors=True)
    )
    document = dict(ROOT_DEPLOYMENT, spec={"port": "eighty", "replicas": 1})
    outcome = one(evaluator, document, ["main"])
    assert outcome.errors == (
        RuleError(
            "main",
            "violation_port",
            f'{POLICY / "main.rego"}:28:15: `add` expects numeric argument. Got `"eighty"` instead',
        ),
    )
    assert summary(outcome) == [
        ("failure", "deny", "Deployment web must not run as root"),
        ("failure", "violation_replicas", "replicas 1 is below the minimum 2"),
    ]


def test_one_outcome_per_document_in_order(evaluator: EmbeddedEvaluator) -> None:
    documents = [deployment(), ROOT_DEPLOYMENT, deployment(spec__replicas=0)]
    outcomes = evaluator.evaluate(documents, namespaces=["main"])
    assert [[r.rule for r in o.results] for o in outcomes] == [
        [],
        ["deny"],
        ["violation_replicas"],
    ]


def test_a_list_document_is_one_input(tmp_path: Path) -> None:
    # Unlike `conftest test`, which splits a top-level list: callers split multi-document
    # files themselves, and a combined input (or an Ansible playbook) is one list.
    (tmp_path / "p.rego").write_text(
        'package main\n\ndeny contains sprintf("%d plays", [count(input)]) if is_array(input)\n',
        "utf-8",
    )
    evaluator = EmbeddedEvaluator(PolicySource((tmp_path,)))
    assert summary(one(evaluator, [{"hosts": "a"}, {"hosts": "b"}])) == [
        ("failure", "deny", "2 plays")
    ]


def test_extra_data_is_merged_into_data(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        "package main\n\n"
        "deny contains msg if {\n"
        "\tinput.size > data.cd_checks.config.max_size\n"
        '\tmsg := "too big"\n'
        "}\n",
        "utf-8",
    )
    source = PolicySource((tmp_path,), extra_data={"cd_checks": {"config": {"max_size": 10}}})
    evaluator = open_engine(source, engine="embedded")
    outcomes = evaluator.evaluate([{"size": 11}, {"size": 9}], namespaces=None)
    assert [[r.message for r in o.results] for o in outcomes] == [["too big"], []]


def test_policy_source_is_picklable_for_worker_processes() -> None:
    source = PolicySource((POLICY,), (DATA,), extra_data={"cd_checks": {"x": 1}})
    assert pickle.loads(pickle.dumps(source)) == source


def test_test_files_are_not_loaded_for_evaluation(evaluator: EmbeddedEvaluator) -> None:
    # main_test.rego sits beside main.rego; its test_ rules never become results.
    assert all(not r.rule.startswith("test_") for r in one(evaluator, ROOT_DEPLOYMENT).results)


def test_input_does_not_leak_between_documents(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        'package main\n\ndeny contains sprintf("x=%v", [input.x]) if input.x\n', "utf-8"
    )
    evaluator = EmbeddedEvaluator(PolicySource((tmp_path,)))
    outcomes = evaluator.evaluate([{"x": 1}, {}, {"x": 2}], namespaces=None)
    assert [[r.message for r in o.results] for o in outcomes] == [["x=1"], [], ["x=2"]]


def _evaluate_in_worker(source: PolicySource, documents: list[Any]) -> list[Outcome]:
    return open_engine(source, engine="embedded").evaluate(documents, namespaces=["main"])


def test_an_evaluator_can_be_built_in_a_worker_process() -> None:
    source = PolicySource((POLICY,), (DATA,))
    with ProcessPoolExecutor(max_workers=1) as pool:
        outcomes = pool.submit(_evaluate_in_worker, source, [ROOT_DEPLOYMENT, deployment()])
        assert [[r.rule for r in o.results] for o in outcomes.result()] == [["deny"], []]


def test_a_document_that_is_not_json_is_a_rule_error(evaluator: EmbeddedEvaluator) -> None:
    outcome = one(evaluator, {"spec": {"replicas": float("nan")}}, ["main"])
    assert outcome.results == ()
    (error,) = outcome.errors
    assert error.message.startswith("the document cannot be given to Rego as input: ")
