"""Schema checks: every error lands on the line and column of the offending node."""

from __future__ import annotations

import json
from pathlib import Path

from yamllint.config import YamlLintConfig

from cd_checks.checks import schema, syntax
from cd_checks.findings import Finding
from tests.conftest import write_tree

OPTIONS = syntax.SyntaxOptions(YamlLintConfig("extends: relaxed"), 2**20)
SERVICE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "port"],
    "properties": {
        "name": {"type": "string"},
        "port": {"type": "integer", "maximum": 65535},
        "tags": {"type": "array", "items": {"type": "string"}},
        "owner": {"type": "string", "format": "email"},
    },
}


def validate(root: Path, name: str, schema_name: str = "schema.json") -> list[Finding]:
    rules, problems = schema.load_rules(root, [(("*",), schema_name)], "cd-checks.yml")
    if problems:
        return problems
    full = root / name
    kind = "json" if name.endswith(".json") else "yaml"
    parsed, findings = syntax.parse(syntax.Source(name, full, full.read_bytes()), kind, OPTIONS)
    assert parsed is not None, findings
    return schema.check(name, parsed, rules[0])


def summary(findings: list[Finding]) -> list[tuple[str, int | None, int | None, str]]:
    return [(f.path, f.line, f.column, f.rule) for f in findings]


def test_yaml_errors_are_located_with_json_path(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "schema.json": json.dumps(SERVICE),
            "svc.yml": "name: shop\nport: 99999\ntags:\n  - web\n  - 7\nextra: true\n",
        },
    )
    findings = validate(tmp_path, "svc.yml")
    assert summary(findings) == [
        ("svc.yml", 6, 1, "additionalProperties"),
        ("svc.yml", 2, 7, "maximum"),
        ("svc.yml", 5, 5, "type"),
    ]
    assert findings[1].message == "$.port: 99999 is greater than the maximum of 65535"
    assert findings[2].message.startswith("$.tags[1]: 7 is not of type 'string'")


def test_missing_required_property_points_at_the_object(tmp_path: Path) -> None:
    write_tree(tmp_path, {"schema.json": json.dumps(SERVICE), "svc.yml": "---\nname: shop\n"})
    assert summary(validate(tmp_path, "svc.yml")) == [("svc.yml", 2, 1, "required")]


def test_json_documents_are_located_too(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "schema.json": json.dumps(SERVICE),
            "svc.json": '{\n  "name": "shop",\n  "port": "80"\n}\n',
        },
    )
    assert summary(validate(tmp_path, "svc.json")) == [("svc.json", 3, 11, "type")]


def test_format_is_checked(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "schema.json": json.dumps(SERVICE),
            "svc.yml": "name: a\nport: 1\nowner: not-an-address\n",
        },
    )
    assert summary(validate(tmp_path, "svc.yml")) == [("svc.yml", 3, 8, "format")]


def test_every_document_of_a_multi_document_file(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "schema.json": json.dumps(SERVICE),
            "svc.yml": "---\nname: a\nport: 1\n---\nname: b\nport: x\n",
        },
    )
    findings = validate(tmp_path, "svc.yml")
    assert summary(findings) == [("svc.yml", 6, 7, "type")]
    assert findings[0].message.startswith("document 2: $.port")


def test_schema_in_yaml_with_local_ref_to_a_sibling(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "schemas/svc.yaml": "$id: https://example.internal/schemas/svc.yaml\n"
            "type: object\nproperties:\n  port: {$ref: 'common.json#/$defs/port'}\n",
            "schemas/common.json": json.dumps(
                {"$defs": {"port": {"type": "integer", "minimum": 1}}}
            ),
            "svc.yml": "port: 0\n",
        },
    )
    assert summary(validate(tmp_path, "svc.yml", "schemas/svc.yaml")) == [
        ("svc.yml", 1, 7, "minimum")
    ]


def test_older_draft_is_honoured(tmp_path: Path) -> None:
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "items": [{"type": "string"}],
        "additionalItems": False,
    }
    write_tree(tmp_path, {"schema.json": json.dumps(draft7), "list.yml": "- a\n- b\n"})
    assert [f.rule for f in validate(tmp_path, "list.yml")] == ["additionalItems"]


def test_missing_schema_is_a_finding_on_the_config(tmp_path: Path) -> None:
    write_tree(tmp_path, {"svc.yml": "a: 1\n"})
    assert summary(validate(tmp_path, "svc.yml", "nope.json")) == [
        ("cd-checks.yml", None, None, "schema-missing")
    ]


def test_invalid_schema_is_a_finding_on_the_schema(tmp_path: Path) -> None:
    write_tree(tmp_path, {"schema.json": json.dumps({"type": "strnig"}), "svc.yml": "a: 1\n"})
    findings = validate(tmp_path, "svc.yml")
    assert summary(findings) == [("schema.json", None, None, "invalid-schema")]
    assert "strnig" in findings[0].message


def test_unparsable_schema_is_a_finding(tmp_path: Path) -> None:
    write_tree(tmp_path, {"schema.json": "{not json", "svc.yml": "a: 1\n"})
    assert [f.rule for f in validate(tmp_path, "svc.yml")] == ["invalid-schema"]


def test_remote_ref_is_refused_offline(tmp_path: Path) -> None:
    remote = {"properties": {"a": {"$ref": "https://schemas.example.com/a.json"}}}
    write_tree(tmp_path, {"schema.json": json.dumps(remote), "svc.yml": "a: 1\n"})
    assert [f.rule for f in validate(tmp_path, "svc.yml")] == ["unresolvable-ref"]
