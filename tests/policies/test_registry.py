"""The builtin-set registry: where the library lives, which files each set applies to."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from cd_checks.builtin_policies import BUILTIN_SETS, config_schema_path, policies_dir, schema_path
from cd_checks.files import matcher


def test_every_set_has_its_directory_and_policy() -> None:
    base = policies_dir()
    assert sorted(p.name for p in base.iterdir() if p.is_dir() and p.name != "lib") == sorted(
        BUILTIN_SETS
    )
    for name in BUILTIN_SETS:
        assert (base / name / f"{name}.rego").is_file()


def test_schemas_ship_for_the_manifest_sets() -> None:
    with_schema = {name for name in BUILTIN_SETS if schema_path(name) is not None}
    assert with_schema == {"patches", "agents"}
    for name in with_schema:
        path = schema_path(name)
        assert path is not None and path.is_file()


@pytest.mark.parametrize(
    ("name", "path", "applies"),
    [
        ("nginx", "nginx/sites/shop.conf", True),
        ("nginx", "deploy/nginx/conf.d/api.conf", True),
        ("nginx", "edge/api.nginx.conf", True),
        ("nginx", "docs/nginx.md", False),
        ("monitoring", "prometheus/rules/node.rules.yml", True),
        ("monitoring", "monitoring/alerts/edge/nginx.yml", True),
        ("monitoring", "prometheus/prometheus.yml", False),
        ("patches", "patches/2026/openssl.yml", True),
        ("patches", "docs/patches.yml", False),
        ("agents", "agents/node_exporter.yaml", True),
        ("ansible", "playbooks/deploy.yml", True),
        ("ansible", "site.yml", True),
        ("ansible", "roles/nginx/tasks/main.yml", True),
        ("ansible", "roles/nginx/defaults/main.yml", True),  # variables: ANS-002
        ("ansible", "roles/nginx/templates/nginx.conf.j2", False),
        ("pipeline", "cd-checks.yml", True),
        ("pipeline", "sub/cd-checks.yml", False),
    ],
)
def test_default_globs(name: str, path: str, applies: bool) -> None:
    assert matcher(BUILTIN_SETS[name].files).match_file(path) is applies


def test_unknown_set_has_no_schema() -> None:
    with pytest.raises(KeyError):
        schema_path("kubernetes")


def settings_read_by(name: str) -> set[str]:
    source = (policies_dir() / name / f"{name}.rego").read_text("utf-8")
    return set(re.findall(r'object\.get\(config, "(\w+)"', source))


def test_settings_schema_covers_exactly_what_the_policies_read() -> None:
    schema = json.loads(config_schema_path().read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == set(BUILTIN_SETS)
    for name in BUILTIN_SETS:
        assert set(schema["properties"][name]["properties"]) == settings_read_by(name)


@pytest.mark.parametrize(
    ("settings", "valid"),
    [
        ({"monitoring": {"min_for": "10m", "severities": ["page", "ticket"]}}, True),
        ({"nginx": {"allowed_plain_upstreams": ["10.20.*"], "require_hsts": False}}, True),
        ({"pipeline": {"canary_min_percent": 1, "production_words": ["live"]}}, True),
        ({"monitoring": {"min_for": 10}}, False),
        ({"monitoring": {"min_for": "ten minutes"}}, False),
        ({"nginx": {"allowed_upstreams": []}}, False),
        ({"kubernetes": {}}, False),
        ({"terraform": {"allow_deletes": True}}, False),
        ({"ansible": {"production_words": ["Prod"]}}, False),
    ],
)
def test_settings_schema(settings: dict[str, object], valid: bool) -> None:
    schema = json.loads(config_schema_path().read_text("utf-8"))
    assert jsonschema.Draft202012Validator(schema).is_valid(settings) is valid
