"""`cd-checks rollout plan|run` and `cd-checks rollback`: flags in, exit code out.

Progress goes to stderr as it happens (plain lines in CI, coloured on a
terminal); the report goes to stdout in the chosen format. Exit 0 on
success, 1 on a failed rollout, an unverified rollback or a revision that
fails the pre-flight validate, 4 when the failure policy paused the rollout
(`on_failure: pause`, or an inconclusive metric gate: resume or roll back),
5 when break-glass completed it past failed health gates (`forced`),
2 on a user error (raised as CdChecksError,
printed by `cd_checks.cli.main`) and when the audit trail cannot be written:
a rollout whose start record cannot be written does not start; one whose
final record cannot be written says so loudly.

Before `rollout run` touches a host: open post-mortem obligations of the
target environments are enforced (warn; fail once overdue, unless
--break-glass), then the revision must pass `validate` (unless
--break-glass, which records the failure); in GitHub Actions its findings
are printed in the `github` format (annotations). Worktrees left by killed
runs are removed first. This module is the one place that reads the CI
environment (`os.environ`) and $GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cd_checks.cli import examples
from cd_checks.errors import CdChecksError, RolloutError
from cd_checks.report import escaping

if TYPE_CHECKING:
    from cd_checks.audit.trail import AuditTrail, BreakGlass
    from cd_checks.findings import Report
    from cd_checks.rollout.context import Context
    from cd_checks.rollout.engine import Parts, RolloutResult
    from cd_checks.rollout.plan import Plan
    from cd_checks.rollout.progress import Event
    from cd_checks.rollout.recorder import AuditRecorder

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
_CHANGE = click.option(
    "--change",
    "change_name",
    metavar="TYPE",
    help="The change type (`changes:` in cd-checks.yml) to plan, deploy or roll back.",
)
_CHANGED_SINCE = click.option(
    "--changed-since",
    metavar="REF",
    help="Narrow the change type's hosts (scope_by) to what changed since REF (rollout run: "
    "default the environment's known-good revision of this change type).",
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


@click.group(
    epilog=examples(
        "cd-checks rollout plan --format markdown   # the exact hosts of every wave, for the PR",
        "cd-checks rollout run --stage staging      # one CI job per stage",
        "cd-checks rollout run --all --inventory .cd-checks/lab/inventory.yml",
    )
)
def rollout() -> None:
    """Staged, health-gated rollouts: show the plan, run stages."""


@rollout.command(
    epilog=examples(
        "cd-checks rollout plan",
        "cd-checks rollout plan --revision origin/main --format markdown",
        "cd-checks rollout plan --inventory .cd-checks/lab/inventory.yml --format json",
    )
)
@_CONFIG
@_INVENTORY
@_CHANGE
@_CHANGED_SINCE
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
    change_name: str | None,
    changed_since: str | None,
    revision: str,
    output_format: str,
) -> int:
    """Print the stages and the exact hosts of each wave (of every change type, or one)."""
    from cd_checks import changes
    from cd_checks.config import load as load_config
    from cd_checks.rollout import plan as plan_module

    names: list[str | None] = [change_name]
    if change_name is None:
        names = [t.name for t in changes.change_types(load_config(ctx.obj["root"], config_path))]
    several = len(names) > 1
    documents: dict[str, object] = {}
    for name in names or [None]:
        context = _context(ctx, config_path, inventory_path, name)
        files = _changed(context, changed_since, revision) if changed_since else None
        text = plan_module.RENDERERS[output_format](context.plan(revision, files))
        if several and output_format == "json":
            documents[str(name)] = json.loads(text)  # one document: {"changes": {TYPE: plan}}
            continue
        if several:
            heading = f"## Change type `{name}`\n" if output_format == "markdown" else f"{name}:"
            click.echo(heading)
        click.echo(text, nl=False)
    if documents:
        click.echo(json.dumps({"changes": documents}, indent=2))
    return 0


@rollout.command(
    epilog=examples(
        "cd-checks rollout run --stage canary --all-changes   # each change type, in order",
        "cd-checks rollout run --stage canary --resume   # go on after an interrupted/paused run",
        'cd-checks rollout run --stage production --break-glass --reason "TEXT" --ticket INC-123',
    )
)
@_CONFIG
@_INVENTORY
@_CHANGE
@click.option(
    "--all-changes",
    is_flag=True,
    help="Every change type in cd-checks.yml's order, each deploying only when a file of it "
    "changed since its known-good revision; the first that fails stops the rest.",
)
@_CHANGED_SINCE
@click.option("--stage", "stage_name", metavar="NAME", help="Run this stage (one CI job each).")
@click.option("--all", "all_stages", is_flag=True, help="Run every stage in order.")
@click.option("--revision", default="HEAD", show_default=True, help="Git revision to deploy.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run from its last wave, or a paused one from the wave after.",
)
@click.option(
    "--on-failure",
    type=click.Choice(["rollback", "pause", "halt"]),
    help="This run's failure policy instead of rollout.on_failure: rollback, pause (leave "
    "the hosts, exit 4) or halt (no rollback: irreversible changes).",
)
@click.option(
    "--break-glass",
    is_flag=True,
    help="Emergency: go past failing health gates and a failing validate (never the audit); "
    "needs --reason and --ticket and leaves a post-mortem to write.",
)
@click.option("--reason", metavar="TEXT", help="Why break-glass is needed (with --break-glass).")
@click.option("--ticket", metavar="ID", help="The incident/change ticket (with --break-glass).")
@_BREAK_LOCK
@_FORMAT
@click.pass_context
def run(
    ctx: click.Context,
    config_path: Path | None,
    inventory_path: Path | None,
    change_name: str | None,
    all_changes: bool,
    changed_since: str | None,
    stage_name: str | None,
    all_stages: bool,
    revision: str,
    resume: bool,
    on_failure: str | None,
    break_glass: bool,
    reason: str | None,
    ticket: str | None,
    break_lock: bool,
    output_format: str,
) -> int:
    """Apply the revision wave by wave, gate each wave, roll back on failure.

    The failure policy (rollout.on_failure, or --on-failure) may pause the
    rollout instead (exit 4: `--resume` or `cd-checks rollback`) or halt it
    without any rollback.

    With --break-glass a failed health gate is recorded and the rollout goes
    on (no automatic rollback on a gate failure; the stage is recorded
    `forced`, exit 5); an applier failure still stops it and rolls back.
    """
    if bool(stage_name) == all_stages:
        raise CdChecksError("rollout run: give exactly one of --stage NAME or --all")
    if all_changes and change_name:
        raise CdChecksError("rollout run: give --change TYPE or --all-changes, not both")
    emergency = _break_glass(break_glass, reason, ticket)
    options = _RunOptions(
        config_path,
        inventory_path,
        changed_since,
        stage_name,
        revision,
        resume,
        on_failure,
        emergency,
        break_lock,
        output_format,
    )
    if not all_changes:
        return _run_change(ctx, options, change_name)
    from cd_checks import changes
    from cd_checks.config import load as load_config

    types = changes.change_types(load_config(ctx.obj["root"], config_path))
    for change in types:
        if stage_name and stage_name not in {s.name for s in change.rollout.stages}:
            click.echo(f"cd-checks: change type {change.label} has no stage {stage_name}", err=True)
            continue
        click.echo(f"cd-checks: change type {change.label}", err=True)
        code = _run_change(ctx, options, change.name)
        if code != 0:
            return code
    return 0


@dataclass(frozen=True)
class _RunOptions:
    config_path: Path | None
    inventory_path: Path | None
    changed_since: str | None
    stage_name: str | None
    revision: str
    resume: bool
    on_failure: str | None
    emergency: BreakGlass | None
    break_lock: bool
    output_format: str


def _run_change(ctx: click.Context, options: _RunOptions, change_name: str | None) -> int:
    """`rollout run` of one change type (None: the only one there is)."""
    from cd_checks.rollout import engine

    config_path, revision, resume = options.config_path, options.revision, options.resume
    emergency, stage_name = options.emergency, options.stage_name
    changed_since, output_format = options.changed_since, options.output_format
    context = _context(ctx, config_path, options.inventory_path, change_name)
    _starting(context)
    stages = [s.name for s in context.spec.stages] if not stage_name else [stage_name]
    if stage_name:
        context.spec.stage(stage_name)
    revision = _resume_revision(context, stages, revision) if resume else revision
    trail = _trail(context, emergency=emergency is not None)
    files = _deployed_files(context, trail, stages, revision, changed_since, resume)
    if files == []:
        return 0
    plan = context.plan(revision, files)
    _enforce_postmortems(context, trail, plan, stages, emergency is not None)
    emergency, refused = _preflight(
        context, config_path, plan.revision, emergency, machine=output_format == "json"
    )
    if refused:
        return 1
    recorder = _recorder(context, trail, plan.revision, emergency)
    if _frozen(context, recorder, emergency is not None):
        return 1
    holder = context.state.me(_command_line())
    try:
        result = engine.run(
            _parts(context, trail, recorder),
            plan,
            stages,
            holder=holder,
            resume=resume,
            break_lock=options.break_lock,
            override_gates=emergency is not None,
            on_failure=options.on_failure,
        )
    except CdChecksError:
        _shout(recorder)
        raise
    _step_summary(result, recorder)
    return _finish(result, output_format, recorder)


@click.command(
    epilog=examples(
        "cd-checks rollback --stage production      # back to its last known-good revision",
        "cd-checks rollback --environment staging --to v1.4.0",
    )
)
@_CONFIG
@_INVENTORY
@_CHANGE
@click.option(
    "--to",
    "to_revision",
    metavar="REV",
    help="Revision to go back to (default: the environment's last known-good revision, "
    "else the failed deploy's base revision).",
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
    change_name: str | None,
    to_revision: str | None,
    stage_name: str | None,
    environment: str | None,
    break_lock: bool,
    output_format: str,
) -> int:
    """Put the hosts of an unfinished or failed rollout back on the known-good revision.

    Before the environment has one (a failed first rollout), on the deploy's base
    revision, which the run recorded in its state and in the audit trail.
    """
    from cd_checks.rollout import engine

    context = _context(ctx, config_path, inventory_path, change_name)
    _starting(context)
    target = context.workspace.resolve(to_revision) if to_revision else None
    trail = _trail(context)
    recorder = _recorder(context, trail, target or "HEAD", None)
    parts = _parts(context, trail, recorder)
    chosen = _environment(context, stage_name, environment, parts)
    all_hosts = context.plan(target or "HEAD").environment_hosts(chosen)
    try:
        result = engine.rollback(
            parts,
            chosen,
            holder=context.state.me(_command_line()),
            to=target,
            break_lock=break_lock,
            all_hosts=all_hosts,
        )
    except CdChecksError:
        _shout(recorder)
        raise
    return _finish(result, output_format, recorder)


def _context(
    ctx: click.Context, config_path: Path | None, inventory_path: Path | None, change: str | None
) -> Context:
    from cd_checks.rollout import context

    root: Path = ctx.obj["root"]
    return context.load(
        root,
        config_path=config_path,
        inventory_path=inventory_path,
        env=dict(os.environ),
        change=change,
    )


def _starting(context: Context) -> None:
    """What a run says before it starts: worktrees of killed runs removed, variables withheld."""
    for removed in context.workspace.sweep():
        click.echo(f"cd-checks: removed the worktree of a killed run: {removed}", err=True)
    if context.withheld:
        click.echo(
            "cd-checks: not passed to the applier and health tests: "
            f"{', '.join(context.withheld)} (allow one with rollout.pass_env)",
            err=True,
        )


def _parts(context: Context, trail: AuditTrail, recorder: AuditRecorder) -> Parts:
    """The real parts; deploy markers (rollout.markers) hear every stage after the audit."""
    from cd_checks.cli import colour_for
    from cd_checks.rollout import context as context_module
    from cd_checks.rollout.engine import Observer
    from cd_checks.rollout.markers import Markers, Observers
    from cd_checks.rollout.render import progress_line

    colour = colour_for(sys.stderr)  # as --color and the environment decided

    def report(event: Event) -> None:
        # color=: events may come from worker threads, which have no click context to ask.
        click.echo(progress_line(event, colour=colour), err=True, color=colour)

    observer: Observer = recorder
    if context.spec.markers:
        path = Path(context.spec.markers).expanduser()
        markers = Markers(path if path.is_absolute() else context.root / path)
        recorder.markers = markers
        observer = Observers((recorder, markers))  # the audit first: its refusal stops all
    return context_module.parts(
        context,
        report=report,
        workers=min(4, os.cpu_count() or 2),
        trail=trail,
        observer=observer,
    )


def _marker_problems(recorder: AuditRecorder) -> None:
    """A deploy marker that could not be written is a warning, never a failed rollout."""
    for problem in recorder.markers.problems if recorder.markers is not None else ():
        line = escaping.defuse_text(escaping.escape_controls(problem, keep=""))
        click.echo(f"cd-checks: warning: {line}", err=True)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _trail(context: Context, *, emergency: bool = False) -> AuditTrail:
    """The configured trail; for break-glass, with the fallback trail behind it (loudly)."""
    from dataclasses import replace

    from cd_checks.audit.fallback import FallbackStore, fallback_path
    from cd_checks.audit.store import FileStore
    from cd_checks.audit.trail import open_trail
    from cd_checks.cli.audit import leftovers, warner

    trail = open_trail(context.config, now=_now, warn=warner(), env=os.environ)
    leftovers(context.root, trail)
    if not emergency:
        return trail
    trail = trail.for_break_glass()
    path = fallback_path(context.root, os.environ)
    fallback = FileStore(path, warner(), private=True, signer=trail.signer)
    store = FallbackStore(trail.store, fallback, warner(prefix=""))
    if trail.anchor is not None:
        # The store moves the anchor, and only for records the main trail took.
        store = replace(store, written=trail.anchor.advance)
    return replace(trail, store=store, anchor=None)


def _break_glass(flag: bool, reason: str | None, ticket: str | None) -> BreakGlass | None:
    from cd_checks.audit.trail import BreakGlass

    given = bool(reason and reason.strip()) and bool(ticket and ticket.strip())
    if flag and not given:
        raise CdChecksError("rollout run: --break-glass needs --reason TEXT and --ticket ID")
    if not flag and (reason is not None or ticket is not None):
        raise CdChecksError("rollout run: --reason and --ticket go with --break-glass")
    return BreakGlass(reason or "", ticket or "") if flag else None


def _enforce_postmortems(
    context: Context, trail: AuditTrail, plan: Plan, stages: list[str], emergency: bool
) -> None:
    """Warn about open post-mortems of the target environments; fail on an overdue one."""
    from cd_checks import breakglass

    hours = breakglass.hours_from(context.config.section("break_glass"))
    records = trail.records()
    for environment in dict.fromkeys(plan.stage(s).environment for s in stages):
        for warning in breakglass.enforce(
            records, environment, _now(), hours, break_glass=emergency
        ):
            click.echo(f"cd-checks: {warning}", err=True)


def _preflight(
    context: Context,
    config_path: Path | None,
    revision: str,
    emergency: BreakGlass | None,
    *,
    machine: bool = False,
) -> tuple[BreakGlass | None, bool]:
    """Validate the revision; (break-glass with the failure recorded, refused?).

    With a machine-read format on standard output (`machine`), the findings go to
    standard error: standard output stays one JSON document.
    """
    from dataclasses import replace

    from cd_checks.rollout import preflight

    report = preflight.validate_revision(
        context.workspace, revision, config_path=config_path, inventory=context.inventory_path
    )
    if not report.failed("error"):
        return emergency, False
    click.echo(_deploy_log(report, context.root), nl=False, err=machine)
    what = f"{revision[:12]} fails validate ({report.errors} error(s))"
    if emergency is None:
        click.echo(
            f"cd-checks: rollout refused: {what}; fix it, or in an emergency use "
            "--break-glass --reason TEXT --ticket ID",
            err=True,
        )
        return None, True
    click.echo(f"cd-checks: BREAK-GLASS: deploying {what}", err=True)
    return replace(emergency, validate=preflight.summary(report, revision)), False


def _deploy_log(report: Report, root: Path) -> str:
    """The pre-flight's findings as the deploy log shows them.

    In GitHub Actions the `github` format: annotations on the files, and a file name
    cannot start a workflow command of its own. Elsewhere the text format.
    """
    from cd_checks.report import FORMATS, github

    if os.environ.get("GITHUB_ACTIONS") != "true":
        return FORMATS["text"](report, color=False)
    moved = github.from_workspace(report, root, os.environ.get("GITHUB_WORKSPACE"))
    return FORMATS["github"](moved, color=False)


def _recorder(
    context: Context, trail: AuditTrail, revision: str, emergency: BreakGlass | None
) -> AuditRecorder:
    from cd_checks.audit.identity import fetch_json, git_runner, identify
    from cd_checks.rollout.recorder import AuditRecorder

    identity = identify(
        dict(os.environ),
        repo=context.root,
        git=git_runner(context.root),
        http=fetch_json,
        revision=revision,
    )
    return AuditRecorder(trail, identity, emergency, change=context.change_name)


def _changed(context: Context, ref: str, revision: str) -> list[str]:
    from cd_checks.scope import changed_files

    return changed_files(context.root, ref, revision)[2]


def _deployed_files(
    context: Context,
    trail: AuditTrail,
    stages: list[str],
    revision: str,
    changed_since: str | None,
    resume: bool,
) -> list[str] | None:
    """What a named change type's deploy changes: the files since `--changed-since`, else
    since the known-good revision of each stage's environment, together (None: no
    narrowing, e.g. an environment's first deploy). [] when no file of the type changed
    for any of them: nothing to deploy. (So `--all` after staging alone got a revision
    still deploys it to production.)"""
    from cd_checks import changes
    from cd_checks.rollout.context import known_good

    change = context.change
    if change is None or change.name is None or resume:
        return None
    if changed_since:
        bases = [changed_since]
    else:
        good = known_good(context, trail)
        environments = dict.fromkeys(context.spec.stage(s).environment for s in stages)
        found = [good.get(environment) for environment in environments]
        if None in found:
            return None
        bases = list(dict.fromkeys(b for b in found if b is not None))
    files = list(dict.fromkeys(f for base in bases for f in _changed(context, base, revision)))
    if not changes.triggered([change], files):
        since = ", ".join(base[:12] for base in bases)
        click.echo(
            f"cd-checks: nothing to deploy: no file of change type {change.name} changed "
            f"since {since}",
            err=True,
        )
        return []
    return files


def _frozen(context: Context, recorder: AuditRecorder, emergency: bool) -> bool:
    """A freeze window or missing approvals refuse the run; break-glass goes on, audited."""
    from cd_checks import freeze

    change = context.change
    if change is None or (not change.freeze and not change.require_approvals):
        return False
    refusals, notes = freeze.enforce(
        change.freeze,
        change.require_approvals,
        recorder.identity.change_request,
        _now(),
        break_glass=emergency,
    )
    for refusal in refusals:
        click.echo(f"cd-checks: rollout refused: change type {change.name}: {refusal}", err=True)
    for note in notes:
        click.echo(f"cd-checks: {note}", err=True)
    recorder.notes = tuple(notes)
    return bool(refusals)


def _shout(recorder: AuditRecorder) -> None:
    for error in recorder.final_errors:
        click.echo(f"cd-checks: AUDIT RECORD NOT WRITTEN: {error}", err=True)


def _step_summary(result: RolloutResult, recorder: AuditRecorder) -> None:
    from cd_checks.rollout.render import render_markdown

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    deploys = [(r.deploy_id, r.stage or r.kind, r.outcome) for r in recorder.runs]
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(render_markdown(result, deploys))
    except OSError as exc:
        click.echo(f"cd-checks: cannot write the job summary {path}: {exc}", err=True)


def _resume_revision(context: Context, stages: list[str], revision: str) -> str:
    """--resume deploys what the interrupted run deployed, unless --revision says otherwise."""
    from cd_checks.rollout import engine

    if revision != "HEAD":
        return revision
    for name in stages:
        record = context.state.record(context.spec.stage(name).environment)
        if record is not None and record.status == "rolling_back":
            raise RolloutError(engine.rolling_back_text(record))
        if record is not None and record.status in ("running", "paused"):
            return record.revision
    raise RolloutError("nothing to resume: no interrupted or paused run in these environments")


def _environment(
    context: Context, stage_name: str | None, environment: str | None, parts: Parts
) -> str:
    from cd_checks.rollout import engine

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
    # From the state directory or, in a fresh checkout without it, from the audit trail.
    open_ones = [e for e in known if engine.unfinished(parts, e) is not None]
    if len(open_ones) == 1:
        return open_ones[0]
    if len(known) == 1:
        return known[0]
    where = ", ".join(open_ones or known)
    raise CdChecksError(f"rollback: say which environment with --environment ({where})")


def _finish(result: RolloutResult, output_format: str, recorder: AuditRecorder) -> int:
    from cd_checks.rollout.render import RENDERERS

    click.echo(RENDERERS[output_format](result), nl=False)
    if result.ok and result.unhealthy and not result.forced:
        click.echo(
            f"cd-checks: warning: {len(result.unhealthy)} host(s) failed their health checks "
            f"within max_failed_percent and stay on {result.revision[:12]}: "
            f"{', '.join(result.unhealthy)}",
            err=True,
        )
    _marker_problems(recorder)
    for written in recorder.runs:
        what = f"{written.kind} {written.stage}" if written.stage else written.kind
        click.echo(
            f"audit: {what} of {written.environment}: deploy {written.deploy_id} "
            f"({written.outcome})",
            err=True,
        )
    if recorder.final_errors:
        _shout(recorder)
        return 2
    return result.exit_code


def _command_line() -> str:
    return " ".join(["cd-checks", *sys.argv[1:]])[:200]
