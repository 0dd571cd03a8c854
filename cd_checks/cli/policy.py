"""`cd-checks policy ...`: Rego policy tools; today `policy test`, the Rego unit-test runner.

Parses options (conftest verify's too: -p/--policy, -d/--data, -o/--output,
--show-builtin-errors, --trace, --quiet, --no-color, --junit-hide-message),
fills defaults from cd-checks.yml (`policy.paths`, `policy.data`,
`policy.rego_version`), calls `cd_checks.rego.run_tests` and renders the
results: cd-checks' `--format text|json`, or conftest verify's own formats
(`cd_checks.rego.verify_output`). Exit 0 when every test passes, 1 when one
fails; a `PolicyError` goes up to `main()`, which prints it (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import click

from cd_checks import config as config_module
from cd_checks.cli import examples
from cd_checks.rego import (
    PolicySource,
    TestResult,
    boolean_rule_warnings,
    run_tests,
    verify_output,
)
from cd_checks.rego.model import RegoVersion


@dataclass(frozen=True)
class TestOptions:
    """`policy test` after defaults are applied."""

    __test__ = False  # not a pytest class

    source: PolicySource
    run: str | None
    output_format: str  # "text", "json", or conftest's "conftest:<output>"
    show_builtin_errors: bool = False
    trace: bool = False
    quiet: bool = False
    junit_hide_message: bool = False


@click.group(
    "policy",
    epilog=examples(
        "cd-checks policy test              # the Rego unit tests under policy/",
        "cd-checks policy test --run nginx  # only tests whose namespace.name matches",
    ),
)
def policy() -> None:
    """Rego policy tools."""


@policy.command(
    "test",
    epilog=examples(
        "cd-checks policy test                          # policy.paths, else policy/",
        "cd-checks policy test policy/ --run 'deny|port'",
        "cd-checks policy test -p policy -d data/ -o junit  # conftest verify's flags",
    ),
)
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--policy",
    "-p",
    "policies",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy directory or .rego file, as conftest's -p; repeatable (adds to DIR...).",
)
@click.option(
    "--rego-version",
    type=click.Choice(["v0", "v1"]),
    default=None,
    help="Rego syntax of the policies (default: the config's, else v1).",
)
@click.option("--run", "run", metavar="REGEX", help="Only tests whose namespace.name matches.")
@click.option(
    "--data",
    "-d",
    "data",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Data documents (.json/.yaml) merged into `data`; repeatable.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="cd-checks' report (default text: each test with file:line and why it failed).",
)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Choice(verify_output.OUTPUTS),
    default=None,
    help="conftest verify's output instead: stdout, json, tap, table or junit.",
)
@click.option(
    "--show-builtin-errors",
    is_flag=True,
    help="Show a builtin's error (e.g. parse_config_file of a missing file) as the reason.",
)
@click.option(
    "--trace",
    is_flag=True,
    help="Show the rules and lines each test evaluated, and what it printed.",
)
@click.option("--quiet", is_flag=True, help="Print nothing when every test passes.")
@click.option("--no-color", is_flag=True, help="Accepted for conftest; output has no color.")
@click.option(
    "--junit-hide-message", is_flag=True, help="-o junit: test names without the message."
)
@click.option(
    "--report",
    "unsupported_report",
    metavar="full|notes|fails",
    default=None,
    hidden=True,
    help="conftest's; not available (needs OPA's evaluation trace).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="OPA's strict mode: unused variables, arguments and imports, deprecated built-ins "
    "refuse the policies and their tests (exit 2).",
)
@click.option("--capabilities", "unsupported_capabilities", default=None, hidden=True)
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=None, help="cd-checks.yml"
)
@click.pass_context
def test_command(
    ctx: click.Context,
    dirs: tuple[Path, ...],
    policies: tuple[Path, ...],
    rego_version: str | None,
    run: str | None,
    data: tuple[Path, ...],
    output_format: str | None,
    output: str | None,
    show_builtin_errors: bool,
    trace: bool,
    quiet: bool,
    no_color: bool,
    junit_hide_message: bool,
    unsupported_report: str | None,
    strict: bool,
    unsupported_capabilities: str | None,
    config_path: Path | None,
) -> int:
    """Run the Rego unit tests (rules named test_*) in DIR... (default: config, else policy/)."""
    del no_color  # nothing is colored
    _refuse_unsupported(unsupported_report, unsupported_capabilities)
    root: Path = ctx.obj["root"] if ctx.obj else Path.cwd()
    chosen = _chosen_format(output_format, output)
    options = _options(root, (*dirs, *policies), rego_version, run, data, chosen, config_path)
    options = replace(
        options,
        show_builtin_errors=show_builtin_errors,
        trace=trace,
        quiet=quiet,
        junit_hide_message=junit_hide_message,
    )
    if strict:
        from cd_checks.rego import strict as strict_mode

        strict_mode.enforce(options.source, tests=True)
    for line in boolean_rule_warnings(options.source):  # conftest counts them as passed
        click.echo(f"cd-checks: warning: {line}", err=True)
    results = run_tests(
        options.source, run=options.run, show_builtin_errors=show_builtin_errors, trace=trace
    )
    failed = any(not (r.passed or r.skipped) for r in results)
    if not (options.quiet and not failed):
        click.echo(_render(options, results), nl=False)
    return 1 if failed else 0


# conftest verify's flags the embedded engine cannot honour, and why: named, never ignored.
UNSUPPORTED = {
    "--report": "it needs OPA's evaluation trace, which regorus does not keep; use --trace",
    "--capabilities": "regorus cannot restrict its builtins by an OPA capabilities file",
}


def _refuse_unsupported(report: str | None, capabilities: str | None) -> None:
    given = {"--report": report is not None, "--capabilities": capabilities}
    for flag, used in given.items():
        if used:
            raise click.UsageError(
                f"{flag} is conftest verify's, not cd-checks': {UNSUPPORTED[flag]}"
            )


def _chosen_format(output_format: str | None, output: str | None) -> str:
    if output_format is not None and output is not None:
        raise click.UsageError("--format and -o/--output name the same thing: give one")
    if output is not None:
        return f"conftest:{output}"
    return output_format or "text"


def _render(options: TestOptions, results: Sequence[TestResult]) -> str:
    if options.output_format.startswith("conftest:"):
        name = options.output_format.removeprefix("conftest:")
        return verify_output.render(
            name, results, trace=options.trace, hide_message=options.junit_hide_message
        )
    if options.output_format == "json":
        return _render_json(results) + "\n"
    return _render_text(results, trace=options.trace) + "\n"


def _options(
    root: Path,
    dirs: tuple[Path, ...],
    rego_version: str | None,
    run: str | None,
    data: tuple[Path, ...],
    output_format: str,
    config_path: Path | None,
) -> TestOptions:
    # Like git -C, paths on the command line are relative to the repository root.
    config = config_module.load(root, config_path)
    given = tuple(root / d for d in dirs)
    paths = given or tuple(root / p for p in config.policy.paths) or (root / "policy",)
    data_paths = tuple(root / d for d in data) or tuple(root / p for p in config.policy.data)
    version = rego_version or config.policy.rego_version
    source = PolicySource(
        paths=_relative(paths),
        data_paths=_relative(data_paths),
        rego_version=_version(version),
        root=root,
    )
    return TestOptions(source=source, run=run, output_format=output_format)


def _version(value: str) -> RegoVersion:
    if value not in ("v0", "v1"):
        raise click.BadParameter(f"unknown Rego version {value!r}", param_hint="--rego-version")
    return "v0" if value == "v0" else "v1"


def _relative(paths: Sequence[Path]) -> tuple[Path, ...]:
    """Show paths under the working directory relative to it, as the user typed them."""
    cwd = Path.cwd()
    return tuple(
        p.relative_to(cwd) if p.is_absolute() and p.is_relative_to(cwd) else p for p in paths
    )


def _render_text(results: Sequence[TestResult], *, trace: bool = False) -> str:
    lines: list[str] = []
    for result in results:
        lines.append(_text_line(result))
        lines += [f"  TRAC  {line}" for line in result.trace] if trace else []
        lines += [f"  PRNT  {output}" for output in result.outputs] if trace else []
    failed = sum(1 for result in results if not (result.passed or result.skipped))
    skipped = sum(1 for result in results if result.skipped)
    summary = f"{len(results)} tests, {len(results) - failed - skipped} passed, {failed} failed"
    lines += ["", summary + (f", {skipped} skipped" if skipped else "")]
    return "\n".join(lines).lstrip("\n")


def _text_line(result: TestResult) -> str:
    status = "SKIP" if result.skipped else "PASS" if result.passed else "FAIL"
    line = f"{status} - {result.file}:{result.line} - {result.namespace}.{result.name}"
    return f"{line}: {result.message}" if result.message else line


def _render_json(results: Sequence[TestResult]) -> str:
    failed = sum(1 for result in results if not (result.passed or result.skipped))
    summary = {"tests": len(results), "passed": len(results) - failed, "failed": failed}
    return json.dumps({"tests": [_json_test(r) for r in results], "summary": summary}, indent=2)


def _json_test(result: TestResult) -> dict[str, object]:
    """A test as JSON; `skipped`, `outputs` and `trace` only when they say something."""
    entry = asdict(result)
    if not result.skipped:
        del entry["skipped"]
    for key in ("outputs", "trace"):
        if entry[key]:
            entry[key] = list(entry[key])
        else:
            del entry[key]
    return entry
