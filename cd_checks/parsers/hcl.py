"""HCL2 (Terraform `.tf`, `.tfvars`, `.hcl`) and HCL1, in conftest's shapes.

HCL2 is read with python-hcl2 and reshaped the way conftest's converter
(after tmccombs/hcl2json) shapes it: a block's labels nest as keys and its body
is always a list, so `resource "aws_s3_bucket" "b" {...}` is
`{"resource": {"aws_s3_bucket": {"b": [{...}]}}}` and a nested block
`ingress {...}` is `"ingress": [{...}]`; literals keep their JSON type, any
other expression is its source text in `${...}`, strings are unescaped and
heredocs are their text with a final newline (`<<-` heredocs de-indented).
HCL1 is read with pyhcl and reshaped as hashicorp/hcl v1 decodes it for conftest: an
object inside an object is a list (`provider[0].google[0].project`).
"""

from __future__ import annotations

import re
from typing import Any

from cd_checks.parsers import ParseError

BLOCK_MARK = "__is_block__"
_HEREDOC = re.compile(r"<<(-?)([A-Za-z_][\w-]*)\n(.*?)\n?[ \t]*\2\Z", re.DOTALL)


def parse_hcl2(text: str) -> list[Any]:
    import hcl2
    import lark

    options = hcl2.SerializationOptions(
        with_comments=False, strip_string_quotes=True, preserve_heredocs=True
    )
    try:
        loaded = hcl2.loads(text, serialization_options=options)
    except lark.exceptions.UnexpectedInput as exc:
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        raise ParseError(f"hcl2: {_unexpected(exc)}", _positive(line), _positive(column)) from None
    except (lark.exceptions.LarkError, ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"hcl2: {_first_line(str(exc)) or type(exc).__name__}") from None
    return [_body(loaded)]


def _unexpected(exc: Any) -> str:
    """lark's error in a user's words: what came where something else was expected."""
    token = getattr(exc, "token", None)
    if token is None:
        char = getattr(exc, "char", None)
        return f"unexpected character {char!r}" if char else "syntax error"
    value = str(token)
    if not value.strip():
        return "unexpected end of line" if "\n" in value else "unexpected end of file"
    return f"unexpected {value.strip().splitlines()[0][:40]!r}"


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), "")


def _body(body: dict[str, Any]) -> dict[str, Any]:
    shaped: dict[str, Any] = {}
    for key, value in body.items():
        if key == BLOCK_MARK:
            continue
        if _is_blocks(value):
            for block in value:
                _add_block(shaped, key, block)
        else:
            shaped[key] = _expression(value)
    return shaped


def _is_blocks(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_block(v) for v in value)


def _is_block(value: Any) -> bool:
    """A block body carries the mark; a label level is a one-key mapping over a block."""
    if not isinstance(value, dict):
        return False
    if value.get(BLOCK_MARK) is True:
        return True
    return len(value) == 1 and _is_block(next(iter(value.values())))


def _add_block(shaped: dict[str, Any], key: str, block: dict[str, Any]) -> None:
    """Walk the labels down to the body; bodies under the same labels share one list."""
    target, name = shaped, key
    while block.get(BLOCK_MARK) is not True:
        label, block = next(iter(block.items()))
        existing = target.setdefault(name, {})
        if not isinstance(existing, dict):
            raise ParseError(f"hcl2: unable to convert block to JSON: {key}.{label}")
        target, name = existing, label
    bodies = target.setdefault(name, [])
    if not isinstance(bodies, list):
        raise ParseError(f"hcl2: unable to convert block to JSON: {key}.{name}")
    bodies.append(_body(block))


def _expression(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _expression(v) for key, v in value.items() if key != BLOCK_MARK}
    if isinstance(value, list):
        return [_expression(v) for v in value]
    if isinstance(value, str):
        return _string(value)
    return value


def _string(value: str) -> str:
    heredoc = _HEREDOC.fullmatch(value)
    if heredoc:
        return _heredoc(heredoc[3], indented=heredoc[1] == "-")
    # python-hcl2 keeps the template escapes of a literal `${` and `%{`; HCL reads them.
    return value.replace("$${", "${").replace("%%{", "%{")


def _heredoc(body: str, *, indented: bool) -> str:
    lines = body.split("\n")
    if indented:
        indents = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()]
        margin = min(indents, default=0)
        lines = [line[margin:] for line in lines]
    return "\n".join(lines) + "\n"


def parse_hcl1(text: str) -> list[Any]:
    import hcl

    try:
        loaded = hcl.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise ParseError(f"hcl1: {_first_line(str(exc))}", _positive(line)) from None
    return [_hcl1_shape(loaded, in_map=False)]


def _hcl1_shape(value: Any, *, in_map: bool) -> Any:
    """pyhcl's JSON form to what hashicorp/hcl v1 decodes into interface{} (conftest's hcl1):
    an object directly inside an object is a list of objects, so `provider "google" {...}`
    is `{"provider": [{"google": [{...}]}]}`; at the top and inside a list it stays an
    object. (hcl v1 keeps two same-key blocks as two list members; pyhcl has merged them
    into one object, so they are one member here: `resource[_].aws_x[_].name` reads both.)"""
    if isinstance(value, dict):
        shaped = {key: _hcl1_shape(item, in_map=True) for key, item in value.items()}
        return [shaped] if in_map else shaped
    if isinstance(value, list):
        return [_hcl1_shape(item, in_map=False) for item in value]
    return value


# -- where things are: the line of each block and attribute, by conftest path ----------

_ATTRIBUTE = re.compile(r"([A-Za-z_][\w-]*)\s*=(?!=)(.*)")
_BLOCK = re.compile(r'([A-Za-z_][\w-]*)((?:\s+(?:"(?:[^"\\]|\\.)*"|[A-Za-z_][\w-]*))*)\s*\{(.*)')
_LABEL = re.compile(r'"((?:[^"\\]|\\.)*)"|([A-Za-z_][\w-]*)')
_OPEN_HEREDOC = re.compile(r"<<-?([A-Za-z_][\w-]*)\s*$")

Path = tuple[str | int, ...]


def hcl2_lines(text: str) -> dict[Path, tuple[int, int]]:
    """The 1-based line and column of each block and attribute of an HCL2 text, keyed by its path in
    the shape `parse_hcl2` gives (`("resource", "aws_s3_bucket", "b", 0, "acl")`).

    A line scan, not a parse: it runs only on text `parse_hcl2` accepted, and a line it
    cannot place leaves that path to its enclosing block's line.
    """
    lines: dict[Path, tuple[int, int]] = {}
    bodies: list[tuple[Path, dict[Path, int]]] = [((), {})]
    rows = text.splitlines()
    number = 0
    while number < len(rows):
        line = rows[number].strip()
        number += 1
        where = (number, len(rows[number - 1]) - len(rows[number - 1].lstrip()) + 1)
        path, counts = bodies[-1]
        if line.startswith("}") and len(bodies) > 1:
            bodies.pop()
            continue
        attribute = _ATTRIBUTE.fullmatch(line)
        if attribute:
            lines.setdefault((*path, attribute[1]), where)
            number = _past_value(attribute[2], rows, number)
            continue
        block = _BLOCK.fullmatch(line)
        if block:
            labels = tuple(m[1] if m[1] is not None else m[2] for m in _LABEL.finditer(block[2]))
            key = (block[1], *labels)
            index = counts.get(key, 0)
            counts[key] = index + 1
            for depth in range(1, len(key) + 1):
                lines.setdefault((*path, *key[:depth]), where)
            lines[(*path, *key, index)] = where
            if "}" not in block[3]:
                bodies.append(((*path, *key, index), {}))
    return lines


def _past_value(value: str, rows: list[str], number: int) -> int:
    """The line after an attribute's value: multi-line objects, lists, calls and heredocs."""
    heredoc = _OPEN_HEREDOC.search(value)
    if heredoc:
        while number < len(rows) and rows[number].strip() != heredoc[1]:
            number += 1
        return number + 1
    depth = _depth(value)
    while depth > 0 and number < len(rows):
        depth += _depth(rows[number])
        number += 1
    return number


def _depth(text: str) -> int:
    """Brackets opened minus closed, outside strings and comments."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.split(r"#|//", text, maxsplit=1)[0]
    return sum(text.count(c) for c in "{[(") - sum(text.count(c) for c in "}])")
