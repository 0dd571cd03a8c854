"""Parsed documents and where their nodes are in the source.

Each file is read and parsed once; the `Parsed` value it yields feeds the
schema and policy checks. `Parsed.locate(doc, path)` turns a JSON path
(`["spec", "replicas"]`) into the 1-based line and column of that node,
which is how schema errors and policy results land on file:line:col.
YAML keeps the composed node tree for that; NGINX documents carry a `line`
on every directive. Documents that crossed a process boundary or came from
the result cache have no node tree; `reread` composes it again, only when a
finding has to be placed. This module does no I/O itself.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

Position = tuple[int, int | None]
JsonPath = Sequence[str | int]


@dataclass(frozen=True)
class Parsed:
    """The documents of one file (one per YAML document) and how to locate their nodes."""

    kind: str
    documents: tuple[Any, ...]
    nodes: tuple[yaml.Node | None, ...] = field(default=(), compare=False, repr=False)
    # NGINX: the file as nginx reads it, in each nginx.conf that includes it (`cd_checks.nginx`),
    # for the builtin nginx set; users' policies get `documents`, the file alone.
    in_context: Parsed | None = field(default=None, compare=False, repr=False)
    # Without `nodes`: how to compose them again (from the same bytes), when asked to locate.
    reread: Callable[[], tuple[yaml.Node | None, ...]] | None = field(
        default=None, compare=False, repr=False
    )

    @cached_property
    def _trees(self) -> tuple[yaml.Node | None, ...]:
        if self.nodes or self.reread is None:
            return self.nodes
        return self.reread()

    def locate(self, document: int, path: JsonPath, *, key: bool = False) -> Position | None:
        """Line and column of the node at `path`; the deepest existing ancestor when missing.

        With `key=True` and a mapping member, the position of the key rather than the value.
        """
        if self.kind == "nginx" and document < len(self.documents):
            return _nginx_position(self.documents[document], path)
        trees = self._trees
        if document < len(trees) and trees[document] is not None:
            return _node_position(trees[document], path, key=key)
        return None


def _node_position(node: yaml.Node | None, path: JsonPath, *, key: bool) -> Position | None:
    if node is None:
        return None
    current: yaml.Node = node
    key_node: yaml.Node | None = None
    for step in path:
        found = _child(current, step)
        if found is None:
            break
        key_node, current = found
    target = key_node if key and key_node is not None else current
    return target.start_mark.line + 1, target.start_mark.column + 1


def _child(node: yaml.Node, step: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(step):
                return key_node, value_node
        return None
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(step, int)
        and 0 <= step < len(node.value)
    ):
        return None, node.value[step]
    return None


def _nginx_position(document: Any, path: JsonPath) -> Position | None:
    """The line of the directive at `path` in the checked file. A directive another file
    brought in through an include of the checked file is placed on that include's line."""
    own = document.get("file") if isinstance(document, dict) else None
    current, line = document, None
    for step in path:
        try:
            current = current[step]
        except (KeyError, IndexError, TypeError):
            break
        if not isinstance(current, dict) or not isinstance(current.get("line"), int):
            continue
        if own is None or current.get("file", own) == own:
            line = current["line"]
            continue
        for source, at in current.get("included_from", []):
            if source == own and isinstance(at, int):
                line = at
                break
    return (line, None) if line is not None else None


def to_json_compatible(value: Any) -> Any:
    """Dates to ISO strings and keys to strings, so schemas and Rego see JSON data."""
    if isinstance(value, dict):
        return {_key(k): to_json_compatible(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json_compatible(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (set, tuple)):
        return [to_json_compatible(v) for v in value]
    return value


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)
