"""Dockerfiles in conftest's shape: the instructions as moby/buildkit parses them.

conftest hands a policy one list of commands, `{"Cmd", "SubCmd", "JSON",
"Flags", "Value", "Stage"}` each: `Cmd` lowercased, `Value` the arguments as
buildkit splits them per instruction (FROM and EXPOSE by whitespace, RUN/CMD/
ENTRYPOINT/SHELL one string or the JSON array's items, COPY/ADD/VOLUME a JSON
array or words, ENV/LABEL name and value pairs, ARG words, ONBUILD its
sub-instruction's), `Stage` the index of the FROM it follows; comments before
an instruction come first as `{"Cmd": "comment", "Value": [text]}`.

This is a small port of buildkit's parser rather than dockerfile-parse: that
library keeps each instruction's arguments as one string and would need all of
buildkit's per-instruction splitting on top; porting the parser gives the exact
shape and a line for every error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cd_checks.parsers import ParseError

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"^(\d*)<<(-?)(['\"]?)([^<'\"]+)\3$")
INSTRUCTIONS = frozenset(
    {
        *("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck"),
        *("label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume"),
        "workdir",
    }
)
HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})


@dataclass
class _Node:
    """One instruction: its name as written, flags, argument values and JSON form."""

    cmd: str
    flags: list[str] | None
    values: list[str] | None
    json: bool = False
    sub: _Node | None = None
    comments: list[str] = field(default_factory=list)


@dataclass
class _Reader:
    lines: list[str]
    escape: str = "\\"
    directives_done: bool = False
    seen: set[str] = field(default_factory=set)
    at: int = 0  # lines consumed

    def directive(self, line: str) -> None:
        if self.directives_done:
            return
        match = _DIRECTIVE.match(line)
        name = match[1].lower() if match else ""
        if name not in ("escape", "syntax"):
            self.directives_done = True
            return
        if name in self.seen:
            raise ParseError(f"dockerfile: only one {name} parser directive can be used", self.at)
        self.seen.add(name)
        if name == "escape":
            if match is None or match[2] not in ("`", "\\"):
                raise ParseError(
                    f"dockerfile: invalid escape token {match and match[2]!r}", self.at
                )
            self.escape = match[2]

    def continues(self, line: str) -> tuple[str, bool]:
        """The line without a trailing escape token, and whether the next line continues it."""
        stripped = line.rstrip(" \t")
        if stripped.endswith(self.escape) and not stripped.endswith(self.escape * 2):
            return stripped[:-1], True
        if stripped == self.escape:
            return "", True
        return line, False


def parse(text: str) -> list[Any]:
    reader = _Reader(text.splitlines())
    commands: list[dict[str, Any]] = []
    stage = -1
    comments: list[str] = []
    while reader.at < len(reader.lines):
        raw = reader.lines[reader.at]
        reader.at += 1
        start = reader.at
        if raw.lstrip().startswith("#"):
            comments.append(raw[1:].strip())
        reader.directive(raw.lstrip())
        line = "" if raw.lstrip().startswith("#") else raw.lstrip()
        line, more = reader.continues(line)
        if not more and not line:
            continue
        line = _continued(reader, line, more)
        try:
            node = _node(line, reader.escape)
        except ParseError as exc:
            raise ParseError(exc.message, start, None) from None
        _check(node, start)
        _skip_heredocs(reader, node, line, start)
        stage += node.cmd.lower() == "from"
        commands += [_command("comment", None, [c], max(stage, 0)) for c in comments]
        comments = []
        commands.append(_shape(node, max(stage, 0)))
    if not commands or all(c["Cmd"] == "comment" for c in commands):
        raise ParseError("dockerfile: file with no instructions", max(reader.at, 1), None)
    return [commands]


def _continued(reader: _Reader, line: str, more: bool) -> str:
    while more and reader.at < len(reader.lines):
        raw = reader.lines[reader.at]
        reader.at += 1
        if raw.lstrip().startswith("#") or not raw.strip():
            continue  # comments and empty lines inside a continued instruction are dropped
        part, more = reader.continues(raw)
        line += part
    return line


def _command(
    cmd: str, flags: list[str] | None, value: list[str] | None, stage: int
) -> dict[str, Any]:
    return {"Cmd": cmd, "SubCmd": "", "JSON": False, "Flags": flags, "Value": value, "Stage": stage}


def _shape(node: _Node, stage: int) -> dict[str, Any]:
    shaped = _command(node.cmd.lower(), node.flags, node.values, stage)
    if node.sub is not None:
        shaped.update(SubCmd=node.sub.cmd, JSON=node.sub.json, Value=node.sub.values)
    else:
        shaped["JSON"] = node.json
    return shaped


def _node(line: str, escape: str) -> _Node:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    cmd = parts[0]
    flags: list[str] | None = None
    rest = ""
    if len(parts) == 2:
        rest, flags = _flags(parts[1])
        rest = rest.strip()
    name = cmd.lower()
    if name == "onbuild":
        sub = _node(rest, escape) if rest else None
        return _Node(cmd, flags, None, sub=sub)
    values, is_json = _arguments(name, rest, escape)
    return _Node(cmd, flags, values, is_json)


def _arguments(name: str, rest: str, escape: str) -> tuple[list[str] | None, bool]:
    if name in ("run", "cmd", "entrypoint", "shell"):
        return _maybe_json(rest)
    if name in ("add", "copy", "volume"):
        values, is_json = _json_array(rest)
        return (values, True) if is_json else (_split(rest), False)
    if name in ("from", "expose"):
        return _split(rest), False
    if name in ("env", "label"):
        return _name_values(rest, name.upper(), escape), False
    if name == "arg":
        return _words(rest, escape) or None, False
    if name == "healthcheck":
        return _health(rest)
    if name in ("maintainer", "stopsignal", "user", "workdir"):
        return ([rest] if rest else None), False
    return None, False  # an unknown instruction: reported by `_check`


def _split(rest: str) -> list[str] | None:
    return _WHITESPACE.split(rest) if rest else None


def _json_array(rest: str) -> tuple[list[str] | None, bool]:
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None, False
    try:
        value, _ = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        return None, False
    if not isinstance(value, list):
        return None, False
    if not all(isinstance(item, str) for item in value):
        raise ParseError(
            "dockerfile: when using JSON array syntax, arrays must be comprised of strings only"
        )
    return value or None, True


def _maybe_json(rest: str) -> tuple[list[str] | None, bool]:
    if not rest:
        return None, False
    values, is_json = _json_array(rest)
    return (values, True) if is_json else ([rest], False)


def _health(rest: str) -> tuple[list[str] | None, bool]:
    parts = re.split(r"\s+", rest, maxsplit=1)
    if not parts[0]:
        return None, False
    command, is_json = _maybe_json(parts[1] if len(parts) > 1 else "")
    return [parts[0], *(command or [])], is_json


def _name_values(rest: str, key: str, escape: str) -> list[str] | None:
    words = _words(rest, escape)
    if not words:
        return None
    if "=" not in words[0]:  # the old form: KEY name value
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ParseError(f"dockerfile: {key} must have two arguments")
        return parts
    values: list[str] = []
    for word in words:
        if "=" not in word:
            raise ParseError(
                f"dockerfile: Syntax error - can't find = in {word!r}. "
                "Must be of the form: name=value"
            )
        values += word.split("=", 1)
    return values


def _words(rest: str, escape: str) -> list[str]:
    """buildkit's parseWords: split on spaces outside quotes; quotes and escapes are kept."""
    words: list[str] = []
    word, quote, blank_ok, in_word = "", "", False, False
    index = 0
    while index < len(rest):
        char = rest[index]
        index += 1
        if not in_word and not quote:
            if char.isspace():
                continue
            in_word = True
        if quote:
            if char == quote:
                quote = ""
            elif char == escape and quote != "'" and index < len(rest):
                word += char
                char = rest[index]
                index += 1
            word += char
            continue
        if char.isspace():
            if blank_ok or word:
                words.append(word)
            word, blank_ok, in_word = "", False, False
            continue
        if char in "'\"":
            quote, blank_ok = char, True
        elif char == escape:
            if index == len(rest):
                continue
            word += char
            char = rest[index]
            index += 1
        word += char
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def _flags(line: str) -> tuple[str, list[str]]:
    """buildkit's extractBuilderFlags: leading `--name[=value]` words, then the rest."""
    words: list[str] = []
    index = 0
    while True:
        while index < len(line) and line[index].isspace():
            index += 1
        if not line.startswith("--", index):
            return line[index:], words
        end = index
        word, quote = "", ""
        while end < len(line) and (quote or not line[end].isspace()):
            char = line[end]
            end += 1
            if quote and char == quote:
                quote = ""
            elif not quote and char in "'\"":
                quote = char
            elif char == "\\" and end < len(line):
                word += line[end]
                end += 1
            else:
                word += char
        if word == "--":
            return line[end:], words
        words.append(word)
        index = end


def _check(node: _Node, line: int) -> None:
    """The errors buildkit's instructions.ParseInstruction raises that conftest reports."""
    checked = node.sub if node.sub is not None else node
    name = checked.cmd.lower()
    if name not in INSTRUCTIONS:
        raise ParseError(f"dockerfile: unknown instruction: {checked.cmd}", line, 1)
    if name == "onbuild" and node.sub is not None:
        raise ParseError(
            "dockerfile: chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", line, 1
        )
    count = len(checked.values or [])
    if name == "from" and count not in (1, 3):
        raise ParseError("dockerfile: FROM requires either one or three arguments", line, 1)
    if name in ("copy", "add") and count < 2:
        raise ParseError(f"dockerfile: {name.upper()} requires at least two arguments", line, 1)
    if name != "onbuild" and count == 0 and name in INSTRUCTIONS - {"run", "cmd", "entrypoint"}:
        raise ParseError(f"dockerfile: {name.upper()} requires at least one argument", line, 1)


def _skip_heredocs(reader: _Reader, node: _Node, line: str, start: int) -> None:
    """A heredoc's lines (`RUN <<EOF` ... `EOF`) belong to the instruction, not the file."""
    checked = node.sub if node.sub is not None else node
    if checked.cmd.lower() not in HEREDOC_INSTRUCTIONS or checked.json:
        return
    for word in line.split():
        match = _HEREDOC.match(word)
        if not match:
            continue
        terminator, chomp = match[4], match[2] == "-"
        while reader.at < len(reader.lines):
            body = reader.lines[reader.at]
            reader.at += 1
            if (body.lstrip("\t") if chomp else body) == terminator:
                break
        else:
            raise ParseError("dockerfile: unterminated heredoc", start, None)
