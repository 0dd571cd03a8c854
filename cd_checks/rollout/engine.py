"""The rollout state machine: apply a wave, gate it, go on or roll back.

`run` takes the environment locks, refuses to start over an interrupted or
failed run (unless resuming), checks that earlier stages passed for this
revision, then for every wave of every requested stage: records the hosts
about to change, applies, gates. A failed apply or gate stops the rollout
and, when automatic rollback is on, re-applies the environment's last
known-good revision to every host that received the change in this rollout
(earlier stages of the same environment included, later waves never),
then gates those hosts again. `rollback` does the same on demand.

Before its first rollout verifies, an environment has no known-good
revision: the rollback target is then the deploy's base revision, which
each run finds (`History.base`) and keeps in its run record and audit start
record before it touches a host. A root commit has none: then only
`cd-checks rollback --to REV` can undo it.

What a failure does is the failure policy (`rollout.on_failure`, or the
run's own): `rollback` (the above), `pause` (the hosts stay as they are, the
run record says `paused`, exit 4; `rollout run --resume` accepts the paused
wave and goes on with the next one, `cd-checks rollback` undoes it) or
`halt` (for irreversible changes: no rollback is attempted, the run fails
and the record says `halted`; a later revision may roll forward over it). An
inconclusive metric gate follows `rollout.on_inconclusive` (pause by
default). A stage with a metric gate starts only when Prometheus answers and
none of its alerts fires.

Break-glass (`override_gates`): a failed health gate is recorded in the
wave's result and in the notes, and the rollout goes on to the next wave
and stage without rolling back; an applier failure still stops the rollout
(and rolls back as usual), since hosts that did not take the change cannot
be gated meaningfully.

Every side effect is a part passed in (applier, gate, git workspace, state
directory, known-good store, history, progress reporter), so unit tests run the real
state machine on fakes and end-to-end tests on ansible, testinfra and ssh.
The engine returns a frozen `RolloutResult`; it never prints or exits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from cd_checks.errors import CdChecksError, RolloutError
from cd_checks.rollout.apply import Applier, ApplyResult
from cd_checks.rollout.health import Gate, GateResult
from cd_checks.rollout.inventory import Host, Inventory
from cd_checks.rollout.plan import Plan, StagePlan
from cd_checks.rollout.progress import Event, Reporter, silent
from cd_checks.rollout.spec import RolloutSpec, Stage
from cd_checks.rollout.state import KnownGoodStore, LockHolder, RunRecord, StateDir, Status
from cd_checks.rollout.workspace import Workspace


class Observer(Protocol):
    """Told about every stage run and every on-demand rollback (the audit trail's hook).

    An exception from a `*_started` call stops the run before any host of that stage
    (or rollback) is touched: no unaudited deploy. Automatic rollbacks are part of
    the stage and reach `stage_finished`. A `*_started` call returns the run's id
    (kept in the run record); `run_interrupted` closes the run of a killed process
    (`deploy_id`) on behalf of the run `by` that resumes or rolls it back.
    """

    def stage_started(
        self, stage: StagePlan, revision: str, known_good: str | None, base: str | None
    ) -> str | None: ...

    def stage_finished(
        self,
        stage: StagePlan,
        revision: str,
        waves: tuple[WaveResult, ...],
        failure: str | None,
        rollback: RollbackResult | None,
        stopped: str | None = None,
    ) -> None: ...

    def rollback_started(
        self, environment: str, hosts: tuple[str, ...], target: str, current: str | None
    ) -> str | None: ...

    def rollback_finished(self, environment: str, result: RollbackResult) -> None: ...

    def run_interrupted(self, environment: str, deploy_id: str, by: str | None) -> None: ...


class NoObserver:
    """The observer that does nothing."""

    def stage_started(
        self, stage: StagePlan, revision: str, known_good: str | None, base: str | None
    ) -> str | None:
        return None

    def stage_finished(
        self,
        stage: StagePlan,
        revision: str,
        waves: tuple[WaveResult, ...],
        failure: str | None,
        rollback: RollbackResult | None,
        stopped: str | None = None,
    ) -> None:
        return None

    def rollback_started(
        self, environment: str, hosts: tuple[str, ...], target: str, current: str | None
    ) -> str | None:
        return None

    def rollback_finished(self, environment: str, result: RollbackResult) -> None:
        return None

    def run_interrupted(self, environment: str, deploy_id: str, by: str | None) -> None:
        return None


@dataclass(frozen=True)
class Base:
    """The revision to fall back to while an environment has no known-good one, and how
    it was found (e.g. "the parent of 1a2b3c4d5e6f")."""

    revision: str
    reason: str


class History(Protocol):
    """What the engine asks about an environment's past beyond its state directory.

    `base`: the revision the hosts of `environment` ran before `revision` (the deploy's
    base revision: what the environment was last rolled back to, else the first parent
    of `revision`); None when there is none (a root commit). `failed_run`: the
    environment's last rollout as the audit trail tells it, when it failed and was not
    rolled back and verified (a rollback job in a fresh CI checkout has no state
    directory); None otherwise.
    """

    def base(self, environment: str, revision: str) -> Base | None: ...

    def failed_run(self, environment: str) -> RunRecord | None: ...


@dataclass(frozen=True)
class Parts:
    inventory: Inventory
    spec: RolloutSpec
    applier: Applier
    gate: Gate
    workspace: Workspace
    state: StateDir
    known_good: KnownGoodStore
    history: History
    report: Reporter = silent
    observer: Observer = field(default_factory=NoObserver)


@dataclass(frozen=True)
class WaveResult:
    stage: str
    number: int
    hosts: tuple[str, ...]
    apply: ApplyResult | None
    gate: GateResult | None
    applied_at: str | None = None  # when its apply started: the change reached its hosts

    @property
    def ok(self) -> bool:
        applied = self.apply is None or self.apply.ok
        return applied and self.gate is not None and self.gate.passed


@dataclass(frozen=True)
class RollbackResult:
    environment: str
    revision: str | None
    hosts: tuple[str, ...]
    apply: ApplyResult | None
    gate: GateResult | None
    reason: str = ""
    missing: tuple[str, ...] = ()  # hosts no longer in the inventory: never verified
    detected_at: str | None = None  # when the first failed check was seen
    restored_at: str | None = None  # when the rollback verified
    exposed_at: str | None = None  # when the change reached the stage's first host
    basis: str = ""  # which revision it went back to and why (known-good, base, --to)

    @property
    def verified(self) -> bool:
        applied = bool(self.apply and self.apply.ok and self.gate and self.gate.passed)
        return applied and not self.missing


@dataclass(frozen=True)
class RolloutResult:
    revision: str
    environment: str | None
    stages: tuple[str, ...]
    waves: tuple[WaveResult, ...]
    failure: str | None = None
    rollback: RollbackResult | None = None
    notes: tuple[str, ...] = ()
    stopped: str | None = None  # "paused" | "halted": the failure policy left the hosts

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def forced(self) -> tuple[str, ...]:
        """Hosts break-glass pushed past their failed health gate: left on the new revision."""
        return _hosts_of(w for w in self.waves if _stops(w, override=True) is None)

    @property
    def unhealthy(self) -> tuple[str, ...]:
        """Hosts a passing gate let through within `max_failed_percent`, still failing checks."""
        return _hosts_of(w for w in self.waves if w.ok)

    @property
    def exit_code(self) -> int:
        """0 done, 1 failed (rolled back or not), 4 paused: resume or roll back,
        5 done only because break-glass overrode failed health gates."""
        if self.ok:
            return EXIT_FORCED if self.forced else 0
        return EXIT_PAUSED if self.stopped == "paused" else 1


def _hosts_of(waves: Iterable[WaveResult]) -> tuple[str, ...]:
    failed = (h for w in waves if w.gate is not None for h in w.gate.failed_hosts)
    return tuple(dict.fromkeys(failed))


EXIT_PAUSED = 4
EXIT_FORCED = 5
POLICIES = ("rollback", "pause", "halt")


@dataclass(frozen=True)
class _Start:
    """Where a stage starts: its record, the first wave index and whether it is applied already."""

    record: RunRecord
    first: int = 0
    regate_only: bool = False


def run(
    parts: Parts,
    plan: Plan,
    stages: Sequence[str],
    *,
    holder: LockHolder,
    resume: bool = False,
    break_lock: bool = False,
    override_gates: bool = False,
    on_failure: str | None = None,
) -> RolloutResult:
    """Run the named stages of `plan` in order; see the module docstring.

    `on_failure` is this run's failure policy instead of the pipeline's.
    """
    environments = list(dict.fromkeys(plan.stage(s).environment for s in stages))
    notes: list[str] = []
    taken: list[str] = []
    try:
        for environment in environments:
            notes += parts.state.acquire(environment, holder, break_lock=break_lock)
            taken.append(environment)
        try:
            starts = _starts(parts, plan, stages, resume=resume)
        except RolloutError as exc:
            raise RolloutError("; ".join([str(exc), *notes])) from exc
        policy = on_failure or parts.spec.on_failure
        return _run_stages(parts, plan, stages, starts, tuple(notes), override_gates, policy)
    finally:
        for environment in taken:
            parts.state.release(environment, holder)


def _starts(parts: Parts, plan: Plan, stages: Sequence[str], *, resume: bool) -> dict[str, _Start]:
    """Per-environment starting points; refuses over interrupted or failed runs."""
    starts = _resume_points(parts, plan, stages) if resume else {}
    for environment in dict.fromkeys(plan.stage(s).environment for s in stages):
        if environment not in starts:
            _refuse_unfinished(parts.state.record(environment), plan.revision)
    if not resume:
        _check_order(parts, plan, stages)
    return starts


def paused_text(record: RunRecord) -> str:
    """What a paused rollout is waiting for."""
    return (
        f"the rollout of {record.revision[:12]} to environment {record.environment} is paused "
        f"at stage {record.stage} wave {record.waves_started} "
        f"({record.failure or 'no reason recorded'}); {changed_text(record)}: "
        "go on with `cd-checks rollout run --resume` or undo it with `cd-checks rollback`"
    )


def changed_text(record: RunRecord) -> str:
    """How many hosts a stopped run changed: those of waves whose apply finished, and
    those of a wave whose apply was interrupted (which may or may not have changed)."""
    interrupted: tuple[str, ...] = ()
    if record.waves_applied < record.waves_started <= len(record.waves):
        interrupted = tuple(record.waves[record.waves_started - 1])
    done = [h for h in record.applied if h not in interrupted]
    text = f"{len(done)} host(s) changed"
    if interrupted:
        text += (
            f" and {len(interrupted)} more may have been (the apply of wave "
            f"{record.waves_started} was interrupted: {', '.join(interrupted)})"
        )
    return text


def _refuse_unfinished(record: RunRecord | None, revision: str) -> None:
    if record is None or record.status == "open":
        return
    what = f"rollout of {record.revision[:12]} to environment {record.environment}"
    if record.status == "rolling_back":
        raise RolloutError(rolling_back_text(record))
    if record.status == "paused":
        raise RolloutError(paused_text(record))
    if record.status == "halted" and record.revision != revision:
        return
    if record.status == "halted":
        raise RolloutError(
            f"the {what} halted ({record.failure or 'unknown failure'}); no rollback was "
            "attempted (on_failure: halt): roll forward with a new revision, or undo it with "
            "`cd-checks rollback --to REV`"
        )
    if record.status == "running":
        raise RolloutError(
            f"an interrupted {what} (stage {record.stage}, pid {record.pid}, started "
            f"{record.started}) left {changed_text(record)}; "
            "continue it with `cd-checks rollout run --resume` or undo it with `cd-checks rollback`"
        )
    fallback = "" if record.base else " (with --to REV if there is no known-good revision)"
    raise RolloutError(
        f"the last {what} failed and was not rolled back and verified; "
        f"run `cd-checks rollback`{fallback}"
    )


def rolling_back_text(record: RunRecord) -> str:
    """Why a run killed during its automatic rollback cannot be resumed."""
    target = (record.target or "the known-good revision")[:12]
    return (
        f"the rollout of {record.revision[:12]} to environment {record.environment} failed "
        f"({record.failure or 'unknown failure'}) and was killed while rolling back to "
        f"{target}; it cannot be resumed: finish the rollback with `cd-checks rollback`"
    )


def _resume_points(parts: Parts, plan: Plan, stages: Sequence[str]) -> dict[str, _Start]:
    starts: dict[str, _Start] = {}
    for environment in dict.fromkeys(plan.stage(s).environment for s in stages):
        record = parts.state.record(environment)
        if record is not None and record.status == "rolling_back":
            raise RolloutError(rolling_back_text(record))
        if record is None or record.status not in ("running", "paused"):
            continue
        if record.revision != plan.revision:
            raise RolloutError(
                f"the interrupted run of environment {environment} deployed "
                f"{record.revision[:12]}, not {plan.revision[:12]}: resume with --revision "
                f"{record.revision}"
            )
        if record.stage not in stages:
            raise RolloutError(
                f"the interrupted run of environment {environment} was in stage {record.stage}: "
                f"resume with --stage {record.stage} (or --all)"
            )
        first = max(record.waves_started - 1, 0)
        regate = record.waves_started > 0 and record.waves_applied >= record.waves_started
        if record.status == "paused" and regate:
            # The operator accepts the paused wave: the next wave is applied and gated.
            first, regate = record.waves_started, False
        starts[environment] = _Start(record, first, regate)
    if not starts:
        raise RolloutError("nothing to resume: no interrupted or paused run in these environments")
    return starts


def _check_order(parts: Parts, plan: Plan, stages: Sequence[str]) -> None:
    """Earlier stages must have passed for this revision, as a pipeline would enforce."""
    names = [s.name for s in parts.spec.stages]
    first = min(names.index(s) for s in stages)
    for earlier in parts.spec.stages[:first]:
        if not _completed(parts, earlier, plan.revision):
            raise RolloutError(
                f"stage {names[first]} needs stage {earlier.name} to have passed for "
                f"{plan.revision[:12]} first: run `cd-checks rollout run --stage {earlier.name}` "
                "(or --all)"
            )


def _completed(parts: Parts, stage: Stage, revision: str) -> bool:
    record = parts.state.record(stage.environment)
    if record is not None and record.revision == revision:
        return stage.name in record.completed_stages
    return parts.known_good.get(stage.environment) == revision


def _run_stages(
    parts: Parts,
    plan: Plan,
    stages: Sequence[str],
    starts: dict[str, _Start],
    notes: tuple[str, ...],
    override: bool = False,
    policy: str = "rollback",
) -> RolloutResult:
    waves: list[WaveResult] = []
    for name in _stages_from(plan, stages, starts):
        stage = plan.stage(name)
        blocked = parts.gate.before_stage(stage.name, parts.spec.metrics_of(stage.name))
        if blocked is not None:
            parts.report(Event(stage.name, -1, "*", "stage", "failed", blocked))
            return RolloutResult(
                plan.revision, stage.environment, tuple(stages), tuple(waves), blocked, None, notes
            )
        resumed = starts.pop(stage.environment, None)
        if resumed is not None and resumed.record.status == "paused":
            notes += (_accepted(resumed.record, parts.state.me("").describe()),)
        start = resumed or _Start(_new_record(parts, plan, stage))
        start = replace(start, record=_with_base(parts, start.record))
        known_good = parts.known_good.get(stage.environment)
        base = start.record.base
        deploy_id = parts.observer.stage_started(stage, plan.revision, known_good, base)
        _close_interrupted(parts, start.record, deploy_id)
        start = replace(start, record=replace(start.record, audit_id=deploy_id))
        outcome, record = _run_stage(parts, plan, stage, start, override)
        waves += outcome
        if override:
            notes += tuple(_overridden(w) for w in outcome if _stops(w, override=True) is None)
        if outcome and _stops(outcome[-1], override=override):
            failure = _failure_text(outcome[-1])
            chosen = _policy(parts, outcome[-1], policy)
            if chosen != "rollback":
                return _stop(parts, plan, stages, stage, record, outcome, waves, notes, chosen)
            rollback = _after_failure(parts, record, failure, _times(parts, outcome))
            parts.observer.stage_finished(stage, plan.revision, tuple(outcome), failure, rollback)
            _forget_audit_id(parts, stage.environment)
            notes += (rollback.basis,) if rollback.basis else ()
            return RolloutResult(
                plan.revision,
                stage.environment,
                tuple(stages),
                tuple(waves),
                failure,
                rollback,
                notes,
            )
        # A stage break-glass forced past a failed gate is recorded as `forced`, and its
        # revision does not become known-good: its gates said it is not good.
        forced = override and any(_stops(w, override=True) is None for w in outcome)
        _finish_stage(parts, record, stage, known_good=not forced)
        parts.observer.stage_finished(
            stage, plan.revision, tuple(outcome), None, None, *(("forced",) if forced else ())
        )
    return RolloutResult(plan.revision, None, tuple(stages), tuple(waves), notes=notes)


def _policy(parts: Parts, wave: WaveResult, on_failure: str) -> str:
    """What the failure of `wave` calls for: an inconclusive metric gate has its own policy."""
    applied = wave.apply is None or wave.apply.ok
    if applied and wave.gate is not None and wave.gate.inconclusive:
        return parts.spec.on_inconclusive
    return on_failure


def _stop(
    parts: Parts,
    plan: Plan,
    stages: Sequence[str],
    stage: StagePlan,
    record: RunRecord,
    outcome: list[WaveResult],
    waves: list[WaveResult],
    notes: tuple[str, ...],
    policy: str,
) -> RolloutResult:
    """Pause or halt: the hosts stay as they are; the record says why and what comes next."""
    failure = _failure_text(outcome[-1])
    stopped: Status = "paused" if policy == "pause" else "halted"
    record = replace(record, status=stopped, failure=failure, audit_id=None)
    parts.state.save(record)
    parts.observer.stage_finished(stage, plan.revision, tuple(outcome), failure, None, stopped)
    if stopped == "paused":
        what = paused_text(record)
    else:
        what = (
            f"halted (on_failure: halt): no rollback attempted; {len(record.applied)} host(s) "
            "run the new revision: roll forward with a fix, or `cd-checks rollback --to REV`"
        )
    parts.report(Event(stage.name, -1, "*", stopped, "failed", what))
    return RolloutResult(
        plan.revision,
        stage.environment,
        tuple(stages),
        tuple(waves),
        failure,
        None,
        (*notes, what),
        stopped,
    )


def _accepted(record: RunRecord, by: str) -> str:
    return (
        f"resumed a paused rollout: wave {record.waves_started} of stage {record.stage} "
        f"({record.failure or 'no reason recorded'}) accepted by {by}"
    )


def _close_interrupted(parts: Parts, record: RunRecord, by: str | None) -> None:
    """The killed run that left `record` still owes its final audit record: write it."""
    if record.audit_id is not None:
        parts.observer.run_interrupted(record.environment, record.audit_id, by)


def _forget_audit_id(parts: Parts, environment: str) -> None:
    """The stage's final record is written: a later rollback must not close it again."""
    record = parts.state.record(environment)
    if record is not None and record.audit_id is not None:
        parts.state.save(replace(record, audit_id=None))


def _stops(wave: WaveResult, *, override: bool) -> bool | None:
    """Whether a wave stops the rollout; None for a gate failure break-glass overrides."""
    if wave.ok:
        return False
    applied = wave.apply is None or wave.apply.ok
    if override and applied and wave.gate is not None:
        return None
    return True


def _overridden(wave: WaveResult) -> str:
    failed = ", ".join(wave.gate.failed_hosts) if wave.gate else ""
    return (
        f"break-glass: the health gate of stage {wave.stage} wave {wave.number} failed on "
        f"{failed}; proceeded without rollback"
    )


def _stages_from(plan: Plan, stages: Sequence[str], starts: dict[str, _Start]) -> list[str]:
    """With --resume, skip the requested stages before the interrupted one."""
    names = list(stages)
    for start in starts.values():
        if start.record.stage in names:
            names = names[names.index(start.record.stage) :]
    return names


def _new_record(parts: Parts, plan: Plan, stage: StagePlan) -> RunRecord:
    previous = parts.state.record(stage.environment)
    same = previous is not None and previous.revision == plan.revision
    me = parts.state.me("")
    return RunRecord(
        environment=stage.environment,
        revision=plan.revision,
        status="running",
        stage=stage.name,
        waves=stage.waves,
        # Hosts an unfinished earlier rollout of this environment changed are still not on
        # the known-good revision: a rollback must put them back too.
        applied=previous.applied if previous is not None else (),
        completed_stages=previous.completed_stages if same and previous else (),
        pid=me.pid,
        started=me.started,
        # ... and they ran that rollout's base before it, not this one's.
        base=previous.base if previous is not None else None,
        base_reason=previous.base_reason if previous is not None else "",
    )


def _with_base(parts: Parts, record: RunRecord) -> RunRecord:
    """The record with its base revision found, before any host of the run is touched."""
    if record.base is not None:
        return record
    base = parts.history.base(record.environment, record.revision)
    if base is None:
        return record
    return replace(record, base=base.revision, base_reason=base.reason)


def _run_stage(
    parts: Parts, plan: Plan, stage: StagePlan, start: _Start, override: bool = False
) -> tuple[list[WaveResult], RunRecord]:
    record = replace(start.record, status="running", stage=stage.name, waves=start.record.waves)
    parts.state.save(record)
    results: list[WaveResult] = []
    with parts.workspace.checkout(plan.revision) as workdir:
        for index in range(start.first, len(record.waves)):
            regate = start.regate_only and index == start.first
            result, record = _run_wave(parts, stage, record, index, workdir, regate=regate)
            results.append(result)
            if _stops(result, override=override):
                break
    return results, record


def _run_wave(
    parts: Parts, stage: StagePlan, record: RunRecord, index: int, workdir: Path, *, regate: bool
) -> tuple[WaveResult, RunRecord]:
    number, names = index + 1, record.waves[index]
    hosts = _hosts(parts.inventory, names)
    applied: ApplyResult | None = None
    started: str | None = None
    if not regate:
        record = replace(record, waves_started=number).with_applied(names)
        parts.state.save(record)
        started = parts.state.now()
        applied = _apply(parts, hosts, record.revision, stage.name, number, workdir)
        if not applied.ok:
            return WaveResult(stage.name, number, names, applied, None, started), record
        record = replace(record, waves_applied=number)
        parts.state.save(record)
    parts.report(Event(stage.name, number, "*", "gate", "start", ", ".join(names)))
    gate = parts.gate.check(
        hosts,
        workdir=workdir,
        stage=stage.name,
        wave=number,
        report=parts.report,
        baseline=_baseline(parts.inventory, stage, record),
        metrics=parts.spec.metrics_of(stage.name),
    )
    return WaveResult(stage.name, number, names, applied, gate, started), record


def _baseline(inventory: Inventory, stage: StagePlan, record: RunRecord) -> list[Host]:
    """The hosts of the stage's group that have not received the change: the canary's baseline."""
    changed = set(record.applied)
    return [inventory.host(n) for n in inventory.group(stage.group) if n not in changed]


def _hosts(inventory: Inventory, names: Sequence[str]) -> list[Host]:
    missing = [n for n in names if n not in inventory.hosts]
    if missing:
        raise RolloutError(
            f"host(s) {', '.join(missing)} of the planned wave are not in {inventory.source} "
            "any more: roll back with `cd-checks rollback`"
        )
    return [inventory.host(n) for n in names]


def _apply(
    parts: Parts, hosts: Sequence[Host], revision: str, stage: str, wave: int, workdir: Path
) -> ApplyResult:
    names = ", ".join(h.name for h in hosts)
    parts.report(Event(stage, wave, "*", "apply", "start", f"{revision[:12]} -> {names}"))
    result = parts.applier.apply(hosts, revision=revision, stage=stage, wave=wave, workdir=workdir)
    for host in hosts:
        failed = host.name in result.failed_hosts
        parts.report(Event(stage, wave, host.name, "apply", "failed" if failed else "ok"))
    if not result.ok and not result.failed_hosts:
        parts.report(Event(stage, wave, "*", "apply", "failed", result.failure))
    return result


def _finish_stage(
    parts: Parts, record: RunRecord, stage: StagePlan, *, known_good: bool = True
) -> None:
    record = replace(record, completed_stages=(*record.completed_stages, stage.name))
    last = parts.spec.stages_of(stage.environment)[-1].name
    if stage.name == last:
        parts.state.close(stage.environment, "done", record.revision)
        if known_good:
            parts.known_good.set(stage.environment, record.revision)
            parts.report(Event(stage.name, -1, "*", "known-good", "ok", record.revision[:12]))
    else:
        parts.state.save(replace(record, status="open", audit_id=None))


def _failure_text(wave: WaveResult) -> str:
    where = f"stage {wave.stage} wave {wave.number}"
    if wave.apply is not None and not wave.apply.ok:
        hosts = ", ".join(wave.apply.failed_hosts) or "the wave"
        return f"{where}: apply failed ({wave.apply.failure}) on {hosts}"
    assert wave.gate is not None
    failed = wave.gate.failed_hosts
    analysis = wave.gate.analysis
    if wave.gate.hosts_ok and analysis is not None:
        verdict = "inconclusive" if wave.gate.inconclusive else "failed"
        return f"{where}: metric gate {verdict}: {analysis.summary}"
    return (
        f"{where}: health gate failed on {len(failed)} of {len(wave.hosts)} host(s) "
        f"({', '.join(failed)}; allowed {wave.gate.max_failed_percent:g}%)"
    )


def _times(parts: Parts, outcome: Sequence[WaveResult]) -> tuple[str, str | None]:
    """(detected, exposed): when the failing wave's first failed check was seen (else now),
    and when this run's first wave of the stage started its apply."""
    gate = outcome[-1].gate
    seen = gate.first_failure_at if gate is not None else None
    detected = _iso(seen) if seen is not None else parts.state.now()
    exposed = next((w.applied_at for w in outcome if w.applied_at), None)
    return detected, exposed


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _after_failure(
    parts: Parts, record: RunRecord, failure: str, times: tuple[str, str | None]
) -> RollbackResult:
    environment, (detected, exposed) = record.environment, times
    target, basis = _fallback(parts, record)
    record = replace(record, failure=failure)
    if not parts.spec.automatic_rollback:
        parts.state.save(replace(record, status="failed"))
        reason = "automatic rollback is off: run `cd-checks rollback`"
        return RollbackResult(
            environment,
            target,
            record.applied,
            None,
            None,
            reason,
            detected_at=detected,
            exposed_at=exposed,
        )
    if target is None:
        parts.state.save(replace(record, status="failed"))
        reason = (
            f"no known-good revision for environment {environment} yet (first rollout) and "
            f"no base revision: {_root_text(record.revision)}; hosts left as they are; "
            "run `cd-checks rollback --to REV`"
        )
        return RollbackResult(
            environment,
            None,
            record.applied,
            None,
            None,
            reason,
            detected_at=detected,
            exposed_at=exposed,
        )
    # Persisted first: a run killed mid-rollback must not be resumed (see state.py).
    record = replace(record, status="rolling_back", target=target)
    parts.state.save(record)
    result = roll_back(parts, environment, record.applied, target, stage=record.stage, basis=basis)
    result = replace(result, detected_at=detected, exposed_at=exposed)
    if result.verified:
        parts.state.close(environment, "rolled_back", target)
    else:
        parts.state.save(replace(record, status="failed"))
    return result


def _fallback(parts: Parts, record: RunRecord) -> tuple[str | None, str]:
    """Where `record`'s hosts go back to and why: known-good if any, else the deploy's base."""
    environment = record.environment
    known = parts.known_good.get(environment)
    if known is not None:
        return known, (
            f"rolling back to the last known-good revision {known[:12]} of environment "
            f"{environment}"
        )
    base = Base(record.base, record.base_reason) if record.base else None
    # A record written before runs recorded their base: find it now.
    base = base or parts.history.base(environment, record.revision)
    if base is None:
        return None, ""
    return base.revision, (
        f"no known-good revision yet: rolling back to the deploy's base revision "
        f"{base.revision[:12]} ({base.reason})"
    )


def _root_text(revision: str) -> str:
    return f"{revision[:12]} is a root commit (it has no parent)"


def roll_back(
    parts: Parts,
    environment: str,
    hosts: Sequence[str],
    target: str,
    *,
    stage: str,
    basis: str = "",
) -> RollbackResult:
    """Apply `target` to `hosts` from its own worktree, then gate them again.

    `basis` says which revision `target` is and why it was chosen; it is reported first.
    """
    if basis:
        parts.report(Event(stage, 0, "*", "rollback", "info", basis))
    result = _roll_back(parts, environment, tuple(hosts), target, stage=stage)
    return replace(result, basis=basis)


def _roll_back(
    parts: Parts, environment: str, names: tuple[str, ...], target: str, *, stage: str
) -> RollbackResult:
    detected = parts.state.now()
    parts.report(Event(stage, 0, "*", "rollback", "start", f"{target[:12]} -> {', '.join(names)}"))
    if not names:
        reason = "no host had received it"
        return RollbackResult(
            environment, target, names, None, None, reason, (), detected, detected
        )
    found = [parts.inventory.host(n) for n in names if n in parts.inventory.hosts]
    missing = tuple(n for n in names if n not in parts.inventory.hosts)
    why = f"not in the inventory any more: {', '.join(missing)}" if missing else ""
    try:
        with parts.workspace.checkout(target) as workdir:
            applied = _apply(parts, found, target, stage, 0, workdir)
            gate = parts.gate.check(
                found, workdir=workdir, stage=stage, wave=0, report=parts.report
            )
    except CdChecksError as exc:
        return RollbackResult(environment, target, names, None, None, str(exc), missing, detected)
    result = RollbackResult(environment, target, names, applied, gate, why, missing, detected)
    if result.verified:
        result = replace(result, restored_at=parts.state.now())
    verdict = "ok" if result.verified else "failed"
    parts.report(Event(stage, 0, "*", "rollback", verdict, f"verified={result.verified}"))
    return result


def rollback(
    parts: Parts,
    environment: str,
    *,
    holder: LockHolder,
    to: str | None = None,
    break_lock: bool = False,
    all_hosts: Sequence[str] = (),
) -> RolloutResult:
    """`cd-checks rollback`: put the environment's changed hosts back on known-good (or `to`).

    Without known-good, the unfinished rollout's base revision. Without an open or
    failed rollout there is nothing to undo unless `to` names a revision: then every
    host of the environment (`all_hosts`) gets it.
    """
    notes = parts.state.acquire(environment, holder, break_lock=break_lock)
    try:
        return _rollback_locked(parts, environment, to, all_hosts, tuple(notes))
    finally:
        parts.state.release(environment, holder)


def unfinished(parts: Parts, environment: str) -> RunRecord | None:
    """The environment's unfinished rollout: its run record or, in a job without the state
    directory (a fresh CI checkout), the failed run the audit trail remembers."""
    record = parts.state.record(environment)
    if record is None and parts.state.closed(environment) is None:
        return parts.history.failed_run(environment)
    return record


def _rollback_target(
    parts: Parts, environment: str, record: RunRecord | None, to: str | None
) -> tuple[str | None, str]:
    """--to, else the target of a rollback that did not finish, else known-good or base."""
    if to is not None:
        return to, ""
    if record is not None and record.target is not None:
        return record.target, f"finishing the earlier rollback to {record.target[:12]}"
    if record is not None:
        return _fallback(parts, record)
    return parts.known_good.get(environment), ""


def _rollback_locked(
    parts: Parts, environment: str, to: str | None, all_hosts: Sequence[str], notes: tuple[str, ...]
) -> RolloutResult:
    record = unfinished(parts, environment)
    target, basis = _rollback_target(parts, environment, record, to)
    if target is None and record is not None:
        raise RolloutError(
            f"environment {environment} has no known-good revision yet and the rollout of "
            f"{record.revision[:12]} has no base revision to go back to: "
            f"{_root_text(record.revision)}; pass --to REV"
        )
    if target is None:
        raise RolloutError(
            f"environment {environment} has no known-good revision yet: pass --to REV"
        )
    if record is None and to is None:
        closed = parts.state.closed(environment)
        last = f" (its last rollout is {closed.replace('_', ' ')})" if closed else ""
        raise RolloutError(
            f"nothing to roll back: environment {environment} has no unfinished rollout{last} "
            f"and runs known-good {target[:12]}; pass --to REV to deploy an older revision"
        )
    hosts = record.applied if record is not None else tuple(all_hosts)
    stage = record.stage if record is not None else environment
    # What the environment runs now: the unfinished rollout's revision, else known-good.
    current = record.revision if record is not None else parts.known_good.get(environment)
    deploy_id = parts.observer.rollback_started(environment, tuple(hosts), target, current)
    if record is not None:
        _close_interrupted(parts, record, deploy_id)
        record = replace(record, audit_id=None)
        parts.state.save(record)
    result = roll_back(parts, environment, hosts, target, stage=stage, basis=basis)
    parts.observer.rollback_finished(environment, result)
    if result.verified:
        parts.state.close(environment, "rolled_back", target)
        if record is None:
            parts.known_good.set(environment, target)
    elif record is not None:
        parts.state.save(replace(record, status="failed"))
    failure = None if result.verified else f"rollback of environment {environment} did not verify"
    revision = current or target
    notes += (basis,) if basis else ()
    return RolloutResult(revision, environment, (), (), failure, result, notes)
