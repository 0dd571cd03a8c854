"""YAML, JSON (and NDJSON), JSONC, TOML and XML, read within cd-checks' bounds.

YAML, JSON and TOML go through `cd_checks.bounded`, the one bounded reader the
syntax checks use too. JSONC is JSON with `//` and `/* */` comments and trailing
commas (conftest's muzzammil.xyz/jsonc): they are blanked out, keeping every
line and column, and the rest is read as JSON. XML takes goxml2json's shape,
which conftest uses: `{"root": {...}}`, attributes as `-name`, an element's text
as `#content` beside attributes and children (a bare string when it has
neither), repeated children as a list, every value a string.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import yaml

from cd_checks import bounded
from cd_checks.documents import to_json_compatible
from cd_checks.parsers import ParseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def parse_yaml(text: str) -> list[Any]:
    """One value per document; an empty document is null (conftest evaluates it as such)."""
    try:
        documents = bounded.read_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ParseError(f"yaml: {exc.problem or exc}", line, column) from None
    except yaml.YAMLError as exc:
        problem = bounded.reader_problem(exc, text)
        raise ParseError(f"yaml: {problem.message}", problem.line, problem.column) from None
    except bounded.ParseProblem as exc:
        raise ParseError(f"yaml: {exc.message}", exc.line, exc.column) from None
    for document in documents:
        if document.problem is not None:
            problem = document.problem
            raise ParseError(f"yaml: {problem.message}", problem.line, problem.column)
    return [document.value for document in documents] or [None]


def parse_json(text: str) -> list[Any]:
    """One JSON value; several values one after another (NDJSON) are one document each."""
    try:
        return [_json_value(text)]
    except ParseError as single:
        if "Extra data" not in single.message:
            raise
    return [_json_value(line) for line in text.splitlines() if line.strip()]


def _json_value(text: str) -> Any:
    try:
        return bounded.load_json(text)[0]
    except json.JSONDecodeError as exc:
        raise ParseError(f"json: {exc.msg}", exc.lineno, exc.colno) from None
    except bounded.ParseProblem as exc:
        raise ParseError(f"json: {exc.message}", exc.line, exc.column) from None


# A string, a comment, or a comma that only closes (trailing): the tokens JSONC adds.
_JSONC = re.compile(r'"(?:[^"\\\n]|\\.)*"|//[^\n]*|/\*.*?\*/|,(?=\s*[\]}])', re.DOTALL)


def parse_jsonc(text: str) -> list[Any]:
    def blank(match: re.Match[str]) -> str:
        token = match.group()
        return token if token.startswith('"') else re.sub(r"[^\n]", " ", token)

    try:
        return [_json_value(_JSONC.sub(blank, text))]
    except ParseError as exc:
        raise ParseError("jsonc" + exc.message.removeprefix("json"), exc.line, exc.column) from None


_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_toml(text: str) -> list[Any]:
    try:
        return [to_json_compatible(bounded.load_toml(text))]
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        line, column = (int(match[1]), int(match[2])) if match else (None, None)
        raise ParseError(
            f"toml: {_TOML_POSITION.sub('', str(exc)).strip()}", line, column
        ) from None
    except bounded.ParseProblem as exc:
        raise ParseError(f"toml: {exc.message}", exc.line, exc.column) from None


def parse_xml(text: str) -> list[Any]:
    from cd_checks.parsers import xmldoc

    return [xmldoc.parse(text)]
