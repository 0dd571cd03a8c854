"""Real-looking files through the real engine: good fixtures are clean, bad ones fire exactly the
rules listed here, and together the bad fixtures fire every rule of the library.

NGINX files are parsed by crossplane into conftest's shape (as `cd-checks validate` does), YAML
with a loader that keeps Ansible's `!vault` values as their ciphertext.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crossplane
import jsonschema
import pytest
import yaml

from cd_checks.builtin_policies import BUILTIN_SETS, policies_dir, schema_path
from cd_checks.config import validate_raw
from cd_checks.rego import Evaluator, PolicySource, RuleResult, open_engine

FIXTURES = Path(__file__).parent / "fixtures"

BAD: dict[str, set[str]] = {
    "nginx/bad/files.example.com.conf": {
        "NGINX-001",
        "NGINX-002",
        "NGINX-003",
        "NGINX-004",
        "NGINX-005",
        "NGINX-006",
        "NGINX-007",
    },
    "nginx/bad/legacy-tls.example.com.conf": {"NGINX-008", "NGINX-009", "NGINX-010"},
    "monitoring/bad/host.rules.yml": {
        "MON-001",
        "MON-002",
        "MON-003",
        "MON-004",
        "MON-005",
        "MON-006",
        "MON-008",
    },
    "monitoring/bad/edge.rules.yml": set(),  # clean alone; collides with good/ under --combine
    "patches/bad/2026-11-kernel.yml": {"PATCH-001", "PATCH-004", "PATCH-005", "PATCH-006"},
    "patches/bad/2026-11-openssh.yml": {"PATCH-001", "PATCH-002", "PATCH-003", "PATCH-004"},
    "agents/bad/osquery-5.yml": {"AGENT-001", "AGENT-002", "AGENT-003", "AGENT-004", "AGENT-005"},
    "agents/bad/node_exporter-downgrade.yml": {"AGENT-002", "AGENT-004"},
    "ansible/bad/deploy.yml": {"ANS-001", "ANS-002", "ANS-003", "ANS-004", "ANS-005", "ANS-006"},
    "ansible/bad/sudo.yml": {"ANS-005"},
    "pipeline/bad/unordered.cd-checks.yml": {"PIPE-001", "PIPE-002", "PIPE-003", "PIPE-004"},
    "pipeline/bad/hasty.cd-checks.yml": {"PIPE-002", "PIPE-005"},
    "terraform/bad/db-migration.tfplan.json": {"TF-001", "TF-002", "TF-003"},
}
COMBINED_ONLY = {"MON-007"}


class AnsibleLoader(yaml.SafeLoader):
    """Safe YAML plus Ansible's `!vault`, read as its ciphertext string."""


AnsibleLoader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


def conftest_shape(directives: list[dict[str, Any]]) -> list[dict[str, Any]]:
    shaped = []
    for item in directives:
        node = {"name": item["directive"], "parameters": item["args"], "line": item["line"]}
        if "block" in item:
            node["block"] = {"directives": conftest_shape(item["block"])}
        shaped.append(node)
    return shaped


def load(path: Path) -> Any:
    if path.suffix == ".conf":
        payload = crossplane.parse(str(path), single=True, check_ctx=False, comments=False)
        assert payload["status"] == "ok", payload["errors"]
        return {"directives": conftest_shape(payload["config"][0]["parsed"])}
    return yaml.load(path.read_text("utf-8"), Loader=AnsibleLoader)  # noqa: S506 - SafeLoader subclass


def fixtures(kind: str) -> list[str]:
    return sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob(f"*/{kind}/*.*"))


@pytest.fixture(scope="module")
def engines() -> dict[str, Evaluator]:
    return {
        name: open_engine(PolicySource(paths=(policies_dir() / name,)), engine="embedded")
        for name in BUILTIN_SETS
    }


def evaluate(engines: dict[str, Evaluator], fixture: str) -> tuple[Any, list[RuleResult]]:
    name = fixture.split("/")[0]
    document = load(FIXTURES / fixture)
    (outcome,) = engines[name].evaluate([document], namespaces=[BUILTIN_SETS[name].package])
    assert outcome.errors == ()
    return document, list(outcome.results)


def resolve(document: Any, path: list[Any]) -> Any:
    node = document
    for step in path:
        node = node[step]
    return node


@pytest.mark.parametrize("fixture", fixtures("good"))
def test_good_fixture_is_clean(engines: dict[str, Evaluator], fixture: str) -> None:
    _, results = evaluate(engines, fixture)
    assert [(r.metadata["rule"], r.message) for r in results] == []


@pytest.mark.parametrize("fixture", fixtures("bad"))
def test_bad_fixture_fires_its_rules(engines: dict[str, Evaluator], fixture: str) -> None:
    document, results = evaluate(engines, fixture)
    assert {r.metadata["rule"] for r in results} == BAD[fixture]
    for result in results:
        resolve(document, result.metadata["path"])  # every path names an existing node
        assert result.message and result.metadata["rule"] not in result.message


def test_bad_fixtures_fire_every_rule() -> None:
    defined = {
        m
        for name in BUILTIN_SETS
        for p in (policies_dir() / name).glob("*.rego")
        if not p.name.endswith("_test.rego")
        for m in re.findall(r'finding\("([A-Z]+-\d{3})"', p.read_text("utf-8"))
    }
    assert set(BAD) == set(fixtures("bad"))
    assert set().union(*BAD.values()) | COMBINED_ONLY == defined


def test_nginx_findings_point_at_the_directive_line(engines: dict[str, Evaluator]) -> None:
    fixture = "nginx/bad/files.example.com.conf"
    lines = (FIXTURES / fixture).read_text("utf-8").splitlines()
    document, results = evaluate(engines, fixture)
    at = {
        r.metadata["rule"]: lines[resolve(document, r.metadata["path"])["line"] - 1]
        for r in results
    }
    assert at["NGINX-001"].strip() == "server_tokens on;"
    assert at["NGINX-002"].strip().startswith("ssl_protocols TLSv1 ")
    assert at["NGINX-003"].strip() == "autoindex on;"
    assert at["NGINX-004"].strip() == "listen 443 ssl;"
    assert at["NGINX-006"].strip() == "proxy_pass http://10.20.0.15:8080;"


def test_duplicate_alert_across_files_under_combine(engines: dict[str, Evaluator]) -> None:
    good = fixtures("good")
    files = [f for f in good if f.startswith("monitoring/")] + ["monitoring/bad/edge.rules.yml"]
    combined = [{"path": f, "contents": load(FIXTURES / f)} for f in files]
    package = BUILTIN_SETS["monitoring"].combined_package
    (outcome,) = engines["monitoring"].evaluate([combined], namespaces=[package])
    assert outcome.errors == ()
    (result,) = outcome.results
    assert result.metadata["rule"] == "MON-007"
    assert result.metadata["path"] == [len(files) - 1, "contents", "groups", 0, "rules", 0, "alert"]
    assert "monitoring/good/nginx.rules.yml" in result.message
    (clean,) = engines["monitoring"].evaluate([combined[:-1]], namespaces=[package])
    assert clean.results == ()


ODD_VALUES: list[Any] = [None, 7, "x", [1], {"a": 1}]


def node_paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(document, dict):
        children: Any = document.items()
    elif isinstance(document, list):
        children = enumerate(document)
    else:
        return
    for key, value in children:
        yield from node_paths(value, (*prefix, key))


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(document)
    parent = resolve(copied, list(path[:-1]))
    parent[path[-1]] = value
    return copied


@pytest.mark.parametrize("fixture", fixtures("good"))
def test_odd_but_valid_input_never_makes_a_rule_error(
    engines: dict[str, Evaluator], fixture: str
) -> None:
    name = fixture.split("/")[0]
    document = load(FIXTURES / fixture)
    variants = [replaced(document, p, v) for p in node_paths(document) for v in ODD_VALUES]
    outcomes = engines[name].evaluate(variants, namespaces=[BUILTIN_SETS[name].package])
    assert [o.errors for o in outcomes if o.errors] == []


@pytest.mark.parametrize("name", ["patches", "agents"])
def test_shipped_schema_accepts_the_good_manifests(name: str) -> None:
    path = schema_path(name)
    assert path is not None
    schema = json.loads(path.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for fixture in fixtures("good"):
        if fixture.startswith(f"{name}/"):
            assert list(validator.iter_errors(load(FIXTURES / fixture))) == []


def test_shipped_schema_rejects_a_misspelt_key() -> None:
    path = schema_path("patches")
    assert path is not None
    validator = jsonschema.Draft202012Validator(json.loads(path.read_text("utf-8")))
    manifest = load(FIXTURES / "patches/good/2026-11-openssl.yml")
    manifest["reboot"] = {"stratgy": "none"}
    (error,) = validator.iter_errors(manifest)
    assert list(error.absolute_path) == ["reboot"]


@pytest.mark.parametrize(
    "fixture", [f for f in fixtures("good") + fixtures("bad") if f.startswith("pipeline/")]
)
def test_pipeline_fixtures_are_valid_configs(fixture: str) -> None:
    assert validate_raw(load(FIXTURES / fixture), fixture)
