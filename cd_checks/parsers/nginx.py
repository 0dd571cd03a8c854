"""nginx configuration in conftest's shape, read with crossplane.

conftest's nginx parser (gonginx) gives `{"directives": [{"name", "parameters",
"block": {"directives": [...]}}]}`; cd-checks adds each directive's `line` so a
finding can point at it. The text is read alone: no include is followed and no
directive is checked against its context (a policy unit test parses fragments
such as `server { ... }`), only the syntax.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from cd_checks.parsers import ParseError


def parse(text: str) -> list[Any]:
    # gonginx checks neither a directive's context nor its arguments: crossplane neither.
    config = parse_text(text, check_ctx=False, check_args=False)
    if config["errors"]:
        error = config["errors"][0]
        # crossplane appends " in /tmp/...:LINE": the temporary file means nothing here.
        message = re.sub(r" in \S+:\d+$", "", str(error["error"]))
        # crossplane gives an empty message for some errors (a last directive without `;`).
        raise ParseError(f"nginx: {message or 'syntax error'}", error.get("line"))
    return [{"directives": conftest_shape(config["parsed"])}]


def parse_file(path: Path, *, check_ctx: bool, check_args: bool = True) -> dict[str, Any]:
    """crossplane's `{errors, parsed}` for the one file at `path` (no include followed)."""
    import crossplane

    payload = crossplane.parse(
        str(path), single=True, check_ctx=check_ctx, check_args=check_args, comments=False
    )
    config: dict[str, Any] = payload["config"][0] if payload["config"] else {}
    return {"errors": config.get("errors", []), "parsed": config.get("parsed", [])}


def parse_text(text: str, *, check_ctx: bool, check_args: bool = True) -> dict[str, Any]:
    """`parse_file` for a text (crossplane reads only files: it goes to a temporary one)."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf", encoding="utf-8") as written:
        written.write(text)
        written.flush()
        return parse_file(Path(written.name), check_ctx=check_ctx, check_args=check_args)


def conftest_shape(directives: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """crossplane's {directive, args, block} to conftest's {name, parameters, block}."""
    shaped = []
    for item in directives:
        node: dict[str, Any] = {
            "name": item["directive"],
            "parameters": item["args"],
            "line": item["line"],
        }
        if "block" in item:
            node["block"] = {"directives": conftest_shape(item["block"])}
        shaped.append(node)
    return shaped
