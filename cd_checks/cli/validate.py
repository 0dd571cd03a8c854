"""`cd-checks validate`: parse flags into ValidateOptions, run, render, pick the exit code.

It also takes `conftest test`'s flags, inputs and outputs, so a conftest command
line works as it is: `-p/--policy`, `-d/--data`, `-n/--namespace`, `--parser`,
`--ignore`, `-` for standard input, `-o FORMAT` (a conftest format name; any other
value is the report file, as before), `--fail-on-warn`, `--no-fail`,
`--suppress-exceptions`, `--quiet`, `--no-color`, `--trace`, `--show-builtin-errors`.
conftest's settings come, as in conftest, from the flags, then `CONFTEST_*`
environment variables (the flag's name upper-cased, `-` as `_`; lists comma-separated),
then conftest.toml (`-c/--config-file`, default at the repository root), which only
fills what cd-checks.yml leaves unsaid.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from cd_checks.cli import examples
from cd_checks.errors import InputError
from cd_checks.findings import FAIL_ON
from cd_checks.report.escaping import escape_controls

FORMAT_NAMES = (
    "text",
    "json",
    "junit",
    "sarif",
    "github",
    "gitlab",
    "conftest-json",
    "tap",
    "table",
)
# conftest's -o/--output names and the format each is here (None: not available).
CONFTEST_OUTPUTS: dict[str, str | None] = {
    "stdout": "text",
    "json": "conftest-json",
    "tap": "tap",
    "table": "table",
    "junit": "junit",
    "github": "github",
    "sarif": "sarif",
    "azuredevops": None,
}
STDIN = "-"
_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


@click.command(
    epilog=examples(
        "cd-checks validate                              # the whole repository",
        "cd-checks validate --changed-since origin/main  # PR mode: the files the PR changed",
        "cd-checks validate -p policy -o table k8s/ # conftest's flags (- reads stdin)",
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
    "--config-file",
    "-c",
    "conftest_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="conftest's settings file (default: conftest.toml at the repository root, if any); "
    "it fills what cd-checks.yml leaves unsaid.",
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
    help="Report format (default text). conftest-json, tap and table are conftest's.",
)
@click.option(
    "--output",
    "-o",
    metavar="FILE|FORMAT",
    help="Write the report to FILE instead of standard output. A conftest format name "
    "(stdout, json, tap, table, junit, github, sarif) is that format, as in conftest; "
    "write a file of that name as ./NAME.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    help="Lowest severity that fails the run (exit 1). [default: error]",
)
@click.option(
    "--fail-on-warn", is_flag=True, help="conftest's: warnings fail too (--fail-on warning)."
)
@click.option(
    "--no-fail", is_flag=True, help="Exit 0 even when findings fail the run (conftest's)."
)
@click.option(
    "--policy",
    "-p",
    "policies",
    multiple=True,
    metavar="PATH",
    help="Rego policy directory or file; repeatable; replaces policy.paths.",
)
@click.option(
    "--data",
    "-d",
    "data",
    multiple=True,
    metavar="PATH",
    help="Data file or directory for the policies; repeatable; replaces policy.data.",
)
@click.option(
    "--combine/--no-combine",
    default=None,
    help="Give policies all files as one input list, as conftest --combine.",
)
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Rego namespace(s) to evaluate (default: main).",
)
@click.option("--all-namespaces", is_flag=True, help="Evaluate every Rego namespace.")
@click.option(
    "--parser",
    metavar="NAME",
    help="Read every file (and standard input) as this kind, as conftest --parser.",
)
@click.option(
    "--ignore",
    metavar="REGEX",
    help="Skip listed files whose path matches this regular expression (conftest's).",
)
@click.option(
    "--stdin-filename",
    metavar="NAME",
    help="The file name standard input (`-`) is checked as (default: -).",
)
@click.option(
    "--suppress-exceptions",
    is_flag=True,
    help="Do not list applied conftest exceptions (they are still counted).",
)
@click.option("--quiet", is_flag=True, help="Print nothing unless the run fails (conftest's).")
@click.option("--no-color", is_flag=True, help="No colour (same as --color never).")
@click.option("--trace", is_flag=True, help="Trace Rego evaluation (conftest's --trace).")
@click.option(
    "--show-builtin-errors",
    is_flag=True,
    help="Report a Rego builtin's failure instead of leaving its rule undefined.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="OPA's strict mode: unused variables, arguments and imports, deprecated built-ins "
    "refuse the policies (exit 2).",
)
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
def validate(ctx: click.Context, /, paths: tuple[str, ...], **flags: Any) -> int:
    """Run syntax, schema and policy checks on the repository (or PATHS in it; `-` is
    standard input).

    Exit 0 when nothing reaches --fail-on, 1 when something does, 2 on a
    usage, config or engine error. conftest's `test` flags work too; the
    CONFTEST_* variables and conftest.toml give them as conftest reads them.
    """
    from cd_checks import config as config_module
    from cd_checks.validate import parser_names, run

    root: Path = ctx.obj["root"]
    # PATHS are relative to where the command was started, as with git.
    started: Path = ctx.obj.get("cwd", root)
    settings = _Settings(ctx, flags, os.environ, {})
    conftest_file = settings.path("conftest_file", "config-file", started)
    toml = config_module.load_conftest(root, conftest_file)
    settings = _Settings(ctx, flags, os.environ, toml)
    parser = settings.value("parser", "parser")
    if parser is not None and parser not in parser_names():
        raise click.BadParameter(
            f"unknown parser {parser!r} (parsers: {', '.join(parser_names())})",
            param_hint="'--parser'",
        )
    output_format, output = _format_and_file(settings)
    given = [p for p in paths if p != ""]  # conftest skips a blank name
    if paths and not given:
        raise InputError("no files found: every file name given is blank")
    stdin = _read_stdin(given, settings.value("stdin_filename", None))
    options = _options(ctx, settings, root, started, given, stdin, toml)
    result = run(options, warn=_warn)
    result = replace(result, suppressed=settings.flag("suppress_exceptions", "suppress-exceptions"))
    if output_format in ("github", "sarif"):
        from cd_checks.report import github

        # Annotations and code scanning resolve paths from the checkout, which may
        # hold the repository root in a subdirectory (the action's working-directory).
        result = github.from_workspace(result, root, os.environ.get("GITHUB_WORKSPACE"))
    code = _exit_code(result, settings)
    if settings.flag("quiet", "quiet") and code == 0 and output is None:
        return 0  # conftest's --quiet: output only when the run fails (a report file stays)
    no_color = settings.flag("no_color", "no-color")
    if output_format != "text":  # --trace: only text shows it; other formats stay parseable
        for line in result.traces:
            click.echo(escape_controls(line.message), err=True)
    _render(ctx, result, output_format, output, color_off=no_color)
    return code


@dataclass(frozen=True)
class _Settings:
    """One setting from the flag, else its CONFTEST_* variable, else conftest.toml."""

    ctx: click.Context
    flags: Mapping[str, Any]
    env: Mapping[str, str]
    toml: Mapping[str, Any]

    def given(self, param: str) -> bool:
        return self.ctx.get_parameter_source(param) not in (ParameterSource.DEFAULT, None)

    def value(self, param: str, key: str | None, *, toml: bool = True) -> Any:
        """`toml=False` for the policy settings conftest.toml gives below cd-checks.yml
        (`validate.run` applies those)."""
        if self.given(param) or key is None:
            return self.flags[param]
        variable = "CONFTEST_" + key.upper().replace("-", "_")
        if self.env.get(variable):
            return self.env[variable]
        return self.toml.get(key, self.flags[param]) if toml else self.flags[param]

    def flag(self, param: str, key: str, *, toml: bool = True) -> bool:
        found = self.value(param, key, toml=toml)
        if not isinstance(found, str):
            return bool(found)
        if found in _TRUE or found in _FALSE:
            return found in _TRUE
        variable = "CONFTEST_" + key.upper().replace("-", "_")
        raise InputError(f"{variable}={found!r}: not true or false")

    def items(self, param: str, key: str) -> tuple[str, ...]:
        """A list flag: the flag's values, else the variable's comma-separated ones (the
        conftest.toml list is applied under cd-checks.yml, by `validate.run`)."""
        if self.given(param):
            return tuple(self.flags[param])
        variable = "CONFTEST_" + key.upper().replace("-", "_")
        return tuple(v for v in self.env.get(variable, "").split(",") if v)

    def path(self, param: str, key: str, started: Path) -> Path | None:
        found = self.value(param, key)
        return started / found if found else None


def _options(
    ctx: click.Context,
    settings: _Settings,
    root: Path,
    started: Path,
    given: list[str],
    stdin: bytes | None,
    toml: Mapping[str, Any],
) -> Any:
    from cd_checks.validate import ValidateOptions

    flags = settings.flags
    no_cache = bool(flags["no_cache"])
    combine = settings.value("combine", "combine", toml=False)
    return ValidateOptions(
        root=root,
        paths=tuple(str(started / p) for p in given if p != STDIN),
        config_path=flags["config_path"],
        changed_since=flags["changed_since"],
        combine=None if combine is None else settings.flag("combine", "combine", toml=False),
        namespaces=settings.items("namespaces", "namespace"),
        all_namespaces=settings.flag("all_namespaces", "all-namespaces", toml=False),
        engine=flags["engine"],
        rego_version=settings.value("rego_version", "rego-version", toml=False),
        builtin=flags["builtin"],
        use_cache=not no_cache,
        cache_key=None if no_cache else _cache_key(),
        jobs=flags["jobs"],
        policies=tuple(str(started / p) for p in settings.items("policies", "policy")),
        data=tuple(str(started / p) for p in settings.items("data", "data")),
        parser=settings.value("parser", "parser"),
        ignore=settings.value("ignore", "ignore"),
        stdin=stdin,
        stdin_filename=flags["stdin_filename"] or STDIN,
        trace=settings.flag("trace", "trace"),
        show_builtin_errors=settings.flag("show_builtin_errors", "show-builtin-errors"),
        strict=settings.flag("strict", "strict"),
        conftest=toml,
    )


def _format_and_file(settings: _Settings) -> tuple[str, Path | None]:
    """The report format and file: --format, or -o/--output naming a conftest format
    (as conftest's -o does; CONFTEST_OUTPUT and conftest.toml's output too), else text;
    any other -o value is the file to write."""
    chosen: str | None = settings.flags["output_format"]
    output = settings.flags["output"]
    if output is None and chosen is None:  # a variable or conftest.toml names a format
        output = settings.value("output", "output")
        if output is not None and output not in CONFTEST_OUTPUTS:
            raise InputError(
                f"output {output!r} (CONFTEST_OUTPUT or conftest.toml): not a conftest format "
                f"({', '.join(CONFTEST_OUTPUTS)})"
            )
    if output is None or output not in CONFTEST_OUTPUTS:
        return chosen or "text", Path(output) if output else None
    named = CONFTEST_OUTPUTS[output]
    if named is None:
        raise InputError(f"-o {output}: conftest's {output} format is not available here")
    if chosen is not None and chosen != named:
        raise click.UsageError(f"--format {chosen} and -o {output} ({named}) disagree")
    return named, None


def _read_stdin(given: list[str], name: str | None) -> bytes | None:
    if STDIN not in given:
        if name is not None:
            raise click.UsageError("--stdin-filename names standard input: give `-` too")
        return None
    return sys.stdin.buffer.read()


def _exit_code(result: Any, settings: _Settings) -> int:
    fail_on = settings.flags["fail_on"] or "error"
    if settings.given("fail_on"):  # the flag beats CONFTEST_FAIL_ON_WARN and conftest.toml
        if settings.given("fail_on_warn") and fail_on != "warning":
            raise click.UsageError(f"--fail-on-warn and --fail-on {fail_on} disagree")
    elif settings.flag("fail_on_warn", "fail-on-warn"):
        fail_on = "warning"
    if settings.flag("no_fail", "no-fail"):
        return 0
    return 1 if result.failed(fail_on) else 0


def _render(
    ctx: click.Context, result: Any, output_format: str, output: Path | None, *, color_off: bool
) -> None:
    from cd_checks import report as report_formats
    from cd_checks.cli import colour_for

    color = output is None and not color_off and colour_for(sys.stdout, ctx)
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
