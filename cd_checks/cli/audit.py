"""`cd-checks audit|incident|postmortem|metrics`: read and extend the audit trail, report metrics.

Exit codes: 0 done; 1 `audit verify` found tampering; 2 a user error (raised
as CdChecksError, printed by `cd_checks.cli.main`). The identity recorded for
incidents and post-mortems is taken from the CI environment or git, here,
the one place that hands `os.environ` to `identify`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cd_checks import breakglass, config, incidents, metrics
from cd_checks.audit import listing
from cd_checks.audit.anchor import Anchor
from cd_checks.audit.identity import git_runner, identify
from cd_checks.audit.integrity import Verdict
from cd_checks.audit.jsonl import BadLine
from cd_checks.audit.record import OUTCOMES, parse_time
from cd_checks.audit.trail import AuditTrail, open_trail
from cd_checks.cli import examples
from cd_checks.errors import AuditError, InputError
from cd_checks.report import escaping

if TYPE_CHECKING:
    from cd_checks.changes import ChangeType


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _root(ctx: click.Context) -> Path:
    obj = ctx.find_root().obj or {}
    return Path(obj.get("root", ".")).resolve()


def _config(ctx: click.Context, path: Path | None = None) -> config.Config:
    return config.load(_root(ctx), path)


def _trail(
    ctx: click.Context, now: Callable[[], datetime] = _now, config_path: Path | None = None
) -> AuditTrail:
    return open_trail(_config(ctx, config_path), now=now, warn=warner(), env=os.environ)


def _say(text: str, *, err: bool = False, nl: bool = True) -> None:
    """A line for a terminal or a CI log: what the trail holds (ids, reasons, names) is
    anyone's text, so control characters are escaped and workflow commands defused."""
    click.echo(escaping.defuse_text(escaping.escape_controls(text)), err=err, nl=nl)


def warner(prefix: str = "warning: ") -> Callable[[str], None]:
    """A store's warning sink for one command: each warning once, on stderr."""
    said: set[str] = set()

    def warn(message: str) -> None:
        if message not in said:
            said.add(message)
            _say(f"cd-checks: {prefix}{message}", err=True)

    return warn


def leftovers(root: Path, trail: AuditTrail) -> None:
    """Name the side files of lines moved out of the trail, and break-glass fallback records."""
    from cd_checks.audit.fallback import fallback_path, notices

    for notice in notices(trail.store, fallback_path(root, os.environ)):
        _say(f"cd-checks: warning: {notice}", err=True)


def _hours(ctx: click.Context) -> float:
    return breakglass.hours_from(_config(ctx).section("break_glass"))


def _actor(ctx: click.Context) -> str:
    root = _root(ctx)
    return identify(dict(os.environ), repo=root, git=git_runner(root)).actor


def _environments(ctx: click.Context) -> tuple[str, ...] | None:
    """The environments the config's rollout stages deploy to; None without a rollout section."""
    from cd_checks.rollout.spec import from_section

    section = _config(ctx).section("rollout")
    return from_section(section).environments() if section else None


def _change_types(ctx: click.Context) -> tuple[ChangeType, ...]:
    """The change types `changes:` names; () with a single `rollout:` section or none."""
    from cd_checks.changes import change_types

    return tuple(t for t in change_types(_config(ctx)) if t.name is not None)


def _deployed_to(types: Sequence[ChangeType], change: str | None) -> tuple[str, ...] | None:
    """The environments the change types (or the one named `change`) deploy to; None when
    the config does not say (a type only the trail names)."""
    chosen = [t for t in types if change is None or t.name == change]
    if not chosen:
        return None
    return tuple(dict.fromkeys(e for t in chosen for e in t.rollout.environments()))


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)  # export's JSON/CSV as written; for files and pipes
        return
    try:
        output.write_text(text, "utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc}") from exc


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except AuditError as exc:
        raise InputError(f"{option} {value!r}: not an ISO 8601 time") from exc


_OUTPUT = click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)


@click.group(
    epilog=examples(
        "cd-checks audit log -e production --since 30d",
        "cd-checks audit show 20250301T101500Z-3fa2c1",
        "cd-checks audit verify",
    )
)
def audit() -> None:
    """The audit trail: list, show, export and verify deploy records."""


@audit.command(
    "log",
    epilog=examples(
        "cd-checks audit log",
        "cd-checks audit log -e production --outcome failed --since 30d",
        "cd-checks audit log --change nginx --format json   # one change type's runs",
    ),
)
@click.option("--environment", "-e", help="Only this environment.")
@click.option("--change", metavar="NAME", help="Only this change type (`changes:` in the config).")
@click.option(
    "--outcome", type=click.Choice(OUTCOMES + ("open", "resolved")), help="Only this outcome."
)
@click.option("--since", help="Only records started since: 30d, 12w, 36h or an ISO date.")
@click.option("--format", "output_format", type=click.Choice(("table", "json")), default="table")
@click.pass_context
def log(
    ctx: click.Context,
    environment: str | None,
    change: str | None,
    outcome: str | None,
    since: str | None,
    output_format: str,
) -> None:
    """One line per deploy, incident and post-mortem; break-glass uses flagged."""
    now = _now()
    trail = _trail(ctx)
    leftovers(_root(ctx), trail)
    found = listing.rows(trail.records(), now, _hours(ctx))
    start = metrics.parse_since(since, now) if since else None
    chosen = listing.select(
        found, environment=environment, outcome=outcome, since=start, change=change
    )
    if output_format == "table":
        _say(listing.render_table(chosen), nl=False)
    else:
        click.echo(escaping.defuse_json(listing.render_rows_json(chosen)), nl=False)


@audit.command(
    epilog=examples(
        "cd-checks audit show 20250301T101500Z-3fa2c1    # a deploy id from `cd-checks audit log`",
        "cd-checks audit show 20250301T113000Z-9b0e47    # an incident, with its deploy",
    )
)
@click.argument("record_id", metavar="ID")
@click.pass_context
def show(ctx: click.Context, record_id: str) -> None:
    """Everything recorded about one deploy or event, related records included."""
    verdict = _trail(ctx).verdict()  # each signature judged: who signed, or that none did
    text = listing.render_show(verdict.records, record_id, verdict.signatures)
    _say(text, nl=False)


@audit.command(
    epilog=examples(
        "cd-checks audit export > audit.json",
        "cd-checks audit export --format csv -o audit.csv",
    )
)
@click.option("--format", "output_format", type=click.Choice(("json", "csv")), default="json")
@_OUTPUT
@click.pass_context
def export(ctx: click.Context, output_format: str, output: Path | None) -> None:
    """Every record, with its hashes, as JSON or CSV."""
    records = _trail(ctx).records()
    text = listing.export_json(records) if output_format == "json" else listing.export_csv(records)
    _write(text, output)


@audit.command(
    "verify",
    epilog=examples(
        "cd-checks audit verify                # exit 1 naming any tampered or forged record",
        "cd-checks audit verify --format json  # the head to keep, e.g. in a CI job summary",
        "cd-checks audit verify --anchor HASH  # HASH: a head printed earlier, e.g. in CI",
    ),
)
@click.option(
    "--anchor",
    metavar="HASH",
    help="A record hash published earlier (e.g. in a CI log): fail if the trail lost it.",
)
@click.option(
    "--anchor-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Keep the head of a pushed trail (git store with a remote) in DIR, e.g. a CI "
    "cache, instead of the per-user state: fail if the trail lost the head kept there, "
    "move it forward when the trail verifies.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: cd-checks.yml at the repository root).",
)
@click.option("--format", "output_format", type=click.Choice(("text", "json")), default="text")
@click.pass_context
def verify_command(
    ctx: click.Context,
    anchor: str | None,
    anchor_dir: Path | None,
    config_path: Path | None,
    output_format: str,
) -> int:
    """Check the hash chain, every signature and the head: name every record that fails.

    Fails (exit 1) on an edited, deleted, inserted or reordered record, a bad signature
    or one by a key no allowed signers file lists, a missing signature where one is
    required, a head seen here before (or kept in --anchor-dir) that the trail lost or
    changed (cut off, rewritten, force-pushed), and on the HASH of `--anchor` missing
    from the trail.
    """
    trail = _trail(ctx, config_path=config_path)
    if anchor_dir is not None:
        trail = _anchored_in(trail, anchor_dir)
    leftovers(_root(ctx), trail)
    previous = trail.anchor.read() if trail.anchor is not None else None
    verdict = trail.verdict(published=anchor)
    if output_format == "json":
        click.echo(
            escaping.defuse_json(json.dumps(_verdict_json(trail, verdict, previous), indent=2))
        )
    else:
        _echo_verdict(trail, verdict)
    if not verdict.ok:
        count = len(verdict.problems)
        _say(f"audit trail {trail.store.describe()}: {count} problem(s)", err=True)
        if previous is not None and trail.anchor is not None and verdict.broken:
            where = "an earlier run kept" if anchor_dir else "last seen here is kept"
            _say(
                f"cd-checks: the head {where} in {trail.anchor.path}; only if this "
                "trail was reset on purpose, remove that file"
                + (" (and the CI cache it came from)" if anchor_dir else ""),
                err=True,
            )
        ctx.exit(1)
    if verdict.records and trail.anchor is not None:
        try:
            trail.anchor.advance(verdict.records[-1])
        except AuditError as exc:
            _say(f"cd-checks: warning: {exc}", err=True)
    return 0


def _anchored_in(trail: AuditTrail, directory: Path) -> AuditTrail:
    """The trail with its anchor in `directory` (`--anchor-dir`), said on stderr.

    Only a git trail pushed to a remote outlives a CI job: a file trail, or a branch
    that is not pushed, starts anew in each checkout, so a head kept from an earlier
    job would fail every later one as cut off.
    """
    from cd_checks.audit.anchor import AnchorFile
    from cd_checks.audit.integrity import location
    from cd_checks.audit.store import GitBranchStore

    store = trail.store
    if not isinstance(store, GitBranchStore) or not store.remote:
        _say(
            f"cd-checks: note: --anchor-dir: the trail {store.describe()} lives in this "
            "checkout, not on a remote: no head is kept for it",
            err=True,
        )
        return replace(trail, anchor=None)
    kept = AnchorFile.of(directory, location(store))
    if kept.read() is None:
        _say(
            f"cd-checks: warning: --anchor-dir: no head of this trail kept in {directory} "
            "yet (a first run, or the cache was lost): records cut off its end before "
            "now cannot be detected; its head is kept from this run on",
            err=True,
        )
    return replace(trail, anchor=kept)


def _echo_verdict(trail: AuditTrail, verdict: Verdict) -> None:
    for problem in verdict.problems:
        _say(f"{problem.kind}: {escaping.escape_controls(problem.message, keep='')}")
    if not verdict.ok:
        return
    records = verdict.records
    if verdict.unsigned:
        seqs = [records[i].seq for i in verdict.unsigned]
        _say(
            f"unsigned: {len(seqs)} record(s) (#{seqs[0]}..#{seqs[-1]}) carry no signature: "
            "the chain links them, nothing shows who wrote them"
        )
    signers = ", ".join(f"{who}: {n}" for who, n in sorted(verdict.signers().items()))
    signed = sum(verdict.signers().values())
    _say(
        f"audit trail {trail.store.describe()}: {len(records)} records, chain intact, "
        f"{signed} signed{f' ({signers})' if signers else ''}, {len(verdict.unsigned)} unsigned"
    )
    _say(f"head #{records[-1].seq} {records[-1].hash}" if records else "head (empty)")


def _verdict_json(trail: AuditTrail, verdict: Verdict, previous: Anchor | None) -> dict[str, Any]:
    head = verdict.records[-1] if verdict.records else None
    return {
        "trail": trail.store.describe(),
        "ok": verdict.ok,
        "records": len(verdict.records),
        "head": {"seq": head.seq, "id": head.id, "hash": head.hash} if head else None,
        "anchor": asdict(previous) if previous else None,
        "anchor_file": str(trail.anchor.path) if trail.anchor is not None else None,
        "signed": verdict.signers(),
        "unsigned": [verdict.records[i].seq for i in verdict.unsigned],
        "problems": [
            {"kind": p.kind, "position": p.position, "id": p.record_id, "message": p.message}
            for p in verdict.problems
        ],
    }


@audit.command(
    "repair",
    epilog=examples(
        "cd-checks audit repair        # show the lines it would move out of the trail",
        "cd-checks audit repair --yes  # move them to a side file and record the repair",
    ),
)
@click.option("--yes", is_flag=True, help="Do it (without --yes: only show what it would do).")
@click.pass_context
def repair_command(ctx: click.Context, yes: bool) -> int:
    """Move the lines of the trail that are not audit records to a side file.

    Each removed line is kept, with its line number, in <trail>.repair-<UTC time>,
    and a `repair` record in the trail names it by line number and sha256. A
    record that reads but breaks the chain is never removed: audit verify keeps
    naming it.
    """
    from cd_checks.audit import repair
    from cd_checks.audit.trail import new_id

    root = _root(ctx)
    trail = _trail(ctx)
    store = repair.file_store(trail.store)
    leftovers(root, trail)
    if not yes:
        return _repair_plan(store.bad_lines(), store.path)
    identity = identify(dict(os.environ), repo=root, git=git_runner(root))
    done = repair.repair(store, identity=identity, now=_now, make_id=new_id)
    if done is None:
        return _repair_plan([], store.path)
    for line in done.removed:
        _say(line.describe())
    _say(
        f"moved {len(done.removed)} line(s) to {done.side_file}; repair recorded as "
        f"{done.record.id}. Every line that reads as a record was kept: "
        "`cd-checks audit verify` checks their chain"
    )
    return 0


def _repair_plan(bad: list[BadLine], path: Path) -> int:
    for line in bad:
        _say(line.describe())
    if not bad:
        _say(f"audit trail {path}: every line is an audit record, nothing to repair")
        return 0
    _say(
        f"would move {len(bad)} line(s) to {path}.repair-<UTC time> and record the repair; "
        "nothing changed (a dry run): `cd-checks audit repair --yes` does it"
    )
    return 0


@click.group(
    epilog=examples(
        'cd-checks incident open --deploy 20250301T101500Z-3fa2c1 --summary "5xx on /api"',
        "cd-checks incident resolve 20250301T113000Z-9b0e47",
    )
)
def incident() -> None:
    """Deploy-caused incidents found after a rollout (for time to restore)."""


@incident.command(
    "open",
    epilog=examples(
        'cd-checks incident open --deploy 20250301T101500Z-3fa2c1 --summary "5xx on /api"',
        "cd-checks incident open --deploy 20250301T101500Z-3fa2c1 --detected-at 2025-03-01T10:40Z",
    ),
)
@click.option("--deploy", "deploy_id", required=True, help="The deploy that caused it.")
@click.option("--summary", default="", help="What is broken.")
@click.option("--detected-at", help="When it was detected (ISO 8601; default now).")
@click.pass_context
def open_command(ctx: click.Context, deploy_id: str, summary: str, detected_at: str | None) -> None:
    """Record an incident caused by a deploy; prints the incident id."""
    record = incidents.open_incident(
        _trail(ctx),
        deploy_id,
        actor=_actor(ctx),
        summary=summary,
        detected_at=_time(detected_at, "--detected-at"),
    )
    _say(record.id)


@incident.command(
    epilog=examples(
        "cd-checks incident resolve 20250301T113000Z-9b0e47",
        "cd-checks incident resolve 20250301T113000Z-9b0e47 --restored-at 2025-03-01T11:05Z",
    )
)
@click.argument("incident_id", metavar="ID")
@click.option("--restored-at", help="When service was restored (ISO 8601; default now).")
@click.pass_context
def resolve(ctx: click.Context, incident_id: str, restored_at: str | None) -> None:
    """Record that an incident's service is restored."""
    record = incidents.resolve(
        _trail(ctx), incident_id, actor=_actor(ctx), restored_at=_time(restored_at, "--restored-at")
    )
    _say(f"incident {incident_id} resolved at {record.ended_at} ({record.id})")


@click.group(
    epilog=examples(
        "cd-checks postmortem list",
        "cd-checks postmortem record 20250301T101500Z-3fa2c1 --file postmortem.md",
    )
)
def postmortem() -> None:
    """Post-mortems owed by break-glass deploys."""


@postmortem.command(
    "record",
    epilog=examples(
        "cd-checks postmortem record 20250301T101500Z-3fa2c1 --file postmortem.md",
        "cd-checks postmortem record DEPLOY_ID --file docs/postmortems/INC-123.md",
    ),
)
@click.argument("deploy_id", metavar="DEPLOY_ID")
@click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Markdown with sections: summary, timeline, root cause, actions.",
)
@click.pass_context
def record_command(ctx: click.Context, deploy_id: str, path: Path) -> None:
    """Record the post-mortem of a break-glass deploy, clearing its obligation."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    record = incidents.record_postmortem(
        _trail(ctx), deploy_id, actor=_actor(ctx), text=text, source=str(path)
    )
    _say(f"post-mortem recorded for deploy {record.refs[0]} ({record.id})")


@postmortem.command(
    "list",
    epilog=examples("cd-checks postmortem list", "cd-checks postmortem list -e production"),
)
@click.option("--environment", "-e", help="Only this environment.")
@click.pass_context
def list_command(ctx: click.Context, environment: str | None) -> None:
    """Open post-mortem obligations, with their deadlines."""
    trail = _trail(ctx)
    leftovers(_root(ctx), trail)
    owed = breakglass.obligations(trail.records(), _now(), _hours(ctx), environment)
    for obligation in owed:
        _say(f"{obligation.state.upper()}: {obligation.describe()}")
    if not owed:
        _say("no post-mortem owed")


@click.command(
    "metrics",
    epilog=examples(
        "cd-checks metrics                          # the last 90 days of production",
        "cd-checks metrics --change patches --since 12w   # one change type of `changes:`",
        "cd-checks metrics --format html -o metrics.html",
    ),
)
@click.option("--since", default="90d", show_default=True, help="Window: 90d, 12w or an ISO date.")
@click.option("--environment", "-e", default=metrics.DEFAULT_ENVIRONMENT, show_default=True)
@click.option(
    "--change",
    metavar="NAME",
    help="Only this change type (`changes:` in the config); default: each type and all.",
)
@click.option("--branch", default="main", show_default=True, help="The default branch.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(tuple(metrics.RENDERERS)),
    default="text",
    show_default=True,
)
@_OUTPUT
@click.pass_context
def metrics_command(
    ctx: click.Context,
    since: str,
    environment: str,
    change: str | None,
    branch: str,
    output_format: str,
    output: Path | None,
) -> None:
    """Deploy frequency, change failure rate, time to restore, % through the pipeline,
    per change type and overall when the config names change types."""
    now = _now()
    trail = _trail(ctx)
    leftovers(_root(ctx), trail)
    records = trail.records()
    types = _change_types(ctx)
    if change is not None and not types:
        raise InputError(f"--change {change}: cd-checks.yml names no change types (`changes:`)")
    if change is not None:
        metrics.check_change(change, records, [str(t.name) for t in types])
    configured = _deployed_to(types, change) if types else _environments(ctx)
    metrics.check_environment(environment, records, configured)
    result = metrics.compute(
        records,
        metrics.history(_root(ctx), branch, files=bool(types)),
        since=metrics.parse_since(since, now),
        until=now,
        environment=environment,
        types=types,
        change=change,
    )
    _write(metrics.RENDERERS[output_format](result), output)
