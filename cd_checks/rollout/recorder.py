"""The engine's `Observer` that writes every stage run and rollback to the audit trail.

`stage_started` appends the start record (what changes, who ran it, who
approved it, the planned waves, break-glass) before any host of the stage is
touched; an `AuditError` there propagates and the engine does not start the
stage. `stage_finished` appends the final record: outcome, every gate result
of every host (rollback gates as wave 0), per-wave apply results and the
rollback. A final record that cannot be written is kept in `final_errors`
(the CLI says so loudly and exits non-zero) and stops the run before its
next stage. The engine knows only the Observer protocol; this module knows
the engine's results and the trail's API, and does no printing.

`TrailHistory` is the engine's `History` read back from the trail (and git):
a deploy's base revision, and the failed run a rollback job without the
state directory (a fresh CI checkout) has to undo, of one change type
(None: the unnamed type, and every record older than change types).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cd_checks.audit.identity import Git, Identity
from cd_checks.audit.record import RUN_KINDS, UNKNOWN, AuditRecord, Json, iso, parse_time
from cd_checks.audit.trail import AuditTrail, BreakGlass, Gate, Rollback
from cd_checks.errors import AuditError
from cd_checks.rollout.analysis import AnalysisResult
from cd_checks.rollout.apply import ApplyResult
from cd_checks.rollout.engine import Base, RollbackResult, WaveResult
from cd_checks.rollout.health import GateResult
from cd_checks.rollout.plan import StagePlan
from cd_checks.rollout.state import RunRecord

if TYPE_CHECKING:
    from cd_checks.rollout.markers import Markers


@dataclass(frozen=True)
class Written:
    """One run the recorder started: its deploy id and, once written, its outcome."""

    deploy_id: str
    kind: str
    environment: str
    stage: str | None
    outcome: str = "started"


@dataclass
class AuditRecorder:
    trail: AuditTrail
    identity: Identity
    break_glass: BreakGlass | None = None
    runs: list[Written] = field(default_factory=list)
    final_errors: list[str] = field(default_factory=list)
    markers: Markers | None = None  # the deploy markers beside it, whose problems the CLI shows
    change: str | None = None  # the change type every record is written for (None: unnamed)
    notes: tuple[str, ...] = ()  # what the run went on without (break-glass past a freeze)
    _open: Written | None = None
    _obliged: set[str] = field(default_factory=set)

    def stage_started(
        self, stage: StagePlan, revision: str, known_good: str | None, base: str | None
    ) -> str:
        self._refuse_after_lost_final(f"stage {stage.name}")
        deploy_id = self.trail.start(
            "stage",
            stage.environment,
            stage.name,
            known_good,
            revision,
            stage.waves,
            # The notes go on the start record, which the break_glass record copies: the
            # post-mortem owed sees what the run went past, even if the run never finishes.
            replace(self.identity, notes=(*self.identity.notes, *self.notes)),
            break_glass=self.break_glass,
            owes_postmortem=stage.environment not in self._obliged,
            base_revision=base,
            change=self.change,
        )
        if self.break_glass is not None:
            self._obliged.add(stage.environment)
            if self.break_glass.run is None:
                self.break_glass = replace(self.break_glass, run=deploy_id)
        self._open = Written(deploy_id, "stage", stage.environment, stage.name)
        self.runs.append(self._open)
        return deploy_id

    def stage_finished(
        self,
        stage: StagePlan,
        revision: str,
        waves: tuple[WaveResult, ...],
        failure: str | None,
        rollback: RollbackResult | None,
        stopped: str | None = None,
    ) -> None:
        gates = [g for w in waves for g in gate_results(w.number, w.gate)]
        if rollback is not None:
            gates += gate_results(0, rollback.gate)
        detail: dict[str, Json] = {"failure": failure, "waves": [_wave_json(w) for w in waves]}
        if rollback is not None:
            detail["rollback_apply"] = _apply_json(rollback.apply)
        if stopped is not None:
            detail["stopped"] = _STOPPED[stopped]
        unhealthy = [h for w in waves if w.gate is not None for h in w.gate.failed_hosts]
        if unhealthy:
            # Hosts that failed their checks and stay on the new revision (a gate passing
            # within max_failed_percent, or break-glass): the trail names them.
            detail["unhealthy_hosts"] = list(dict.fromkeys(unhealthy))
        outcome = stopped or stage_outcome(failure, rollback)
        self._finish(outcome, gates, audit_rollback(rollback), detail)

    def rollback_started(
        self, environment: str, hosts: tuple[str, ...], target: str, current: str | None
    ) -> str:
        self._refuse_after_lost_final(f"the rollback of {environment}")
        deploy_id = self.trail.start(
            "rollback",
            environment,
            None,
            current,
            target,
            [list(hosts)],
            self.identity,
            change=self.change,
        )
        self._open = Written(deploy_id, "rollback", environment, None)
        self.runs.append(self._open)
        return deploy_id

    def run_interrupted(self, environment: str, deploy_id: str, by: str | None) -> None:
        """Close the run of a killed process; AuditError stops the new run (nothing touched)."""
        taken = [by] if by else []
        detail: dict[str, Json] = {"interrupted": "the process running it was killed"}
        if by:
            detail["taken_over_by"] = by
        self.trail.finish(deploy_id, "interrupted", detail=detail, also=taken)
        self.runs.append(Written(deploy_id, "stage", environment, None, "interrupted"))

    def rollback_finished(self, environment: str, result: RollbackResult) -> None:
        outcome = "succeeded" if result.verified else "rollback_failed"
        # An on-demand rollback has no detection time of its own: it is not an
        # automatic restore (record the incident with `cd-checks incident`).
        rollback = replace(audit_rollback(result) or _no_rollback(), detected_at=None)
        detail = {"rollback_apply": _apply_json(result.apply)}
        self._finish(outcome, gate_results(1, result.gate), rollback, detail)

    def _finish(
        self, outcome: str, gates: list[Gate], rollback: Rollback | None, detail: dict[str, Json]
    ) -> None:
        written = self._open
        if written is None:
            return
        self._open = None
        try:
            self.trail.finish(written.deploy_id, outcome, gates, rollback, detail=detail)
        except AuditError as exc:
            self.final_errors.append(str(exc))
            outcome = "final record NOT written"
        self.runs[self.runs.index(written)] = replace(written, outcome=outcome)

    def _refuse_after_lost_final(self, what: str) -> None:
        if self.final_errors:
            raise AuditError(
                f"not starting {what}: the final audit record of the previous stage could not "
                f"be written ({self.final_errors[-1]})"
            )


def _no_rollback() -> Rollback:
    return Rollback(None, (), False, "")


_STOPPED = {
    "paused": "on_failure: pause: hosts left as they are until `--resume` or `rollback`",
    "halted": "on_failure: halt: no rollback attempted (irreversible change)",
    "forced": "break-glass: went on past failed health gates; no rollback, not known-good",
}


def stage_outcome(failure: str | None, rollback: RollbackResult | None) -> str:
    """succeeded | failed | rolled_back | rollback_failed for a finished stage."""
    if failure is None:
        return "succeeded"
    if rollback is None or rollback.apply is None:
        return "failed"
    return "rolled_back" if rollback.verified else "rollback_failed"


def gate_results(wave: int, gate: GateResult | None) -> list[Gate]:
    """Every check of every host of one gate, as audit `Gate`s."""
    if gate is None:
        return []
    return [
        Gate(wave, host.host, check.check, check.ok, check.detail)
        for host in gate.hosts
        for check in host.checks
    ]


def audit_rollback(result: RollbackResult | None) -> Rollback | None:
    if result is None:
        return None
    return Rollback(
        target=result.revision,
        hosts=result.hosts,
        verified=result.verified,
        reason="; ".join(r for r in (result.basis, result.reason) if r),
        detected_at=_z(result.detected_at),
        restored_at=_z(result.restored_at),
        exposed_at=_z(result.exposed_at),
    )


def _z(moment: str | None) -> str | None:
    return iso(parse_time(moment)) if moment else None


def _wave_json(wave: WaveResult) -> dict[str, Json]:
    return {
        "wave": wave.number,
        "hosts": list(wave.hosts),
        "apply": _apply_json(wave.apply),
        "gate_passed": wave.gate.passed if wave.gate is not None else None,
        "gate_failed_hosts": list(wave.gate.failed_hosts) if wave.gate is not None else [],
        "metrics": analysis_json(wave.gate.analysis if wave.gate is not None else None),
    }


def analysis_json(analysis: AnalysisResult | None) -> Json:
    """The metric gate's verdict and every measured value (None when it did not run)."""
    if analysis is None:
        return None
    return {
        "verdict": analysis.verdict,
        "alerts_firing": list(analysis.alerts),
        "checks": [
            {
                "name": check.name,
                "verdict": check.verdict,
                "detail": check.detail,
                "measurements": [
                    {
                        "at": m.at,
                        "value": _finite(m.value),
                        "baseline": _finite(m.baseline),
                        "status": m.status,
                        "detail": m.detail,
                    }
                    for m in check.measurements
                ],
            }
            for check in analysis.checks
        ],
    }


def _finite(value: float | None) -> Json:
    """JSON has no NaN or infinity: those values are written as text."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


def _apply_json(apply: ApplyResult | None) -> Json:
    if apply is None:
        return None
    return {
        "ok": apply.ok,
        "exit_code": apply.returncode,
        "failed_hosts": list(apply.failed_hosts),
        "errors": list(apply.errors)[:20],
        "timed_out_after": apply.timed_out,  # seconds (apply.timeout), or null
    }


@dataclass(frozen=True)
class TrailHistory:
    """The engine's `History`: what the audit trail remembers of an environment (runs of
    the change type `change`), and git."""

    trail: AuditTrail
    git: Git
    change: str | None = None

    def base(self, environment: str, revision: str) -> Base | None:
        """What the environment was last rolled back to (its hosts run that), else the parent.

        Only records that verify count: a forged one must not choose a rollback target."""
        last = last_run(self.trail.believed(), environment, self.change)
        rollback = last.rollback if last is not None and isinstance(last.rollback, dict) else {}
        if last is not None and last.outcome == "rolled_back" and rollback.get("verified"):
            target = str(rollback["target"])
            return Base(
                target,
                f"environment {environment} was rolled back to it by deploy {_start_id(last)}",
            )
        return first_parent(self.git, revision)

    def failed_run(self, environment: str) -> RunRecord | None:
        last = last_run(self.trail.believed(), environment, self.change)
        if last is None or last.outcome not in ("failed", "rollback_failed", "paused", "halted"):
            return None
        return self._failed(environment, last)

    def _failed(self, environment: str, final: AuditRecord) -> RunRecord:
        rollback = final.rollback if isinstance(final.rollback, dict) else {}
        detail = final.detail if isinstance(final.detail, dict) else {}
        target = rollback.get("target")
        unfinished = final.kind == "rollback" or final.outcome == "rollback_failed"
        revision = str(final.revision_to)
        if final.kind == "rollback":
            target, revision = final.revision_to, str(final.revision_from)
        return RunRecord(
            environment=environment,
            revision=revision,
            status="failed",
            stage=final.stage or environment,
            waves=tuple(tuple(w) for w in final.waves or ()),
            applied=tuple(rollback.get("hosts") or ()),
            target=str(target) if unfinished and target not in (None, UNKNOWN) else None,
            failure=detail.get("failure"),
            base=final.base_revision,
            base_reason=self._base_reason(final),
        )

    def _base_reason(self, final: AuditRecord) -> str:
        if final.base_revision is None:
            return ""
        parent = first_parent(self.git, str(final.revision_to))
        if parent is not None and parent.revision == final.base_revision:
            return parent.reason
        return f"recorded by deploy {_start_id(final)}"


def last_run(
    records: Sequence[AuditRecord], environment: str, change: str | None = None
) -> AuditRecord | None:
    """The environment's newest stage or rollback record (a start record while it runs)
    of the change type `change` (None: the unnamed type)."""
    for record in reversed(records):
        if (
            record.environment == environment
            and record.kind in RUN_KINDS
            and record.change == change
        ):
            return record
    return None


def _start_id(final: AuditRecord) -> str:
    return final.refs[0] if final.refs else final.id


def first_parent(git: Git, revision: str) -> Base | None:
    """The first parent of `revision`: what the repository said before it; None for a root.

    Read from the commit object itself, so a shallow clone still names it; a rollback
    to it needs it fetched, which the reason then says.
    """
    # The revision comes from the audit trail: after --end-of-options it is only ever a name.
    text = git(["cat-file", "commit", "--end-of-options", revision])
    header = (text or "").split("\n\n", 1)[0]
    parents = [line.split()[1] for line in header.splitlines() if line.startswith("parent ")]
    if not parents:
        return None
    reason = f"the parent of {revision[:12]}"
    if git(["cat-file", "-e", "--end-of-options", f"{parents[0]}^{{commit}}"]) is None:
        reason += "; it is not in this clone: fetch the full history (fetch-depth: 0)"
    return Base(parents[0], reason)
