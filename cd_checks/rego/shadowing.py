"""Work around a regorus 0.13 bug: `some x in ...` inside a comprehension that shadows an `x`
of the enclosing rule fails with "var `x` used before definition" (OPA accepts it).

The shadowing variable is renamed, in the policy text before regorus reads it,
throughout that comprehension to a fresh name of the same length, so lines and
columns in messages stay right. What the policy means is unchanged: in Rego the
inner `x` is a new variable of the comprehension. This module only computes
the renames from a parsed module's AST; it evaluates nothing.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Any

_COMPREHENSIONS = ("SetCompr", "ArrayCompr", "ObjectCompr")
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")

# (start, end) byte offsets of a variable occurrence, and the name to write there.
Rename = tuple[int, int, str]


def renames(module: dict[str, Any], text: bytes) -> list[Rename]:
    """Where to rename shadowing `some ... in` variables of comprehensions in `module`."""
    used = {m.group().decode() for m in _IDENTIFIER.finditer(text)}
    found: dict[int, Rename] = {}
    for rule in module.get("rules", []):
        # Enclosing comprehensions first: an inner one that declares the name again
        # renames its own occurrences over theirs.
        for comprehension in _comprehensions(rule):
            found.update((r[0], r) for r in _comprehension_renames(rule, comprehension, used))
    return list(found.values())


def apply(text: bytes, found: list[Rename]) -> bytes:
    out = bytearray(text)
    for start, end, name in found:
        out[start:end] = name.encode("ascii")
    return bytes(out)


def _comprehension_renames(
    rule: dict[str, Any], comprehension: dict[str, Any], used: set[str]
) -> list[Rename]:
    span = comprehension["span"]
    found: list[Rename] = []
    for name in _declared_by_some_in(comprehension):
        outside = [v for v in _vars(rule) if v[2] == name and not _within(v, span)]
        if not outside:
            continue
        fresh = _fresh(name, used)
        used.add(fresh)
        found += [(s, e, fresh) for s, e, n in _vars(comprehension) if n == name]
    return found


def _declared_by_some_in(comprehension: dict[str, Any]) -> set[str]:
    """Names a `some k, v in` of this comprehension's own body declares."""
    names: set[str] = set()
    for stmt in comprehension.get("query", {}).get("stmts", []):
        some_in = stmt.get("literal", {}).get("SomeIn")
        if some_in is None:
            continue
        for part in (some_in.get("key"), some_in.get("value")):
            if isinstance(part, dict) and "Var" in part and part["Var"]["value"] != "_":
                names.add(str(part["Var"]["value"]))
    return names


def _comprehensions(node: Any) -> Iterator[dict[str, Any]]:
    """Every comprehension under `node`, an enclosing one before those inside it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _COMPREHENSIONS and isinstance(value, dict):
                yield value
            yield from _comprehensions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _comprehensions(item)


def _vars(node: Any) -> Iterator[tuple[int, int, str]]:
    if isinstance(node, dict):
        var = node.get("Var")
        if isinstance(var, dict) and {"span", "value"} <= var.keys():
            yield int(var["span"]["start"]), int(var["span"]["end"]), str(var["value"])
        for value in node.values():
            yield from _vars(value)
    elif isinstance(node, list):
        for item in node:
            yield from _vars(item)


def _within(var: tuple[int, int, str], span: dict[str, Any]) -> bool:
    return int(span["start"]) <= var[0] and var[1] <= int(span["end"])


def _fresh(name: str, used: set[str]) -> str:
    """A name of the same length the module does not use."""
    if len(name) == 1:
        candidates: Iterator[str] = iter(string.ascii_letters)
    else:
        width = len(name) - 1
        candidates = (f"z{n:0{width}d}" for n in range(10**width))
    for candidate in candidates:
        if candidate not in used:
            return candidate
    return name  # every name of that length is taken: leave it (regorus then says why)
