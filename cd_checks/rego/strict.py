"""conftest's `--strict`: OPA's compiler strict mode, checked on the policies' syntax trees.

OPA's strict mode (`opa check --strict`, conftest `--strict`) refuses policies with
mistakes that usually hide a bug; regorus has no such mode, so these checks walk the
syntax tree regorus gives (`Engine.get_ast_as_json`). Each problem is a line in OPA's
own words, `file:line: rego_compile_error: assigned var x unused`:

- an unused local: a `:=` assignment, a `some x` declaration or a function argument
  that nothing else in its rule mentions;
- an unused import (`rego.v1` and `future.keywords` excepted);
- a deprecated built-in (`any`, `all`, `re_match`, `net.cidr_overlap`, `set_diff`,
  `cast_*`).

OPA's other strict checks hold without `--strict` here: regorus always refuses a
duplicate import and a rule or variable that shadows `input`. A name is "mentioned" if
it appears anywhere else in the rule (head, bodies, comprehensions): a name declared in
two places of one rule and used in one is not reported (OPA would report the other).
`some x in xs` is not checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cd_checks.errors import PolicyError
from cd_checks.rego.loader import PolicyFile, policy_files
from cd_checks.rego.model import PolicySource, RegoVersion

DEPRECATED = frozenset(
    {
        "any",
        "all",
        "re_match",
        "net.cidr_overlap",
        "set_diff",
        "cast_array",
        "cast_set",
        "cast_string",
        "cast_boolean",
        "cast_null",
        "cast_object",
    }
)
# Imports that switch on syntax rather than name a document.
_KEYWORD_IMPORTS = ("rego.v1", "future.keywords")


def strict_problems(
    source: PolicySource, *, tests: bool = False, root: Path | None = None
) -> list[str]:
    """OPA strict-mode errors in `source`'s policies (with `tests`, its `_test.rego` files
    too), one line each, file names relative to `root` when inside it. A file that does not
    parse gives none: loading it says why."""
    from cd_checks.rego.embedded import first_parse, shown_name

    root = root or source.root
    try:
        files = policy_files(source.paths, tests=tests)
    except PolicyError:
        return []
    problems: list[str] = []
    for policy in files:
        module = first_parse(policy, source.rego_version)
        if module is not None:
            name = shown_name(policy.name, root)
            problems += _lines(name, policy.text, module)
    return problems


def enforce(source: PolicySource, *, tests: bool = False, root: Path | None = None) -> None:
    """--strict: OPA's strict-mode errors refuse the policies, as a compile error would."""
    problems = strict_problems(source, tests=tests, root=root)
    if problems:
        raise PolicyError(
            f"--strict: {len(problems)} Rego strict-mode error(s): {'; '.join(problems)}"
        )


def check_text(name: str, text: str, version: RegoVersion = "v1") -> list[str]:
    """strict_problems for one policy text, named `name`."""
    from cd_checks.rego.embedded import first_parse

    module = first_parse(PolicyFile(name, text), version)
    if module is None:
        return []
    return _lines(name, text, module)


def _lines(name: str, text: str, module: dict[str, Any]) -> list[str]:
    return [f"{name}:{line}: rego_compile_error: {what}" for line, what in _check(text, module)]


def _check(text: str, module: dict[str, Any]) -> list[tuple[int, str]]:
    raw = text.encode("utf-8")
    found: list[tuple[int, str]] = []
    rules = module.get("rules") or []
    found += _unused_imports(raw, module.get("imports") or [], rules)
    for rule in rules:
        found += _unused_locals(raw, rule)
        found += _deprecated_calls(rule)
    return sorted(set(found))


def _span_text(raw: bytes, span: dict[str, Any]) -> str:
    # regorus' spans are byte offsets into the policy's text.
    return raw[span["start"] : span["end"]].decode("utf-8", "replace")


def _nodes(tree: Any, kind: str) -> Iterator[dict[str, Any]]:
    """Every node of `kind` ("Var", "Call", ...) below `tree`, depth first."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == kind and isinstance(value, dict):
                    yield value
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _ref_name(term: Any) -> str | None:
    """`a.b.c` for a Var/RefDot chain, else None."""
    if not isinstance(term, dict):
        return None
    if "Var" in term:
        return str(term["Var"]["value"])
    dot = term.get("RefDot")
    if isinstance(dot, dict):
        base = _ref_name(dot.get("refr"))
        field = dot.get("field")
        if base is not None and isinstance(field, list) and field:
            return f"{base}.{field[-1]}"
    return None


def _unused_imports(
    raw: bytes, imports: list[dict[str, Any]], rules: list[Any]
) -> list[tuple[int, str]]:
    used = {v["value"] for v in _nodes(rules, "Var")}
    found = []
    for node in imports:
        path = _ref_name(node.get("refr"))
        if path is None or path.startswith(_KEYWORD_IMPORTS):
            continue
        alias = node.get("as")
        name = _span_text(raw, alias) if isinstance(alias, dict) else path.rsplit(".", 1)[-1]
        if name not in used:
            shown = f"import {path} as {name}" if isinstance(alias, dict) else f"import {path}"
            found.append((int(node["span"]["line"]), f"{shown} unused"))
    return found


def _declared(raw: bytes, rule: Any) -> list[tuple[str, int, int, str]]:
    """(name, line, start, what) of each local a rule declares: `:=` targets, `some x`
    names and function arguments."""
    out: list[tuple[str, int, int, str]] = []
    for assign in _nodes(rule, "AssignExpr"):
        if assign.get("op") == "ColEq":
            for var in _targets(assign.get("lhs")):
                out.append(
                    (var["value"], var["span"]["line"], var["span"]["start"], "assigned var")
                )
    for some in _nodes(rule, "SomeVars"):
        for span in some.get("vars") or []:
            out.append((_span_text(raw, span), span["line"], span["start"], "declared var"))
    head = rule.get("Spec", {}).get("head", {}) if isinstance(rule, dict) else {}
    for arg in (head.get("Func") or {}).get("args") or []:
        if isinstance(arg, dict) and "Var" in arg:
            var = arg["Var"]
            out.append((var["value"], var["span"]["line"], var["span"]["start"], "unused argument"))
    return [d for d in out if d[0] != "_"]


def _targets(lhs: Any) -> Iterator[dict[str, Any]]:
    """The variables a `:=` left-hand side declares (a name, or those of an array or an
    object's values)."""
    if not isinstance(lhs, dict):
        return
    if "Var" in lhs:
        yield lhs["Var"]
    elif "Array" in lhs:
        for item in lhs["Array"].get("items") or []:
            yield from _targets(item)
    elif "Object" in lhs:
        for field in lhs["Object"].get("fields") or []:
            if isinstance(field, list) and field:
                yield from _targets(field[-1])


def _unused_locals(raw: bytes, rule: Any) -> list[tuple[int, str]]:
    declared = _declared(raw, rule)
    if not declared:
        return []
    at = {(name, start) for name, _, start, _ in declared}
    mentions = Counter(
        v["value"] for v in _nodes(rule, "Var") if (v["value"], v["span"]["start"]) not in at
    )
    found = []
    for name, line, _, what in declared:
        if mentions[name]:
            continue
        if what == "unused argument":
            found.append(
                (line, f"unused argument {name}. (hint: use _ (wildcard variable) instead)")
            )
        else:
            found.append((line, f"{what} {name} unused"))
    return found


def _deprecated_calls(rule: Any) -> list[tuple[int, str]]:
    found = []
    for call in _nodes(rule, "Call"):
        name = _ref_name(call.get("fcn"))
        if name in DEPRECATED:
            line = int(call["span"]["line"])
            found.append((line, f"deprecated built-in function calls in expression: {name}"))
    return found
