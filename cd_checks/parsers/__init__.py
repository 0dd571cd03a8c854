"""Every input kind conftest reads, parsed into the shape conftest hands to policies.

`parse_text(parser, text)` returns the documents a policy sees for one file
(one per YAML document, one for most other kinds), as JSON-compatible values;
`parser_for(path)` is conftest's choice of parser by file name and extension.
The names are conftest's `--parser` names. Each parser lives in its own small
module here and is listed once in `PARSERS`. Bad input raises `ParseError`
with the line and column where known; no library exception leaves this
package. This package does no I/O: callers read the bytes and decide which
files may be read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from cd_checks.errors import InputError


class ParseError(InputError):
    """A text the chosen parser refuses: where (when known) and why, in one line."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


class NotRead(ParseError):
    """A text that may be well formed but is not read, for safety (an XML entity
    declaration): in a repository scan a warning, never an error a valid file fails."""


def _parsers() -> dict[str, Callable[[str], list[Any]]]:
    # Imported here, not at module level: `parser_for` and `PARSER_NAMES` stay cheap
    # for the CLI, and each library loads only when its kind is parsed.
    from cd_checks.parsers import dockerfile, edn, hcl, nginx, structured
    from cd_checks.parsers import text as line_kinds

    return {
        "dockerfile": dockerfile.parse,
        "dotenv": line_kinds.parse_dotenv,
        "edn": edn.parse,
        "hcl1": hcl.parse_hcl1,
        "hcl2": hcl.parse_hcl2,
        "ignore": line_kinds.parse_ignore,
        "ini": line_kinds.parse_ini,
        "json": structured.parse_json,
        "jsonc": structured.parse_jsonc,
        "nginx": nginx.parse,
        "properties": line_kinds.parse_properties,
        "toml": structured.parse_toml,
        "xml": structured.parse_xml,
        "yaml": structured.parse_yaml,
    }


# conftest's `--parser` names that cd-checks reads (conftest also has cue, cyclonedx,
# hocon, jsonnet, spdx, textproto and vcl; see the README's "Coming from conftest").
PARSER_NAMES: tuple[str, ...] = (
    "dockerfile",
    "dotenv",
    "edn",
    "hcl1",
    "hcl2",
    "ignore",
    "ini",
    "json",
    "jsonc",
    "nginx",
    "properties",
    "toml",
    "xml",
    "yaml",
)


def parse_text(parser: str, text: str, path: str = "") -> list[Any]:
    """The documents a policy sees for `text` read as `parser` (`path` names it in errors)."""
    if parser not in PARSER_NAMES:
        raise ParseError(f"unknown parser {parser!r}: choose from {', '.join(PARSER_NAMES)}")
    text = text.removeprefix("\ufeff")
    try:
        return _parsers()[parser](text)
    except RecursionError:
        raise ParseError(f"{parser}: nesting too deep to parse") from None


def parser_for(path: str) -> str | None:
    """The parser conftest picks for `path` by its name, or None when it has none.

    As conftest: `-` (stdin) and a name without an extension are YAML; Dockerfile,
    Dockerfile.*, *.dockerfile; *.tf, *.tfvars, *.hcl are HCL2; .env, .env.*, *.env
    are dotenv; .gitignore and .dockerignore are ignore files; *.conf is nginx; .yml is YAML and
    .ndjson JSON (one document per line); any other extension that names a parser
    (`.toml`, `.ini`, `.xml`, `.properties`, `.jsonc`, ...) picks that parser.
    """
    if path == "-":
        return "yaml"
    name = PurePosixPath(path.replace("\\", "/")).name.lower()
    extension = _extension(name)
    if name == "dockerfile" or name.startswith("dockerfile.") or extension == "dockerfile":
        return "dockerfile"
    if extension in ("", "yml", "yaml"):
        return "yaml"
    if extension == "ndjson":
        return "json"
    if extension in ("hcl", "tf", "tfvars"):
        return "hcl2"
    if extension in ("gitignore", "dockerignore"):
        return "ignore"
    if extension == "conf":
        return "nginx"
    if name == ".env" or name.startswith(".env.") or extension == "env":
        return "dotenv"
    return extension if extension in PARSER_NAMES else None


def _extension(name: str) -> str:
    """Go's filepath.Ext without the dot: `.gitignore` has the extension `gitignore`."""
    dot = name.rfind(".")
    return name[dot + 1 :] if dot >= 0 else ""


def combined(documents: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """conftest's combined input: `{"path", "contents"}` per document, sorted by path."""
    return [
        {"path": path, "contents": document}
        for path in sorted(documents)
        for document in documents[path]
    ]


def as_conftest_json(value: Any, indent: str = "  ") -> str:
    """JSON as Go's encoding/json writes it for conftest: keys sorted, `<`, `>` and `&`
    escaped, non-ASCII as it is, integral numbers without a fraction."""
    text = json.dumps(_go_numbers(value), indent=indent, sort_keys=True, ensure_ascii=False)
    # Outside strings JSON has none of these characters: replacing them escapes only strings.
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _go_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _go_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_go_numbers(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value
