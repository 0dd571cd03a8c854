"""JSON Schema checks, each error located at its node's line and column.

Schemas are JSON or YAML files mapped to files by globs in cd-checks.yml.
Draft 2020-12 is the default; a `$schema` keyword picks another draft.
Local `$ref`s (relative file references) resolve against the schema's own
directory; remote ones are refused, since checks must run offline and give
the same answer everywhere. A missing or invalid schema is a finding, and
the files it maps are not checked against it; so is a `$ref` to something
that is no schema, or a loop of `$ref`s that never descends into the
document. Schemas are read within `cd_checks.bounded`'s limits, and `pattern`s
are matched with a time limit (a pattern may backtrack for hours). Given the
repository root, a schema or `$ref` that leads outside it (`file:///etc/passwd`,
`../../x`, a symlink out) is a finding on the schema and is never read: a pull
request chooses its schemas, and a finding's message would show what was read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from cd_checks import bounded
from cd_checks.documents import Parsed
from cd_checks.findings import Finding

# Seconds one `pattern` may take on one value. Python's `re` backtracks without
# limit (`^(a|aa)+$` on 40 characters: minutes); the `regex` package reads the same
# syntax and takes a timeout, so schemas mean what they meant and cannot hang a run.
# (RE2 cannot backtrack at all, but refuses lookarounds that real schemas use.)
PATTERN_TIMEOUT = 1.0
# Keywords whose subschemas apply to the same instance: a `$ref` loop through only
# these never ends. And keywords whose values are data, not schemas.
IN_PLACE = ("not", "if", "then", "else")
IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
NOT_SCHEMAS = frozenset({"enum", "const", "default", "examples", "$ref"})


@dataclass(frozen=True)
class SchemaRule:
    """Files matching `globs` are validated by `validator` (a jsonschema Validator)."""

    globs: tuple[str, ...]
    schema_path: str
    validator: Any


def _read_schema(full: Path) -> Any:
    text = full.read_text("utf-8")
    if full.suffix == ".json":
        value, duplicates = bounded.load_json(text)
        if duplicates:  # which value a validator sees would depend on the parser
            raise duplicates[0]
        return value
    return bounded.load_yaml(text, bounded.SETTINGS)


def load_rules(
    root: Path, mappings: Iterable[tuple[Sequence[str], str]], config_path: str
) -> tuple[list[SchemaRule], list[Finding]]:
    """Load each mapped schema once; a broken schema becomes a finding instead of a rule."""
    rules: list[SchemaRule] = []
    problems: list[Finding] = []
    for globs, schema_path in mappings:
        try:
            validator = build_validator(root / schema_path, root=root)
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


def outside(root: Path | None, target: Path) -> bool:
    """Whether `target` (links followed) lies outside `root` and outside the schemas
    cd-checks ships (they come with the tool, not the checkout); never, without a root."""
    if root is None:
        return False
    from cd_checks.builtin_policies import policies_dir

    try:
        resolved = target.resolve()
        return not any(resolved.is_relative_to(base.resolve()) for base in (root, policies_dir()))
    except (OSError, RuntimeError):  # a link loop: nothing to read there either
        return True


def file_target(uri: str) -> Path | None:
    """The local path a `file:` URI names (percent-decoded), or None for any other URI."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = Path(unquote(parts.path, errors="surrogateescape"))
    return path if path.is_absolute() else None


def build_validator(full: Path, *, root: Path | None = None) -> Any:
    """The validator of the schema file `full`; with `root`, refs stay inside it."""
    import jsonschema
    import referencing
    import referencing.exceptions
    import referencing.jsonschema

    if outside(root, full):
        raise SchemaProblem(
            f"schema {full.name} lies outside the repository (a link or ../ leads out); "
            "it is not read",
            rule="outside-repository",
            in_schema=False,
        )
    if not full.is_file():
        raise SchemaProblem(
            f"schema file not found: {full.name}", rule="schema-missing", in_schema=False
        )
    try:
        schema = _read_schema(full)
    except bounded.ParseProblem as exc:
        raise SchemaProblem(
            f"cannot read schema: {exc.message}",
            rule="invalid-schema",
            in_schema=True,
            line=exc.line,
        ) from exc
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError) as exc:
        raise SchemaProblem(
            f"cannot read schema: {' '.join(str(exc).split()) or type(exc).__name__}",
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
    except RecursionError as exc:
        raise SchemaProblem(
            "the schema is nested too deeply to check", rule="invalid-schema", in_schema=True
        ) from exc

    base = full.resolve().as_uri()
    declared = schema.get("$id") if isinstance(schema, dict) else None
    # The directory of a declared http(s) $id stands for the schema's own directory,
    # so `$ref: common.schema.json` finds its sibling file offline.
    declared_dir = declared.rsplit("/", 1)[0] + "/" if isinstance(declared, str) else None

    def retrieve(uri: str) -> referencing.Resource[Any]:
        target: Path | None
        if declared_dir and uri.startswith(declared_dir):
            target = full.parent / unquote(uri.removeprefix(declared_dir))
        else:
            target = file_target(uri)
        if target is None:
            raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]
        if outside(root, target):  # wrapped by referencing; _check_refs reports it
            raise RefOutside(uri)
        try:
            contents = _read_schema(target)
        except (OSError, ValueError, yaml.YAMLError, RecursionError) as exc:
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
    _check_refs(registry.resolver(base), schema)
    if isinstance(schema, dict) and "$id" not in schema:
        schema = {**schema, "$id": base}
    bounded_cls = jsonschema.validators.extend(cls, TimedPatterns().keywords())
    return bounded_cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def _check_refs(resolver: Any, schema: Any) -> None:
    """Every `$ref` reachable from the schema points to a schema, and no chain of them
    comes back to where it started without descending into the document (`{"$ref": "#"}`:
    validation would recurse without end). Unresolvable refs are reported when used."""
    import referencing.exceptions

    in_place: dict[int, list[int]] = {}
    refs: dict[int, str] = {}
    todo: list[tuple[Any, Any]] = [(resolver, schema)]
    while todo:
        current, node = todo.pop()
        if not isinstance(node, dict) or id(node) in in_place:
            continue
        targets = [node.get(key) for key in IN_PLACE]
        targets += [item for key in IN_PLACE_LISTS for item in _listed(node.get(key))]
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                resolved = current.lookup(ref)
            except referencing.exceptions.Unresolvable as exc:
                _refuse_outside(ref, exc)
                resolved = None
            if resolved is not None:
                _must_be_schema(ref, resolved.contents)
                refs[id(node)] = ref
                targets.append(resolved.contents)
                todo.append((resolved.resolver, resolved.contents))
        in_place[id(node)] = [id(t) for t in targets if isinstance(t, dict)]
        for key, value in node.items():
            if key not in NOT_SCHEMAS:
                todo += [(current, child) for child in [value, *_listed(value)]]
    loop = _loop(in_place)
    if loop:
        ref = next((refs[n] for n in loop if n in refs), "#")
        raise SchemaProblem(
            f"$ref {ref!r} leads back to itself without descending into the document: "
            "validation would never end",
            rule="invalid-schema",
            in_schema=True,
        )


class RefOutside(Exception):
    """A `$ref` whose target lies outside the repository (raised before reading it)."""


def _refuse_outside(ref: str, error: BaseException) -> None:
    """The SchemaProblem for a `$ref` that `retrieve` refused as leading outside the repository."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, RefOutside):
        cause = cause.__cause__
    if cause is not None:
        raise SchemaProblem(
            f"$ref {ref!r} leads outside the repository ({cause}); it is not read",
            rule="ref-outside-repository",
            in_schema=True,
        ) from error


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _must_be_schema(ref: str, contents: Any) -> None:
    if not isinstance(contents, (dict, bool)):
        kind = {list: "an array", str: "a string", type(None): "null"}.get(
            type(contents), "a value"
        )
        raise SchemaProblem(
            f"$ref {ref!r} does not point to a schema (it is {kind}: a schema is an object or "
            "a boolean)",
            rule="invalid-schema",
            in_schema=True,
        )


def _loop(edges: dict[int, list[int]]) -> list[int]:
    """The nodes of one cycle in `edges`, or [] when there is none (iterative DFS)."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if start in state:
            continue
        path = [start]
        state[start] = 1
        stack = [iter(edges.get(start, ()))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(following) == 1:
                return path[path.index(following) :]
            elif following not in state:
                state[following] = 1
                path.append(following)
                stack.append(iter(edges.get(following, ())))
    return []


@dataclass
class TimedPatterns:
    """jsonschema's `pattern`, `patternProperties` and `additionalProperties` keywords,
    matching with the `regex` package under a time limit. A pattern that ran out of time
    is not tried again on this schema: each later value gets the same error at once."""

    timeout: float = PATTERN_TIMEOUT
    slow: set[str] = field(default_factory=set)

    def keywords(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "patternProperties": self.pattern_properties,
            "additionalProperties": self.additional_properties,
        }

    def search(self, pattern: str, text: str) -> bool | None:
        """Whether `pattern` matches somewhere in `text`; None when it ran out of time."""
        import regex

        if pattern in self.slow:
            return None
        try:
            return regex.search(pattern, text, timeout=self.timeout) is not None
        except TimeoutError:
            self.slow.add(pattern)
            return None

    def _too_slow(self, pattern: str) -> Any:
        from jsonschema.exceptions import ValidationError

        return ValidationError(
            f"pattern {pattern!r} took more than {self.timeout:g} s on this value "
            "(catastrophic backtracking?); simplify the pattern"
        )

    def pattern(self, validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
        from jsonschema.exceptions import ValidationError

        if not validator.is_type(instance, "string"):
            return
        found = self.search(pattern, instance)
        if found is None:
            yield self._too_slow(pattern)
        elif not found:
            yield ValidationError(f"{instance!r} does not match {pattern!r}")

    def pattern_properties(
        self, validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for pattern, subschema in patterns.items():
            for key, value in instance.items():
                found = self.search(pattern, key)
                if found is None:
                    yield self._too_slow(pattern)
                elif found:
                    yield from validator.descend(value, subschema, path=key, schema_path=pattern)

    def additional_properties(
        self, validator: Any, additional: Any, instance: Any, schema: Any
    ) -> Iterator[Any]:
        """jsonschema's own keyword, with the properties that patterns claim found in time."""
        from jsonschema.exceptions import ValidationError

        if not validator.is_type(instance, "object"):
            return
        patterns = list(schema.get("patternProperties", {}))
        named = schema.get("properties", {})
        extras = []
        for key in instance:
            matches = [self.search(pattern, key) for pattern in patterns if key not in named]
            if None in matches:
                yield self._too_slow(next(p for p in patterns if p in self.slow))
            elif key not in named and not any(matches):
                extras.append(key)
        if validator.is_type(additional, "object"):
            for key in extras:
                yield from validator.descend(instance[key], additional, path=key)
        elif not additional and extras:
            shown = ", ".join(repr(key) for key in sorted(extras))
            if patterns:
                verb = "does" if len(extras) == 1 else "do"
                regexes = ", ".join(repr(p) for p in sorted(patterns))
                yield ValidationError(f"{shown} {verb} not match any of the regexes: {regexes}")
            else:
                verb = "was" if len(extras) == 1 else "were"
                yield ValidationError(
                    f"Additional properties are not allowed ({shown} {verb} unexpected)"
                )


def referenced_files(full: Path, *, root: Path | None = None) -> set[Path]:
    """The schema file and every local file its `$ref`s reach, transitively.

    They all decide verdicts, so the content cache fingerprints them. With `root`,
    files outside it are neither read nor listed (the schema's check refuses them).
    """
    found: set[Path] = set()
    todo = [full]
    while todo:
        current = todo.pop()
        if current in found or outside(root, current) or not current.is_file():
            continue
        found.add(current)
        try:
            document = _read_schema(current)
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError):
            continue
        declared = document.get("$id") if isinstance(document, dict) else None
        base = declared.rsplit("/", 1)[0] + "/" if isinstance(declared, str) else None
        for ref in _refs(document):
            target = ref.split("#", 1)[0]
            if base and target.startswith(base):
                target = target.removeprefix(base)
            local = file_target(target)
            if local is not None:
                todo.append(local)
            elif target and "://" not in target:
                todo.append((current.parent / unquote(target)).resolve())
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
        except RecursionError:
            # _check_refs refuses $ref loops up front; what is left recursing is a deep
            # document meeting a recursive schema.
            findings.append(
                Finding(
                    path,
                    None,
                    None,
                    "schema",
                    "too-deep",
                    "error",
                    f"validating against {rule.schema_path} recursed too deeply; "
                    "the document is not checked against it",
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
