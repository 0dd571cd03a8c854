"""`cd-checks rollout plan|run` and `cd-checks rollback`: flags in, exit code out.

Progress goes to stderr as it happens (plain lines in CI, coloured on a
terminal); the report goes to stdout in the chosen format. Exit 0 on
success, 1 on a failed rollout or an unverified rollback, 2 on a user error
(raised as CdChecksError, printed by `cd_checks.cli.main`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cd_checks.errors import CdChecksError, RolloutError

if TYPE_CHECKING:
    from cd_checks.rollout.context import Context
    from cd_checks.rollout.engine import Parts, RolloutResult
    from cd_checks.rollout.progress import Event

_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: cd-checks.yml at the repository root).",
)
_INVENTORY = click.option(
    "--inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory to use instead of rollout.inventory (e.g. a lab fleet's inventory.yml).",
)
_BREAK_LOCK = click.option(
    "--break-lock", is_flag=True, help="Take the environment lock even if another run holds it."
)
_FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="Report format.",
)


@click.group()
def rollout() -> None:
    """Staged, health-gated rollouts: show the plan, run stages."""


@rollout.command()
@_CONFIG
@_INVENTORY
@click.option("--revision", default="HEAD", show_default=True, help="Git revision to plan.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(("text", "markdown", "json")),
    default="text",
    show_default=True,
)
@click.pass_context
def plan(
    ctx: click.Context,
    config_path: Path | None,
    inventory_path: Path | None,
    revision: str,
    output_format: str,
) -> int:
    """Print the stages and the exact hosts of each wave."""
    from cd_checks.rollout import plan as plan_module

    context = _context(ctx, config_path, inventory_path)
    click.echo(plan_module.RENDERERS[output_format](context.plan(revision)), nl=False)
    return 0


@rollout.command()
@_CONFIG
@_INVENTORY
@click.option("--stage", "stage_name", metavar="NAME", help="Run this stage (one CI job each).")
@click.option("--all", "all_stages", is_flag=True, help="Run every stage in order.")
@click.option("--revision", default="HEAD", show_default=True, help="Git revision to deploy.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last wave.")
@_BREAK_LOCK
@_FORMAT
@click.pass_context
def run(
    ctx: click.Context,
    config_path: Path | None,
    inventory_path: Path | None,
    stage_name: str | None,
    all_stages: bool,
    revision: str,
    resume: bool,
    break_lock: bool,
    output_format: str,
) -> int:
    """Apply the revision wave by wave, gate each wave, roll back on failure."""
    from cd_checks.rollout import engine

    if bool(stage_name) == all_stages:
        raise CdChecksError("rollout run: give exactly one of --stage NAME or --all")
    context = _context(ctx, config_path, inventory_path)
    stages = [s.name for s in context.spec.stages] if all_stages else [stage_name or ""]
    if stage_name:
        context.spec.stage(stage_name)
    revision = _resume_revision(context, stages, revision) if resume else revision
    plan = context.plan(revision)
    holder = context.state.me(_command_line())
    result = engine.run(
        _parts(context), plan, stages, holder=holder, resume=resume, break_lock=break_lock
    )
    return _finish(result, output_format)


@click.command()
@_CONFIG
@_INVENTORY
@click.option(
    "--to",
    "to_revision",
    metavar="REV",
    help="Revision to go back to (default: the environment's last known-good revision).",
)
@click.option(
    "--stage", "stage_name", metavar="NAME", help="Roll back the environment of this stage."
)
@click.option("--environment", metavar="ENV", help="Roll back this environment.")
@_BREAK_LOCK
@_FORMAT
@click.pass_context
def rollback(
    ctx: click.Context,
    config_path: Path | None,
    inventory_path: Path | None,
    to_revision: str | None,
    stage_name: str | None,
    environment: str | None,
    break_lock: bool,
    output_format: str,
) -> int:
    """Put the hosts of an unfinished or failed rollout back on the known-good revision."""
    from cd_checks.rollout import engine

    context = _context(ctx, config_path, inventory_path)
    chosen = _environment(context, stage_name, environment)
    target = context.workspace.resolve(to_revision) if to_revision else None
    all_hosts = context.plan(target or "HEAD").environment_hosts(chosen)
    result = engine.rollback(
        _parts(context),
        chosen,
        holder=context.state.me(_command_line()),
        to=target,
        break_lock=break_lock,
        all_hosts=all_hosts,
    )
    return _finish(result, output_format)


def _context(ctx: click.Context, config_path: Path | None, inventory_path: Path | None) -> Context:
    from cd_checks.rollout import context

    root: Path = ctx.obj["root"]
    return context.load(
        root, config_path=config_path, inventory_path=inventory_path, env=dict(os.environ)
    )


def _parts(context: Context) -> Parts:
    from cd_checks.rollout import context as context_module
    from cd_checks.rollout.render import progress_line

    colour = sys.stderr.isatty() and "NO_COLOR" not in os.environ

    def report(event: Event) -> None:
        click.echo(progress_line(event, colour=colour), err=True)

    return context_module.parts(context, report=report, workers=min(4, os.cpu_count() or 2))


def _resume_revision(context: Context, stages: list[str], revision: str) -> str:
    """--resume deploys what the interrupted run deployed, unless --revision says otherwise."""
    if revision != "HEAD":
        return revision
    for name in stages:
        record = context.state.record(context.spec.stage(name).environment)
        if record is not None and record.status == "running":
            return record.revision
    raise RolloutError("nothing to resume: no interrupted run in these environments")


def _environment(context: Context, stage_name: str | None, environment: str | None) -> str:
    if stage_name and environment:
        raise CdChecksError("rollback: give --stage or --environment, not both")
    if stage_name:
        return context.spec.stage(stage_name).environment
    known = context.spec.environments()
    if environment:
        if environment not in known:
            raise CdChecksError(
                f"rollback: unknown environment {environment!r} ({', '.join(known)})"
            )
        return environment
    open_ones = [e for e in known if context.state.record(e) is not None]
    if len(open_ones) == 1:
        return open_ones[0]
    if len(known) == 1:
        return known[0]
    where = ", ".join(open_ones or known)
    raise CdChecksError(f"rollback: say which environment with --environment ({where})")


def _finish(result: RolloutResult, output_format: str) -> int:
    from cd_checks.rollout.render import RENDERERS

    click.echo(RENDERERS[output_format](result), nl=False)
    return result.exit_code


def _command_line() -> str:
    return " ".join(["cd-checks", *sys.argv[1:]])[:200]
