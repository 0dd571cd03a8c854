"""File names and messages made safe for terminals and CI job logs.

A pull request chooses its file names and much of the text of its findings, and
the reports land in terminals and job logs that act on what they read: a newline
starts a new log line, an ANSI escape rewrites the screen, and in GitHub Actions
a log line that starts with `::` (after leading white space) or holds `##[` anywhere
is a workflow command (`::add-mask::`, `::error::`, `##[stop-commands]`), not
text. `quote_path` prints a name as git does (C-style, in double quotes, when it
holds anything unusual) and also quotes the names CI logs would act on; the
`defuse_*` functions rewrite what is left in a rendered report so no line acts as
a command, each in its format's own escaping, so JSON and XML readers still get
the original text. Pure string functions; no format-specific layout.
"""

from __future__ import annotations

import re
import unicodedata

# git's own short escapes (quote.c, sq_lookup), the rest of the controls in octal.
_SHORT = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}
# Controls (C0, DEL, C1), format characters (bidi overrides, zero widths), line and
# paragraph separators, and surrogates (bytes of a name that is not UTF-8).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# The legacy `##[command]` form is honoured anywhere in a GitHub Actions log line.
LEGACY_COMMAND = "##["


def unsafe(char: str) -> bool:
    """A character a terminal or log may act on instead of showing."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _octal(char: str) -> str:
    try:  # a byte of an undecodable name comes back as itself
        raw = char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = char.encode("utf-8", "surrogatepass")
    return "".join(f"\\{byte:03o}" for byte in raw)


# In ASCII the unsafe characters are the controls (Cc): the fast paths below look for
# these with `re` and leave the per-character Unicode look-ups to other text.
_ASCII_CONTROL = re.compile("[\x00-\x1f\x7f]")
_ASCII_QUOTED = re.compile('[\x00-\x1f\x7f"\\\\]')


def _needs_quotes(name: str) -> bool:
    if name.isascii():  # no invisible characters: `##[` and a leading `::` appear as they are
        return (
            _ASCII_QUOTED.search(name) is not None
            or LEGACY_COMMAND in name
            or name.lstrip(" ").startswith("::")
        )
    return (
        any(char in _SHORT or unsafe(char) for char in name)
        or _defuse_line(name, colon="\\072", bracket="\\133") != name
    )


def quote_path(name: str) -> str:
    """`name` unchanged when plain, else `"..."` with C escapes, as `git ls-files` prints it.

    Beyond git, a name a CI log would read as a workflow command (`::x`, `a##[x]`) is
    quoted too, with the `[` of `##[` written `\\133`.
    """
    if not _needs_quotes(name):
        return name
    body = "".join(_SHORT.get(char) or (_octal(char) if unsafe(char) else char) for char in name)
    return '"' + _defuse_line(body, colon=":", bracket="\\133") + '"'


_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """`text` with the bytes of an undecodable name (lone surrogates, which no output
    can encode) as octal escapes, the rest untouched."""
    return _SURROGATE.sub(lambda found: _octal(found[0]), text)


def escape_controls(text: str, *, keep: str = "\n\t") -> str:
    """`text` with every unsafe character but those in `keep` as a C escape (`\\033`)."""
    if text.isascii():
        return _ASCII_CONTROL.sub(lambda found: _escaped(found[0], keep), text)
    return "".join(
        char if char in keep or not unsafe(char) else _SHORT.get(char) or _octal(char)
        for char in text
    )


def _escaped(char: str, keep: str) -> str:
    return char if char in keep else _SHORT.get(char) or _octal(char)


def defuse_text(text: str) -> str:
    """Plain text whose lines a GitHub Actions log shows instead of running as commands."""
    return "\n".join(
        _defuse_line(line, colon="\\072", bracket="\\133") if _may_act(line) else line
        for line in text.split("\n")
    )


def _may_act(line: str) -> bool:
    """False for a line `_defuse_line` leaves as it is: no `#`, and something visible
    before its first colon (most lines of a report start with a path)."""
    if "#" in line:
        return True
    colon = line.find(":")
    if colon < 0:
        return False
    before = line[:colon]
    return not (before.isascii() and before.isprintable() and before.strip(" "))


def defuse_xml(text: str) -> str:
    """XML with the same meaning, written so no line runs as a workflow command.

    Character references stand for the characters a log would act on, so an XML
    reader still gets the original text: `&#58;` for the `:` that starts a line,
    `&#91;` for the `[` of `##[`, and a reference for every unsafe character: a
    carriage return (a line break to the runner; an XML parser would make it a
    newline) and the invisible ones the runner's search may skip (see `_defuse_line`).
    """
    text = _NOT_PRINTABLE_ASCII.sub(
        lambda found: f"&#{ord(found[0])};" if found[0] != "\t" and unsafe(found[0]) else found[0],
        text,
    )
    return "\n".join(
        _defuse_line(line, colon="&#58;", bracket="&#91;") for line in text.split("\n")
    )


# The runner looks for `::` and `##[` with .NET's culture-aware StartsWith/IndexOf,
# which skip characters that weigh nothing in collation (format characters, variation
# selectors and other marks): `#\ufe0f#[` may count as `##[`. So they count as absent.
_INVISIBLE = r"\p{Mn}\p{Me}\p{Cf}\p{Cc}"
_LEGACY_SPREAD = rf"#[{_INVISIBLE}]*#[{_INVISIBLE}]*\["
_LEADING_COLONS = rf"^([\s{_INVISIBLE}]*):(?=[{_INVISIBLE}]*:)"


def _defuse_line(line: str, *, colon: str, bracket: str) -> str:
    import regex

    line = regex.sub(_LEGACY_SPREAD, lambda found: found[0][:-1] + bracket, line)
    return str(regex.sub(_LEADING_COLONS, lambda found: found[1] + colon, line, count=1))


# What json.dumps leaves unescaped beyond printable ASCII and its own newlines.
_NOT_PRINTABLE_ASCII = re.compile("[^\x20-\x7e\n]")


def defuse_json(text: str) -> str:
    """JSON text (from `json.dumps(..., ensure_ascii=False)`) with the same value, in which
    every unsafe character and the `[` of `##[` are `\\u` escapes (`[` is `\\u005b`).

    Outside strings JSON is ASCII punctuation, so every such character is inside a
    string, where an escape means the character itself.
    """
    escaped = text
    if not text.isascii() or "\x7f" in text:  # json.dumps escapes the other ASCII controls
        escaped = _NOT_PRINTABLE_ASCII.sub(
            lambda found: _json_escape(found[0]) if unsafe(found[0]) else found[0], text
        )
    if "#" not in escaped:
        return escaped
    import regex

    return str(regex.sub(_LEGACY_SPREAD, lambda found: found[0][:-1] + "\\u005b", escaped))


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
