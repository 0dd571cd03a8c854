"""`cd-checks policy ...`: Rego policy tools; today `policy test`, the Rego unit-test runner.

Parses options, fills defaults from cd-checks.yml (`policy.paths`,
`policy.data`, `policy.rego_version`), calls `cd_checks.rego.run_tests` and
renders the results like `conftest verify`. Exit 0 when every test passes,
1 when one fails; a `PolicyError` goes up to `main()`, which prints it (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from cd_checks import config as config_module
from cd_checks.cli import examples
from cd_checks.rego import PolicySource, TestResult, run_tests
from cd_checks.rego.model import RegoVersion


@dataclass(frozen=True)
class TestOptions:
    """`policy test` after defaults are applied."""

    __test__ = False  # not a pytest class

    source: PolicySource
    run: str | None
    output_format: str


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
        "cd-checks policy test --data data/ports.yaml --format json",
    ),
)
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--rego-version",
    type=click.Choice(["v0", "v1"]),
    default=None,
    help="Rego syntax of the policies (default: the config's, else v1).",
)
@click.option("--run", "run", metavar="REGEX", help="Only tests whose namespace.name matches.")
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Data documents (.json/.yaml) merged into `data`; repeatable.",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=None, help="cd-checks.yml"
)
@click.pass_context
def test_command(
    ctx: click.Context,
    dirs: tuple[Path, ...],
    rego_version: str | None,
    run: str | None,
    data: tuple[Path, ...],
    output_format: str,
    config_path: Path | None,
) -> int:
    """Run the Rego unit tests (rules named test_*) in DIR... (default: config, else policy/)."""
    root: Path = ctx.obj["root"] if ctx.obj else Path.cwd()
    options = _options(root, dirs, rego_version, run, data, output_format, config_path)
    results = run_tests(options.source, run=options.run)
    render = _render_json if options.output_format == "json" else _render_text
    click.echo(render(results))
    return 0 if all(result.passed for result in results) else 1


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
        paths=_relative(paths), data_paths=_relative(data_paths), rego_version=_version(version)
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


def _render_text(results: Sequence[TestResult]) -> str:
    lines = [_text_line(result) for result in results]
    failed = sum(1 for result in results if not result.passed)
    lines += ["", f"{len(results)} tests, {len(results) - failed} passed, {failed} failed"]
    return "\n".join(lines).lstrip("\n")


def _text_line(result: TestResult) -> str:
    status = "PASS" if result.passed else "FAIL"
    line = f"{status} - {result.file}:{result.line} - {result.namespace}.{result.name}"
    return f"{line}: {result.message}" if result.message else line


def _render_json(results: Sequence[TestResult]) -> str:
    failed = sum(1 for result in results if not result.passed)
    summary = {"tests": len(results), "passed": len(results) - failed, "failed": failed}
    return json.dumps({"tests": [asdict(r) for r in results], "summary": summary}, indent=2)
