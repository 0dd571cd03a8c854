"""The `cd-checks` command: the only place that knows about click, prints or exits.

Subcommands live in per-area modules (`cli/validate.py`, `cli/rollout.py`, ...)
listed in `COMMANDS` and imported only when used, so `cd-checks --help` stays
fast. `main(argv) -> int` is callable from tests; `run()` is the console script.
The CLI also owns the conventions every command shares: usage errors as one
`cd-checks: error:` line plus a hint (exit 2), and the colour decision
(`--color`, `NO_COLOR`, `FORCE_COLOR`, `TERM=dumb`), which it hands down.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import click

from cd_checks import __version__
from cd_checks.errors import CdChecksError
from cd_checks.report import escaping

# name -> (module, attribute, one-line help). One line per command; no discovery magic.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("cd_checks.cli.validate", "validate", "Run syntax, schema and policy checks."),
    "init": ("cd_checks.cli.init", "init", "Add cd-checks to a repository: config, CI, hooks."),
    "policy": ("cd_checks.cli.policy", "policy", "Rego policy tools (policy test)."),
    "parse": ("cd_checks.cli.parse", "parse", "Print the input a policy sees for a file."),
    "rollout": ("cd_checks.cli.rollout", "rollout", "Staged, health-gated rollouts (plan, run)."),
    "rollback": ("cd_checks.cli.rollout", "rollback", "Roll an environment back to known-good."),
    "scope": (
        "cd_checks.cli.scope",
        "scope",
        "What a change deploys: change types, hosts per stage and wave, unmatched files.",
    ),
    "lab": ("cd_checks.cli.lab", "lab", "Start/stop a local fleet (sshd + nginx on loopback)."),
    "audit": ("cd_checks.cli.audit", "audit", "The audit trail: log, verify, repair."),
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
    "completion": (
        "cd_checks.cli.completion",
        "completion",
        "Print the shell completion script (bash, zsh, fish).",
    ),
}

PROG_NAME = "cd-checks"
# The variable click's shell completion machinery answers on (see `completion`).
COMPLETE_VAR = "_CD_CHECKS_COMPLETE"
COLOR_MODES = ("auto", "always", "never")

# click >= 8.2 raises this for a group run without a subcommand; its "message" is the help.
_NO_ARGS_IS_HELP: tuple[type[click.UsageError], ...] = tuple(
    getattr(click.exceptions, name)
    for name in ("NoArgsIsHelpError",)
    if hasattr(click.exceptions, name)
)


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

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        # An option-like name goes to click, which reports it as an unknown option.
        if name not in COMMANDS and not name.startswith("-") and not ctx.resilient_parsing:
            ctx.fail(f"no such command {name!r}.{_did_you_mean(name, COMMANDS)}")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _did_you_mean(word: str, choices: Sequence[str] | Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=2)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def examples(*lines: str) -> str:
    """A command's "Examples:" epilog; `\\b` keeps click from rewrapping the lines."""
    return "\b\nExamples:\n" + "".join(f"  {line}\n" for line in lines)


EXAMPLES = examples(
    "cd-checks validate                         # check the whole repository",
    "cd-checks validate --changed-since origin/main --format sarif -o cd-checks.sarif",
    "cd-checks rollout plan --format markdown   # the hosts of every wave, for the PR",
)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXAMPLES,
)
@click.version_option(__version__, prog_name=PROG_NAME)
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Run as if started in DIR. The repository root is the nearest directory "
    "up from there with a cd-checks.yml (within the git work tree), else DIR.",
    metavar="DIR",
)
@click.option(
    "--color",
    "color_mode",
    type=click.Choice(COLOR_MODES),
    default="auto",
    show_default=True,
    help="Colour the output. auto: on a terminal, unless NO_COLOR is set or TERM=dumb; "
    "FORCE_COLOR forces it.",
)
@click.option("--traceback", is_flag=True, help="Show a traceback on errors (for debugging).")
@click.pass_context
def cli(ctx: click.Context, directory: Path, color_mode: str, traceback: bool) -> None:
    """Continuous deployment for IT operations: PR checks and health-gated rollouts."""
    if not directory.is_dir():
        raise CdChecksError(f"-C {directory}: not a directory")
    ctx.ensure_object(dict)
    from cd_checks.config import find_root

    # Subcommand contexts inherit `color`; click.echo strips ANSI codes when it is False.
    ctx.color = colour_setting(color_mode, os.environ)
    ctx.obj["cwd"] = directory.resolve()
    ctx.obj["root"] = find_root(ctx.obj["cwd"])
    ctx.obj["traceback"] = traceback


def colour_setting(mode: str, env: Mapping[str, str]) -> bool | None:
    """Colour on or off as --color and the environment decide; None: colour on a TTY.

    The flag beats the environment. NO_COLOR counts only when non-empty
    (no-color.org) and beats FORCE_COLOR, as in pytest; TERM=dumb cannot show it.
    """
    if mode != "auto":
        return mode == "always"
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM") == "dumb":
        return False
    return None


def colour_for(stream: TextIO, ctx: click.Context | None = None) -> bool:
    """Whether to write ANSI colour to STREAM in the running command."""
    current = ctx or click.get_current_context(silent=True)
    decided = current.color if current is not None else None
    if decided is not None:
        return decided
    return stream.isatty()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args
    try:
        result: Any = cli.main(
            args=args,
            prog_name=PROG_NAME,
            complete_var=COMPLETE_VAR,
            standalone_mode=False,
        )
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
    except click.UsageError as exc:
        return _usage_error(exc, args)
    except click.ClickException as exc:
        click.echo(f"cd-checks: error: {_sentence(exc.format_message())}", err=True)
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


def _usage_error(exc: click.UsageError, args: Sequence[str]) -> int:
    """One `cd-checks: error:` line and where to look, instead of click's usage block."""
    if isinstance(exc, _NO_ARGS_IS_HELP):
        exc.show()  # a group run bare: its help is the most useful answer
        return 2
    path = exc.ctx.command_path if exc.ctx is not None else _command_path(args)
    click.echo(f"cd-checks: error: {_sentence(exc.format_message())}", err=True)
    click.echo(f"Try '{path} --help'.", err=True)
    return 2


def _sentence(message: str) -> str:
    """click's message on one line, lower-cased like the other error lines ("No such" ...)."""
    line = _safe(" ".join(message.split()))
    if line[:1].isupper() and line[1:2].islower():
        return line[0].lower() + line[1:]
    return line


def _command_path(args: Sequence[str]) -> str:
    """The (sub)command ARGS name, for the few errors click raises without a context."""
    ctx = click.Context(cli, info_name=PROG_NAME)
    command: click.Command = cli
    path = [PROG_NAME]
    for arg in args:
        sub = command.get_command(ctx, arg) if isinstance(command, click.Group) else None
        if sub is not None:
            command, path = sub, [*path, arg]
    return " ".join(path)


def _one_line(exc: BaseException) -> str:
    return _safe(" ".join(str(exc).split()) or type(exc).__name__)


def _safe(line: str) -> str:
    """An error line a terminal or a CI log shows as text: a path in it may hold anything."""
    return escaping.defuse_text(escaping.escape_controls(line, keep=""))


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
