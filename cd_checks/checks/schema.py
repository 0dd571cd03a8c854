"""JSON Schema checks, each error located at its node's line and column.

Schemas are JSON or YAML files mapped to files by globs in cd-checks.yml.
Draft 2020-12 is the default; a `$schema` keyword picks another draft.
Local `$ref`s (relative file references) resolve against the schema's own
directory; remote ones are refused, since checks must run offline and give
the same answer everywhere. A missing or invalid schema is a finding, and
the files it maps are not checked against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cd_checks.documents import Parsed
from cd_checks.findings import Finding


@dataclass(frozen=True)
class SchemaRule:
    """Files matching `globs` are validated by `validator` (a jsonschema Validator)."""

    globs: tuple[str, ...]
    schema_path: str
    validator: Any


def _read_schema(full: Path) -> Any:
    text = full.read_text("utf-8")
    if full.suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


def load_rules(
    root: Path, mappings: Iterable[tuple[Sequence[str], str]], config_path: str
) -> tuple[list[SchemaRule], list[Finding]]:
    """Load each mapped schema once; a broken schema becomes a finding instead of a rule."""
    rules: list[SchemaRule] = []
    problems: list[Finding] = []
    for globs, schema_path in mappings:
        try:
            validator = build_validator(root / schema_path)
        except SchemaProblem as problem:
            where = schema_path if problem.in_schema else config_path
            problems.append(
                Finding(where, problem.line, None, "schema", problem.rule, "error", str(problem))
            )
            continue
        rules.append(SchemaRule(tuple(globs), schema_path, validator))
    return rules, problems


class SchemaProblem(Exception):
    """Why a schema cannot be used; becomes a finding."""

    def __init__(self, message: str, *, rule: str, in_schema: bool, line: int | None = None):
        super().__init__(message)
        self.rule, self.in_schema, self.line = rule, in_schema, line


def build_validator(full: Path) -> Any:
    import jsonschema
    import referencing
    import referencing.exceptions
    import referencing.jsonschema

    if not full.is_file():
        raise SchemaProblem(
            f"schema file not found: {full.name}", rule="schema-missing", in_schema=False
        )
    try:
        schema = _read_schema(full)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise SchemaProblem(
            f"cannot read schema: {' '.join(str(exc).split())}",
            rule="invalid-schema",
            in_schema=True,
        ) from exc
    if not isinstance(schema, (dict, bool)):
        raise SchemaProblem(
            "a schema must be an object or a boolean", rule="invalid-schema", in_schema=True
        )
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise SchemaProblem(
            f"invalid schema at {path}: {exc.message}", rule="invalid-schema", in_schema=True
        ) from exc

    base = full.resolve().as_uri()
    declared = schema.get("$id") if isinstance(schema, dict) else None
    # The directory of a declared http(s) $id stands for the schema's own directory,
    # so `$ref: common.schema.json` finds its sibling file offline.
    declared_dir = declared.rsplit("/", 1)[0] + "/" if isinstance(declared, str) else None

    def retrieve(uri: str) -> referencing.Resource[Any]:
        if declared_dir and uri.startswith(declared_dir):
            target = full.parent / uri.removeprefix(declared_dir)
        elif uri.startswith("file://"):
            target = Path(uri.removeprefix("file://"))
        else:
            raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]
        try:
            contents = _read_schema(target)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise referencing.exceptions.NoSuchResource(ref=uri) from exc  # type: ignore[call-arg]
        return referencing.Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT202012
        )

    resource = referencing.Resource.from_contents(
        schema, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry: referencing.Registry[Any] = referencing.Registry(retrieve=retrieve).with_resource(  # type: ignore[call-arg]
        base, resource
    )
    if isinstance(schema, dict) and "$id" not in schema:
        schema = {**schema, "$id": base}
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def referenced_files(full: Path) -> set[Path]:
    """The schema file and every local file its `$ref`s reach, transitively.

    They all decide verdicts, so the content cache fingerprints them.
    """
    found: set[Path] = set()
    todo = [full]
    while todo:
        current = todo.pop()
        if current in found or not current.is_file():
            continue
        found.add(current)
        try:
            document = _read_schema(current)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
            continue
        declared = document.get("$id") if isinstance(document, dict) else None
        base = declared.rsplit("/", 1)[0] + "/" if isinstance(declared, str) else None
        for ref in _refs(document):
            target = ref.split("#", 1)[0]
            if base and target.startswith(base):
                target = target.removeprefix(base)
            if target.startswith("file://"):
                todo.append(Path(target.removeprefix("file://")))
            elif target and "://" not in target:
                todo.append((current.parent / target).resolve())
    return found


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def check(path: str, parsed: Parsed, rule: SchemaRule) -> list[Finding]:
    """Validate every document of one file; one finding per schema error."""
    import referencing.exceptions

    findings = []
    several = len(parsed.documents) > 1
    for index, document in enumerate(parsed.documents):
        if document is None and several:
            continue
        try:
            errors = sorted(
                rule.validator.iter_errors(document), key=lambda e: list(e.absolute_path)
            )
            for error in errors:
                findings.append(_finding(path, parsed, index, error, several=several))
        except referencing.exceptions.Unresolvable as exc:
            findings.append(
                Finding(
                    rule.schema_path,
                    None,
                    None,
                    "schema",
                    "unresolvable-ref",
                    "error",
                    f"cannot resolve $ref {exc.ref!r} (only local files)",
                )
            )
            break
    return findings


def _finding(path: str, parsed: Parsed, index: int, error: Any, *, several: bool) -> Finding:
    where = list(error.absolute_path)
    key = False
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extras = [k for k in error.instance if k not in error.schema.get("properties", {})]
        if extras:
            where, key = [*where, extras[0]], True
    position = parsed.locate(index, where, key=key)
    line, column = position if position else (None, None)
    prefix = f"document {index + 1}: " if several else ""
    return Finding(
        path,
        line,
        column,
        "schema",
        str(error.validator),
        "error",
        f"{prefix}{error.json_path}: {error.message}",
    )
