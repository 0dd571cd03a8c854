"""`cd-checks validate`: parse flags into ValidateOptions, run, render, pick the exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from cd_checks.cli import examples
from cd_checks.errors import InputError
from cd_checks.findings import FAIL_ON

FORMAT_NAMES = ("text", "json", "junit", "sarif", "github", "gitlab")


@click.command(
    epilog=examples(
        "cd-checks validate                              # the whole repository",
        "cd-checks validate --changed-since origin/main  # PR mode: the files the PR changed",
        "cd-checks validate nginx/ --format sarif -o cd-checks.sarif",
    )
)
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: cd-checks.yml at the repository root).",
)
@click.option(
    "--changed-since",
    metavar="REF",
    help="PR mode: only files changed since the merge-base with REF.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMAT_NAMES),
    default="text",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to FILE instead of standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="error",
    show_default=True,
    help="Lowest severity that fails the run (exit 1).",
)
@click.option(
    "--combine/--no-combine",
    default=None,
    help="Give policies all files as one input list, as conftest --combine.",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Rego namespace(s) to evaluate (default: main).",
)
@click.option("--all-namespaces", is_flag=True, help="Evaluate every Rego namespace.")
@click.option(
    "--engine",
    type=click.Choice(("auto", "embedded", "conftest")),
    help="Rego engine (default auto: conftest when on PATH, else embedded).",
)
@click.option(
    "--rego-version",
    type=click.Choice(("v0", "v1")),
    help="Rego syntax version of the policies (default v1).",
)
@click.option(
    "--builtin",
    multiple=True,
    metavar="SET",
    help="Turn on a shipped policy set (nginx, monitoring, patches, agents, ansible, pipeline).",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Check every file again, ignoring the result cache (.cd-checks/cache; its entries "
    "are signed with CD_CHECKS_CACHE_KEY, else a per-user key in ~/.local/state/cd-checks).",
)
@click.option(
    "--jobs", "-j", type=click.IntRange(min=1), help="Worker processes (default: CPU count)."
)
@click.pass_context
def validate(
    ctx: click.Context,
    paths: tuple[str, ...],
    config_path: Path | None,
    changed_since: str | None,
    output_format: str,
    output: Path | None,
    fail_on: str,
    combine: bool | None,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    engine: str | None,
    rego_version: str | None,
    builtin: tuple[str, ...],
    no_cache: bool,
    jobs: int | None,
) -> int:
    """Run syntax, schema and policy checks on the repository (or PATHS in it).

    Exit 0 when nothing reaches --fail-on, 1 when something does, 2 on a
    usage, config or engine error.
    """
    from cd_checks import report as report_formats
    from cd_checks.cli import colour_for
    from cd_checks.validate import ValidateOptions, run

    root: Path = ctx.obj["root"]
    # PATHS are relative to where the command was started, as with git.
    started: Path = ctx.obj.get("cwd", root)
    options = ValidateOptions(
        root=root,
        paths=tuple(str(started / p) for p in paths),
        config_path=config_path,
        changed_since=changed_since,
        combine=combine,
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        engine=engine,
        rego_version=rego_version,
        builtin=builtin,
        use_cache=not no_cache,
        cache_key=None if no_cache else _cache_key(),
        jobs=jobs,
    )
    result = run(options, warn=_warn)
    if output_format in ("github", "sarif"):
        from cd_checks.report import github

        # Annotations and code scanning resolve paths from the checkout, which may
        # hold the repository root in a subdirectory (the action's working-directory).
        result = github.from_workspace(result, root, os.environ.get("GITHUB_WORKSPACE"))
    color = output is None and colour_for(sys.stdout, ctx)
    # Text and JSON are written as they are rendered: tens of thousands of findings
    # never sit in memory as one string.
    stream = report_formats.STREAMS.get(output_format)
    pieces = (
        stream(result, color=color)
        if stream is not None
        else iter([report_formats.FORMATS[output_format](result, color=color)])
    )
    if output is None:
        _echo(pieces)
    else:
        _write(output, pieces, "w")
        click.echo(
            f"cd-checks: {result.errors} errors, {result.warnings} warnings "
            f"in {result.files} files; report written to {output}",
            err=True,
        )
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if output_format == "github" and summary_file:
        from cd_checks.report import github

        _write(Path(summary_file), [github.step_summary(result)], "a")
    return 1 if result.failed(fail_on) else 0  # type: ignore[arg-type]


def _cache_key() -> bytes | None:
    """The result cache's key from the environment or this user's key file; None: no cache."""
    from cd_checks import result_cache

    try:
        return result_cache.secret(os.environ)
    except result_cache.Unavailable as exc:
        _warn(str(exc))
        return None


def _warn(message: str) -> None:
    click.echo(f"cd-checks: warning: {message}", err=True)


def _echo(pieces: Iterator[str]) -> None:
    """Each piece to standard output as it comes, the whole ending with a newline."""
    last = ""
    for piece in pieces:
        click.echo(piece, nl=False)
        last = piece or last
    if not last.endswith("\n"):
        click.echo("")


def _write(path: Path, pieces: Iterable[str], mode: str) -> None:
    try:
        with path.open(mode, encoding="utf-8") as handle:
            handle.writelines(pieces)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
