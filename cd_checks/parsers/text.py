"""Line-oriented kinds: INI, dotenv, Java properties and ignore files.

INI is read the way conftest reads it (go-ini with its defaults, then typed):
keys before the first section belong to `DEFAULT`, which conftest leaves out,
as it leaves out an explicit `[DEFAULT]` (never merged into other sections);
section names and keys keep their case; `;` and `#` start comments, also after
a value; surrounding quotes are removed; a value that Go's ParseFloat reads is a
number, one ParseBool reads (`true`, `F`, `TRUE`, `t`, ...) a boolean, the rest
strings. One deliberate difference: a line indented deeper than its key continues
the key's value (`install_requires =` then one package a line, as tox.ini,
setup.cfg and Python's configparser write them; go-ini's
AllowPythonMultilineValues), where conftest refuses the whole file. dotenv uses
python-dotenv's parser; properties javaproperties, with `${key}` expanded from
the file's own keys; ignore files give conftest's `[{Kind, Value, Original}]`
entries.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

from cd_checks.parsers import ParseError

# -- INI --------------------------------------------------------------------------------

DEFAULT_SECTION = "DEFAULT"
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+")
_BOOLEANS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}


def parse_ini(text: str) -> list[Any]:
    sections: dict[str, dict[str, str]] = {DEFAULT_SECTION: {}}
    current = DEFAULT_SECTION
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number].lstrip()
        number += 1
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            current = _section_name(line, number)
            sections.setdefault(current, {})
            continue
        indent = len(lines[number - 1]) - len(line)
        key, rest = _key(line, number)
        value, number = _ini_value(rest, lines, number)
        value, number = _python_continuation(value, indent, lines, number)
        sections[current][key] = value
    return [
        {
            name: {k: ini_typed(v) for k, v in keys.items()}
            for name, keys in sections.items()
            if name != DEFAULT_SECTION
        }
    ]


def _python_continuation(value: str, indent: int, lines: list[str], number: int) -> tuple[str, int]:
    """Lines indented deeper than the key (comments and blank lines aside) add to its value."""
    parts = [value] if value else []
    while number < len(lines):
        line = lines[number]
        stripped = line.strip()
        if not stripped or len(line) - len(line.lstrip()) <= indent or stripped[0] in "#;":
            break
        parts.append(stripped)
        number += 1
    return "\n".join(parts), number


def _section_name(line: str, number: int) -> str:
    close = line.rfind("]")
    if close < 0:
        raise ParseError(f"ini: unclosed section: {line}", number, 1)
    if close == 1:
        raise ParseError("ini: empty section name", number, 1)
    return line[1:close]


def _key(line: str, number: int) -> tuple[str, str]:
    quote = '"""' if line.startswith('"""') and len(line) > 6 else line[0] * (line[0] in '"`')
    if quote:
        end = line.find(quote, len(quote))
        if end < 0:
            raise ParseError(f"ini: missing closing key quote: {line}", number, 1)
        delimiter = _delimiter(line, end + len(quote))
        if delimiter < 0:
            raise ParseError(f"ini: key-value delimiter not found: {line}", number, 1)
        return line[len(quote) : end].strip(), line[delimiter + 1 :]
    delimiter = _delimiter(line, 0)
    if delimiter < 0:
        raise ParseError(f"ini: key-value delimiter not found: {line}", number, 1)
    if delimiter == 0:
        raise ParseError(f"ini: empty key name: {line}", number, 1)
    return line[:delimiter].strip(), line[delimiter + 1 :]


def _delimiter(line: str, start: int) -> int:
    found = [i for i in (line.find("=", start), line.find(":", start)) if i >= 0]
    return min(found) if found else -1


def _ini_value(rest: str, lines: list[str], number: int) -> tuple[str, int]:
    """go-ini's readValue with its default options; returns the line number reached."""
    value = rest.lstrip()
    if not value:
        return "", number
    quote = '"""' if value.startswith('"""') and len(value) > 3 else "`" * (value[0] == "`")
    if quote:
        end = value.rfind(quote, len(quote))
        if end >= len(quote):
            return value[len(quote) : end], number
        return _multiline(value[len(quote) :], quote, lines, number)
    value = value.strip()
    while value.endswith("\\") and number <= len(lines):  # a continuation line
        if number == len(lines):
            return value[:-1], number
        value = value[:-1] + lines[number].strip()
        number += 1
    comment = min((i for i in (value.find("#"), value.find(";")) if i >= 0), default=-1)
    if comment >= 0:
        value = value[:comment].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value, number


def _multiline(first: str, quote: str, lines: list[str], number: int) -> tuple[str, int]:
    parts = [first]
    while number < len(lines):
        line = lines[number]
        number += 1
        end = line.find(quote)
        if end >= 0:
            return "\n".join([*parts, line[:end]]), number
        parts.append(line)
    raise ParseError(f"ini: missing closing {quote} of a value", number, None)


def ini_typed(value: str) -> Any:
    """A number when Go's strconv.ParseFloat takes it (not NaN or Inf), else a boolean
    when strconv.ParseBool does, else the string, as conftest converts INI values."""
    if _FLOAT.fullmatch(value) or _HEX_FLOAT.fullmatch(value):
        number = float.fromhex(value) if "x" in value.lower() else float(value)
        if math.isfinite(number):
            return int(number) if number.is_integer() and abs(number) < 1e21 else number
    return _BOOLEANS.get(value, value)


# -- dotenv -----------------------------------------------------------------------------


def parse_dotenv(text: str) -> list[Any]:
    """`KEY=value` pairs as strings; `${KEY}` takes an earlier key's value (never the
    environment of the machine that runs the check); a line that is no assignment is
    an error, as gotenv's strict parse (conftest) makes it."""
    from dotenv.parser import parse_stream
    from dotenv.variables import parse_variables

    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            raise ParseError(
                f"dotenv: cannot parse line {line}: {binding.original.string.strip()!r}", line, 1
            )
        if binding.key is None:
            continue
        raw = binding.value or ""
        quoted_single = binding.original.string.split("=", 1)[-1].lstrip().startswith("'")
        if quoted_single:
            values[binding.key] = raw
        else:
            values[binding.key] = "".join(atom.resolve(values) for atom in parse_variables(raw))
    return [values]


# -- properties -------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\{([^}]*)\}")


def parse_properties(text: str) -> list[Any]:
    """Java properties as strings; `${key}` expands to another key's value, as
    magiconair/properties (conftest) does; a key the file lacks expands to "" (conftest
    would read the environment, which a check must not depend on); a loop is an error."""
    import javaproperties

    try:
        raw = javaproperties.loads(text)
    except (ValueError, javaproperties.InvalidUEscapeError) as exc:
        raise ParseError(f"properties: {exc}") from None
    return [{key: _expand(value, raw, (key,)) for key, value in raw.items()}]


def _expand(value: str, raw: dict[str, str], seen: tuple[str, ...]) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match[1]
        if key in seen:
            raise ParseError(f"properties: circular reference to {key!r}")
        return _expand(raw.get(key, ""), raw, (*seen, key))

    return _REFERENCE.sub(replace, value)


# -- ignore files -----------------------------------------------------------------------


def parse_ignore(text: str) -> list[Any]:
    """One entry per line (a last empty line too), as go-ignore gives them to conftest."""
    return [[_ignore_entry(line) for line in text.split("\n")]]


def _ignore_entry(line: str) -> dict[str, str]:
    stripped = _trim_right_spaces(line)
    if stripped == "":
        return {"Kind": "Empty", "Value": line, "Original": line}
    if line.startswith("#"):
        return {"Kind": "Comment", "Value": stripped[1:].strip(), "Original": line}
    if line.startswith("!"):
        return {"Kind": "NegatedPath", "Value": _unescape(stripped[1:]), "Original": line}
    return {"Kind": "Path", "Value": _unescape(stripped), "Original": line}


def _trim_right_spaces(line: str) -> str:
    """Trailing spaces go, unless a backslash escapes the last one."""
    stop = len(line.rstrip(" "))
    if stop and line[stop - 1] == "\\" and stop < len(line):
        stop += 1
    return line[:stop]


def _unescape(value: str) -> str:
    return re.sub(r"\\(\\?)", r"\1", value)
