"""Reading untrusted text within bounds: the one way cd-checks parses YAML, JSON and TOML.

Everything cd-checks reads may come from a pull request: the checked files,
and also cd-checks.yml, the exceptions file, schemas and policy data. A few
hundred bytes can ask for billions of nodes (YAML aliases), nesting that
exhausts the stack, or an integer too long to convert. YAML is composed with
libyaml and its node graph measured (expanded size, depth) before any value
is built; values are read the way yamllint accepts them (an impossible date
such as 2024-02-30 stays its text). JSON and TOML values are held to the
same depth, JSON's NaN/Infinity are refused and its duplicate keys reported.
A crossed bound or a bad value raises `ParseProblem` with its line; callers
turn it into a finding or one error line. This module does no I/O.
"""

from __future__ import annotations

import gc
import json
import re
import sys
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from cd_checks.documents import to_json_compatible

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Deeper than this is refused everywhere. Real configuration nests a few dozen
# levels (a CRD's openAPIV3Schema about 30); jsonschema recurses ~4 frames a level
# and the default stack takes ~250, and yamllint's scanner slows down with every
# open flow level (200 KB at depth 100: seconds; at depth 1,000: minutes).
MAX_DEPTH = 128
# Python refuses to convert longer integer strings (CVE-2020-10735).
INT_DIGITS = getattr(sys, "get_int_max_str_digits", lambda: 4300)() or 4300


@dataclass(frozen=True)
class Bounds:
    """How much a YAML text may expand to, how deep it may nest and how long it may be."""

    nodes: int  # expanded nodes, counted only when aliases blow the text up tenfold
    depth: int = MAX_DEPTH
    size: int | None = None  # characters; None: no limit (checked files have files.max_size_mb)


# Checked files: big data is fine, a bomb is not.
DOCUMENTS = Bounds(nodes=2_000_000)
# cd-checks.yml, the exceptions file, schemas, policy data: small, and validated
# or merged node by node, so an expansion is refused much earlier.
SETTINGS = Bounds(nodes=100_000, size=32 * 2**20)


class ParseProblem(ValueError):
    """A text cd-checks refuses to read further: a crossed bound or a value it cannot build."""

    def __init__(
        self, rule: str, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.rule, self.message, self.line, self.column = rule, message, line, column

    def where(self) -> str:
        """`:line:col` (or `:line`, or nothing) to follow a file name."""
        if self.line is None:
            return ""
        return f":{self.line}" + (f":{self.column}" if self.column is not None else "")


# -- YAML -------------------------------------------------------------------------------


class YamlLoader(yaml.CSafeLoader):
    """libyaml's safe loader, reading values the way yamllint accepts them.

    Application tags (`!vault`, `!reference`, `!Ref`) are valid YAML: their plain
    value is read. A date-shaped scalar that is no date (2024-02-30) is its text,
    as YAML 1.2 and yamllint read it. A value Python cannot build (an integer of
    5,000 digits) is a `ParseProblem` at its line, never a bare ValueError.
    YAML 1.1's value key `=` is the string "=", and a complex key (a list or a
    mapping used as a key, valid YAML that JSON cannot hold) becomes its
    canonical JSON text, so the document still reaches schemas and policies.
    """

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        # PyYAML's own version refuses an unhashable key; this one keeps it as text.
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.tag}", node.start_mark
            )
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable) or isinstance(key, tuple):
                key = _key_text(key)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ParseProblem, yaml.YAMLError):
            raise
        except ValueError as exc:
            line, column = _position(node)
            raise ParseProblem("bad-value", f"cannot read this value: {exc}", line, column) from exc


def _key_text(key: Any) -> str:
    return json.dumps(to_json_compatible(key), sort_keys=True, separators=(",", ":"))


def _plain(loader: YamlLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


def _timestamp(loader: YamlLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:  # day is out of range for month, ...
        return loader.construct_scalar(node)


def _int(loader: YamlLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_int(node)
    except ValueError as exc:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits <= INT_DIGITS:
            raise
        line, column = _position(node)
        raise ParseProblem("number-too-long", _too_long(digits), line, column) from exc


def _too_long(digits: int) -> str:
    return f"an integer of {digits:,} digits is longer than cd-checks reads ({INT_DIGITS:,} digits)"


YamlLoader.add_multi_constructor("!", _plain)
YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
YamlLoader.add_constructor("tag:yaml.org,2002:int", _int)
# Any other tag (`!!value` for YAML 1.1's `=`, `!!python/tuple`, a %TAG URI) is valid
# YAML that yamllint accepts: read its plain value.
YamlLoader.add_multi_constructor(None, _plain)


@dataclass(frozen=True)
class YamlDocument:
    """One document of a stream: its node tree, its JSON-compatible value, or why it was refused."""

    node: yaml.Node
    value: Any
    problem: ParseProblem | None = None


def read_yaml(text: str, bounds: Bounds = DOCUMENTS) -> list[YamlDocument]:
    """Every document of a YAML stream, composed, measured, then built.

    A document over `bounds` or with a value that cannot be built carries its
    `problem` and no value; the others are read. A syntax error raises
    `yaml.YAMLError`; a text over `bounds.size` raises `ParseProblem`.
    """
    _check_size(text, bounds)
    loader = YamlLoader(text)
    # Building millions of nodes triggers the cyclic GC over and over (a 20 MB
    # file: 55 s with it, 11 s without); nodes hold no cycles worth collecting.
    collecting = gc.isenabled()
    gc.disable()
    try:
        nodes = []
        while loader.check_node():
            node = loader.get_node()
            assert node is not None  # check_node() said there is one
            nodes.append(node)
        return [_document(loader, node, bounds) for node in nodes]
    except yaml.MarkedYAMLError as exc:
        raise _nesting(exc) or exc from None
    finally:
        loader.dispose()
        if collecting:
            gc.enable()


def _document(loader: YamlLoader, node: yaml.Node, bounds: Bounds) -> YamlDocument:
    problem = measure(node, bounds)
    if problem is not None:
        return YamlDocument(node, None, problem)
    try:
        return YamlDocument(node, to_json_compatible(loader.construct_document(node)))
    except ParseProblem as exc:
        return YamlDocument(node, None, exc)


def load_yaml(text: str, bounds: Bounds = SETTINGS) -> Any:
    """The single document of a YAML text as JSON-compatible data, like `yaml.safe_load`.

    Raises `yaml.YAMLError` for a syntax error (or several documents), `ParseProblem`
    for a crossed bound or a value that cannot be built.
    """
    node = compose_yaml(text, bounds)
    if node is None:
        return None
    return construct(node)


def compose_yaml(text: str, bounds: Bounds = SETTINGS) -> yaml.Node | None:
    """The node tree of the single document of a YAML text, measured against `bounds`."""
    _check_size(text, bounds)
    loader = YamlLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise _nesting(exc) or exc from None
    finally:
        loader.dispose()
    if node is not None:
        problem = measure(node, bounds)
        if problem is not None:
            raise problem
    return node


def construct(node: yaml.Node) -> Any:
    """The JSON-compatible value of a (measured) node; `ParseProblem` if it cannot be built."""
    loader = YamlLoader("")
    try:
        return to_json_compatible(loader.construct_document(node))
    finally:
        loader.dispose()


def _check_size(text: str, bounds: Bounds) -> None:
    if bounds.size is not None and len(text) > bounds.size:
        raise ParseProblem(
            "too-large", f"{len(text) / 2**20:.1f} MB is more than {bounds.size / 2**20:g} MB"
        )


def _nesting(exc: yaml.MarkedYAMLError) -> ParseProblem | None:
    """libyaml stops at 1,000 levels on its own: the same problem as ours, said the same way."""
    if "maximum nesting depth" not in str(exc.problem):
        return None
    line, column = _mark(exc.problem_mark)
    return ParseProblem("too-deep", _too_deep(MAX_DEPTH), line, column)


def _too_deep(limit: int) -> str:
    return f"nested deeper than {limit} levels"


def measure(root: yaml.Node, bounds: Bounds) -> ParseProblem | None:
    """Why a document's node graph is refused: aliases that expand without measure,
    a recursive alias, or nesting deeper than `bounds.depth`. None when it is fine.

    Iterative (a deep document must not exhaust the stack it is measured for), and
    each node is visited once however often aliases repeat it.
    """
    cap = bounds.nodes + 1
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            children = _children(node)
            size[key] = min(cap, 1 + sum(size[id(c)] for c in children))
            height[key] = 1 + max((height[id(c)] for c in children), default=0)
        elif key in on_path:
            line, column = _position(node)
            return ParseProblem("alias-bomb", "an alias refers to its own ancestor", line, column)
        elif key not in size and not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            size[key], height[key] = 1, 0
        elif key not in size:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in size)
    if height[id(root)] > bounds.depth:
        line, column = _position(_at_level(root, bounds.depth + 1, height))
        return ParseProblem("too-deep", _too_deep(bounds.depth), line, column)
    expanded = size[id(root)]
    if expanded > bounds.nodes and expanded > 10 * len(size):
        line, column = _position(root)
        message = f"aliases expand to more than {bounds.nodes:,} nodes (an alias bomb)"
        return ParseProblem("alias-bomb", message, line, column)
    return None


def _at_level(root: yaml.Node, level: int, height: dict[int, int]) -> yaml.Node:
    """The node `level` levels down one of the deepest paths: where nesting gets too deep."""
    node = root
    for _ in range(level - 1):
        node = max(_children(node), key=lambda child: height[id(child)])
    return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _position(node: yaml.Node) -> tuple[int, int]:
    return _mark(node.start_mark)  # type: ignore[return-value]


def _mark(mark: Any) -> tuple[int | None, int | None]:
    if mark is None:
        return None, None
    return int(mark.line) + 1, int(mark.column) + 1


def reader_problem(exc: yaml.YAMLError, text: str) -> ParseProblem:
    """A character YAML does not allow (a control character, a NUL), at its line."""
    offset = getattr(exc, "position", None)
    line, column = position_of(text, offset) if isinstance(offset, int) else (None, None)
    character = getattr(exc, "character", None)
    if isinstance(character, str) and character:
        character = ord(character)
    code = f"#x{character:04x}" if isinstance(character, int) else "a character"
    return ParseProblem("encoding", f"{code} is not allowed in YAML text", line, column)


# -- JSON and TOML ----------------------------------------------------------------------


def load_json(text: str, *, depth: int = MAX_DEPTH) -> tuple[Any, list[ParseProblem]]:
    """A JSON value and its duplicate keys (the last value wins, as in most parsers).

    NaN and Infinity (not JSON, RFC 8259), an integer too long to convert and
    nesting deeper than `depth` raise `ParseProblem`; a syntax error raises
    `json.JSONDecodeError`.
    """
    flagged: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        mapping = dict(items)
        if len(mapping) != len(items):
            flagged.append("duplicate")
        return mapping

    def constant(name: str) -> float:
        flagged.append(name)
        return float(name)

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except RecursionError:
        raise _deep_json(text, depth) from None
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            raise
        raise _long_number(text) or ParseProblem("bad-value", str(exc)) from exc
    problems = list(_json_problems(text, depth)) if flagged else []
    fatal = [p for p in problems if p.rule != "duplicate-key"]
    if fatal:
        raise fatal[0]
    if _deeper_than(value, depth):
        raise _deep_json(text, depth)
    return value, problems


def load_toml(text: str, *, depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A TOML document; `tomllib.TOMLDecodeError` for a syntax error, `ParseProblem`
    for an integer too long to convert or nesting deeper than `depth`."""
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise ParseProblem("too-deep", _too_deep(depth)) from None
    except tomllib.TOMLDecodeError:
        raise
    except ValueError as exc:
        raise _long_number(text) or ParseProblem("bad-value", str(exc)) from exc
    if _deeper_than(value, depth):
        raise ParseProblem("too-deep", _too_deep(depth))
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether a parsed value nests deeper than `limit` (iteratively; containers only)."""
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


_LONG_NUMBER = re.compile(rf"\d{{{INT_DIGITS + 1},}}")


def _long_number(text: str) -> ParseProblem | None:
    found = _LONG_NUMBER.search(text)
    if found is None:
        return None
    line, column = position_of(text, found.start())
    return ParseProblem("number-too-long", _too_long(len(found[0])), line, column)


def position_of(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


# A string, a structural character, or a bare word (number, literal, NaN, Infinity).
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def _json_problems(text: str, depth: int) -> Iterator[ParseProblem]:
    """Walk the (valid) JSON text once more to put NaN, Infinity and duplicate keys on lines.

    Only run when the parser saw one of them, so clean files pay nothing.
    """
    frames: list[tuple[set[str], bool] | None] = []  # per open container: keys seen, key next
    for token in _JSON_TOKEN.finditer(text):
        kind = token[0]
        top = frames[-1] if frames else None
        if kind in "{[":
            frames.append((set(), True) if kind == "{" else None)
        elif kind in "]}":
            frames.pop()
        elif kind == ",":
            if top is not None:
                frames[-1] = (top[0], True)
        elif kind == ":":
            continue
        elif top is not None and top[1]:
            frames[-1] = (top[0], False)
            name = json.loads(kind)
            if name in top[0]:
                line, column = position_of(text, token.start())
                yield ParseProblem(
                    "duplicate-key", f"duplicate key {name!r} (the last value wins)", line, column
                )
            top[0].add(name)
        elif kind.lstrip("-") in ("NaN", "Infinity"):
            line, column = position_of(text, token.start())
            yield ParseProblem("syntax", f"{kind} is not valid JSON (RFC 8259)", line, column)


def _deep_json(text: str, depth: int) -> ParseProblem:
    """Too deep, at the first bracket past `depth` (strings skipped)."""
    level = 0
    for token in _JSON_TOKEN.finditer(text):
        if token[0] in "{[":
            level += 1
            if level > depth:
                line, column = position_of(text, token.start())
                return ParseProblem("too-deep", _too_deep(depth), line, column)
        elif token[0] in "]}":
            level -= 1
    return ParseProblem("too-deep", _too_deep(depth))
