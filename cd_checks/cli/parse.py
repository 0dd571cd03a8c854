"""`cd-checks parse`: print what a policy sees for each file, as `conftest parse` does.

One file prints its input (a YAML stream: the list of its documents); several
print an object from each path to its input; `--combine` prints the combined
input, a list of `{"path", "contents"}`. The JSON is Go's (keys sorted, two
spaces; the combined form tab-indented), so it compares equal to conftest's.
Files are read as `validate` reads them: inside the repository only; `-` reads
standard input (YAML unless `--parser` says otherwise, as in conftest).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cd_checks.cli import examples
from cd_checks.errors import InputError


@click.command(
    epilog=examples(
        "cd-checks parse main.tf                  # the input a policy sees for main.tf",
        "cd-checks parse --parser ini app.conf    # read a file as another kind",
        "cd-checks parse --combine k8s/*.yaml     # the input of --combine policies",
    )
)
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--parser",
    "parser_name",
    metavar="NAME",
    help="Read every file with this parser (conftest's names: dockerfile, dotenv, hcl1, hcl2, "
    "ignore, ini, json, jsonc, properties, toml, xml, yaml). Default: by file name.",
)
@click.option("--combine", is_flag=True, help="Print the combined input of all the files.")
@click.pass_context
def parse(
    ctx: click.Context, files: tuple[str, ...], parser_name: str | None, combine: bool
) -> None:
    """Print the input a policy sees for FILE... (conftest parse)."""
    from cd_checks import parsers

    if parser_name is not None and parser_name not in parsers.PARSER_NAMES:
        raise InputError(
            f"--parser {parser_name}: unknown parser; choose from {', '.join(parsers.PARSER_NAMES)}"
        )
    root: Path = ctx.obj["root"]
    cwd: Path = ctx.obj["cwd"]
    documents = {given: _documents(root, cwd, given, parser_name) for given in files}
    if combine:
        click.echo(parsers.as_conftest_json(parsers.combined(documents), indent="\t"))
    elif len(documents) == 1:
        click.echo(parsers.as_conftest_json(_shown(next(iter(documents.values())))))
    else:
        shown = {path: _shown(found) for path, found in documents.items()}
        click.echo(parsers.as_conftest_json(shown))


def _shown(documents: list[Any]) -> Any:
    """A file's input: its one document, or the list of a multi-document stream."""
    return documents[0] if len(documents) == 1 else documents


def _documents(root: Path, cwd: Path, given: str, parser_name: str | None) -> list[Any]:
    from cd_checks import parsers

    name = parser_name or parsers.parser_for(given)
    if name is None:
        raise InputError(
            f"{given}: no parser for this file name; give one with --parser "
            f"({', '.join(parsers.PARSER_NAMES)})"
        )
    data = sys.stdin.buffer.read() if given == "-" else _read(root, cwd, given)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{given}: invalid UTF-8 at byte {exc.start}") from None
    if "\0" in text:
        raise InputError(f"{given}: binary file, not {name}")
    try:
        return parsers.parse_text(name, text, given)
    except parsers.ParseError as exc:
        where = f":{exc.line}" + (f":{exc.column}" if exc.column else "") if exc.line else ""
        raise InputError(f"{given}{where}: {exc.message}") from None


def _read(root: Path, cwd: Path, given: str) -> bytes:
    """The bytes of a file inside the repository, as `validate` reads files."""
    full = (cwd / given).resolve()
    try:
        full.relative_to(root.resolve())
    except ValueError:
        raise InputError(f"{given} is outside the repository {root}") from None
    if full.is_dir():
        raise InputError(f"{given}: a directory; name the files to parse")
    try:
        return full.read_bytes()
    except OSError as exc:
        raise InputError(f"{given}: cannot read: {exc.strerror or exc}") from None
