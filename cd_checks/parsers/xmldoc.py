"""XML in goxml2json's shape (conftest's XML parser), read with the standard expat.

Each element is a node: attributes become children named `-name`, the text is
the element's last run of character data with spaces and control characters
trimmed off both ends (as goxml2json keeps it). A node with children is an
object, its text under `#content` when non-empty; a node without is its text.
Names lose their namespace prefix (`ns:tag` is `tag`). DTDs may not declare
entities: a few hundred bytes of nested entities expand to gigabytes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from cd_checks.parsers import NotRead, ParseError


@dataclass
class _Node:
    children: dict[str, list[_Node]] = field(default_factory=dict)
    data: str = ""

    def add(self, label: str, node: _Node) -> None:
        self.children.setdefault(label, []).append(node)


def parse(text: str) -> Any:
    root = _Node()
    stack = [root]

    def start(name: str, attributes: dict[str, str]) -> None:
        node = _Node()
        for key, value in attributes.items():
            node.add("-" + _local(key), _Node(data=value))
        stack.append(node)

    def end(name: str) -> None:
        node = stack.pop()
        stack[-1].add(_local(name), node)

    def characters(data: str) -> None:
        stack[-1].data = _trim(data)

    def no_entities(*_: Any) -> None:
        raise NotRead("xml: entity declarations are not read (they can expand without bound)")

    parser = expat.ParserCreate()
    parser.buffer_text = True  # one run of text arrives as one piece, as Go's decoder gives it
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.EntityDeclHandler = no_entities
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:
        message = expat.errors.messages[exc.code] if exc.code else str(exc)
        raise ParseError(f"xml: {message}", exc.lineno, exc.offset + 1) from None
    return _value(root)


def _value(node: _Node) -> Any:
    if not node.children:
        return node.data
    shaped: dict[str, Any] = {"#content": node.data} if node.data else {}
    for label, nodes in node.children.items():
        shaped[label] = _value(nodes[0]) if len(nodes) == 1 else [_value(n) for n in nodes]
    return shaped


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def _trim(data: str) -> str:
    """goxml2json's trimNonGraphic: drop leading and trailing spaces and non-graphic runes."""
    keep = [i for i, c in enumerate(data) if _graphic(c) and not c.isspace()]
    return data[keep[0] : keep[-1] + 1] if keep else ""


def _graphic(char: str) -> bool:
    return unicodedata.category(char)[0] in "LMNPS" or unicodedata.category(char) == "Zs"
