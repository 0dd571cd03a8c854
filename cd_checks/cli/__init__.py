"""The `cd-checks` command: the only place that knows about click, prints or exits.

Subcommands live in per-area modules (`cli/validate.py`, `cli/rollout.py`, ...)
listed in `COMMANDS` and imported only when used, so `cd-checks --help` stays
fast. `main(argv) -> int` is callable from tests; `run()` is the console script.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cd_checks import __version__
from cd_checks.errors import CdChecksError

# name -> (module, attribute, one-line help). One line per command; no discovery magic.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("cd_checks.cli.validate", "validate", "Run syntax, schema and policy checks."),
    "policy": ("cd_checks.cli.policy", "policy", "Rego policy tools (policy test)."),
    "rollout": ("cd_checks.cli.rollout", "rollout", "Staged, health-gated rollouts (plan, run)."),
    "rollback": ("cd_checks.cli.rollout", "rollback", "Roll an environment back to known-good."),
    "lab": ("cd_checks.cli.lab", "lab", "Start/stop a local fleet (sshd + nginx on loopback)."),
    "audit": ("cd_checks.cli.audit", "audit", "The audit trail: log, show, export, verify."),
    "incident": ("cd_checks.cli.audit", "incident", "Record deploy-caused incidents."),
    "postmortem": (
        "cd_checks.cli.audit",
        "postmortem",
        "Record the post-mortem a break-glass deploy owes.",
    ),
    "metrics": (
        "cd_checks.cli.audit",
        "metrics_command",
        "Deploy frequency, change failure rate, time to restore, % through the pipeline.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, _ = entry
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cd-checks")
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Run as if started in DIR. The repository root is the nearest directory "
    "up from there with a cd-checks.yml (within the git work tree), else DIR.",
    metavar="DIR",
)
@click.option("--traceback", is_flag=True, help="Show a traceback on errors (for debugging).")
@click.pass_context
def cli(ctx: click.Context, directory: Path, traceback: bool) -> None:
    """Continuous deployment for IT operations: PR checks and health-gated rollouts."""
    if not directory.is_dir():
        raise CdChecksError(f"-C {directory}: not a directory")
    ctx.ensure_object(dict)
    from cd_checks.config import find_root

    ctx.obj["cwd"] = directory.resolve()
    ctx.obj["root"] = find_root(ctx.obj["cwd"])
    ctx.obj["traceback"] = traceback


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args
    try:
        result: Any = cli.main(args=args, prog_name="cd-checks", standalone_mode=False)
    except CdChecksError as exc:
        if show_traceback:
            raise
        click.echo(f"cd-checks: error: {_one_line(exc)}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("cd-checks: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("cd-checks: interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        if show_traceback:
            raise
        click.echo(f"cd-checks: internal error: {type(exc).__name__}: {_one_line(exc)}", err=True)
        click.echo("cd-checks: rerun with --traceback and report it", err=True)
        return 3
    return int(result or 0)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
