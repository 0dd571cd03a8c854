"""Render a `RolloutResult` (text for people, JSON for machines) and progress lines.

Pure functions returning strings; the CLI decides where they go.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from cd_checks.rollout.apply import ApplyResult, tail
from cd_checks.rollout.engine import RollbackResult, RolloutResult, WaveResult
from cd_checks.rollout.health import GateResult
from cd_checks.rollout.progress import Event
from cd_checks.rollout.recorder import analysis_json

_COLOURS = {"ok": "\x1b[32m", "failed": "\x1b[31m", "start": "\x1b[36m", "info": "\x1b[33m"}
_RESET = "\x1b[0m"


def progress_line(event: Event, *, colour: bool, now: float | None = None) -> str:
    """One line per event: `12:00:01 canary/1 lab-07 apply ok detail`."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(time.time() if now is None else now))
    where = event.stage
    if event.wave >= 0:
        where += f"/{event.wave}" if event.wave else "/rollback"
    result = event.result
    if colour:
        result = f"{_COLOURS.get(result, '')}{result}{_RESET}"
    detail = f" {event.detail}" if event.detail else ""
    return f"{stamp} {where} {event.host} {event.step} {result}{detail}"


def render_text(result: RolloutResult) -> str:
    lines = [_header(result)]
    lines += [f"note: {note}" for note in result.notes]
    for wave in result.waves:
        lines += _wave_text(wave)
    if result.ok and result.rollback is None:
        lines.append(_verdict(result))
    if result.failure:
        head = {"paused": "PAUSED", "halted": "HALTED"}.get(result.stopped or "", "FAILED")
        lines.append(f"{head}: {result.failure}")
    if result.rollback is not None:
        lines += _rollback_text(result.rollback)
    return "\n".join(lines) + "\n"


def _header(result: RolloutResult) -> str:
    if result.stages or result.rollback is None:
        return f"rollout of {result.revision[:12]} ({', '.join(result.stages) or 'no stages'})"
    # A manual rollback: `revision` is what the environment ran (the rollback line below
    # names the revision it goes back to).
    if result.revision != result.rollback.revision:
        return f"rollback of environment {result.environment} from {result.revision[:12]}"
    return f"rollback of environment {result.environment}"


def _verdict(result: RolloutResult) -> str:
    if result.forced:  # only break-glass goes on past a failed gate
        return (
            "rollout completed under BREAK-GLASS with FAILED health gates (no rollback); "
            f"{_unhealthy_text(result.forced)}"
        )
    if result.unhealthy:
        return f"rollout succeeded with {_unhealthy_text(result.unhealthy)}"
    return "rollout succeeded"


def _unhealthy_text(hosts: Sequence[str]) -> str:
    return f"{len(hosts)} unhealthy host(s) left on the new revision: {', '.join(hosts)}"


def _wave_text(wave: WaveResult) -> list[str]:
    head = f"{wave.stage} wave {wave.number}: {', '.join(wave.hosts)}"
    lines = [f"{head}: {_apply_text(wave.apply)}, {_gate_text(wave.gate)}"]
    lines += _details(wave.apply, wave.gate)
    return lines


def _apply_text(apply: ApplyResult | None) -> str:
    if apply is None:
        return "already applied (resumed)"
    if apply.ok:
        return f"applied in {apply.seconds:.1f}s"
    return f"apply FAILED ({apply.failure})"


def _gate_text(gate: GateResult | None) -> str:
    if gate is None:
        return "not gated"
    if gate.inconclusive:
        return "gate INCONCLUSIVE"
    return "gate passed" if gate.passed else "gate FAILED"


def _details(apply: ApplyResult | None, gate: GateResult | None) -> list[str]:
    lines: list[str] = []
    if apply is not None and not apply.ok:
        lines.append(f"  apply failed on: {', '.join(apply.failed_hosts) or 'the wave'}")
        shown = apply.errors or tuple(tail(apply.output, 15).splitlines())
        lines += [f"  | {line}" for line in shown]
    for host in gate.hosts if gate is not None else ():
        for check in host.failed:
            lines.append(f"  {host.host}: {check.check}: {check.detail}")
    lines += [f"  note: {note}" for note in (gate.notes if gate else ())]
    analysis = gate.analysis if gate is not None else None
    for verdict in analysis.checks if analysis is not None else ():
        lines.append(f"  metric {verdict.name}: {verdict.verdict}: {verdict.detail}")
    if analysis is not None and analysis.alerts:
        lines.append(f"  alerts firing: {', '.join(analysis.alerts)}")
    return lines


def _rollback_text(rollback: RollbackResult) -> list[str]:
    hosts = ", ".join(rollback.hosts) or "no hosts"
    if rollback.revision is None or rollback.apply is None:
        return [f"NOT ROLLED BACK ({hosts}): {rollback.reason}"]
    lines = [
        f"rollback of environment {rollback.environment} to {rollback.revision[:12]}: {hosts}: "
        f"{_apply_text(rollback.apply)}, {_gate_text(rollback.gate)}"
    ]
    lines += _details(rollback.apply, rollback.gate)
    verdict = "rollback verified" if rollback.verified else "ROLLBACK DID NOT VERIFY"
    return [*lines, verdict + (f": {rollback.reason}" if rollback.reason else "")]


def to_dict(result: RolloutResult) -> dict[str, Any]:
    return {
        "revision": result.revision,
        "ok": result.ok,
        "stages": list(result.stages),
        "waves": [_wave_dict(w) for w in result.waves],
        "failure": result.failure,
        "environment": result.environment,
        "rollback": _rollback_dict(result.rollback),
        "notes": list(result.notes),
        "stopped": result.stopped,
        "forced_hosts": list(result.forced),
        "unhealthy_hosts": list(result.unhealthy),
        "exit_code": result.exit_code,
    }


def _wave_dict(wave: WaveResult) -> dict[str, Any]:
    return {
        "stage": wave.stage,
        "wave": wave.number,
        "hosts": list(wave.hosts),
        "apply": _apply_dict(wave.apply),
        "gate": _gate_dict(wave.gate),
        "ok": wave.ok,
    }


def _apply_dict(apply: ApplyResult | None) -> dict[str, Any] | None:
    if apply is None:
        return None
    return {
        "ok": apply.ok,
        "exit_code": apply.returncode,
        "failed_hosts": list(apply.failed_hosts),
        "seconds": round(apply.seconds, 2),
        "errors": list(apply.errors),
        "output_tail": tail(apply.output),
        "timed_out_after": apply.timed_out,  # seconds (apply.timeout), or null
    }


def _gate_dict(gate: GateResult | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    return {
        "passed": gate.passed,
        "max_failed_percent": gate.max_failed_percent,
        "failed_hosts": list(gate.failed_hosts),
        "hosts": {
            h.host: [
                {"check": c.check, "ok": c.ok, "detail": c.detail, "attempts": c.attempts}
                for c in h.checks
            ]
            for h in gate.hosts
        },
        "notes": list(gate.notes),
        "inconclusive": gate.inconclusive,
        "metrics": analysis_json(gate.analysis),
    }


def _rollback_dict(rollback: RollbackResult | None) -> dict[str, Any] | None:
    if rollback is None:
        return None
    return {
        "environment": rollback.environment,
        "revision": rollback.revision,
        "hosts": list(rollback.hosts),
        "apply": _apply_dict(rollback.apply),
        "gate": _gate_dict(rollback.gate),
        "verified": rollback.verified,
        "reason": rollback.reason,
        "missing": list(rollback.missing),
        "detected_at": rollback.detected_at,
        "exposed_at": rollback.exposed_at,
        "restored_at": rollback.restored_at,
    }


def render_json(result: RolloutResult) -> str:
    return json.dumps(to_dict(result), indent=2) + "\n"


RENDERERS = {"text": render_text, "json": render_json}


def render_markdown(result: RolloutResult, deploys: Sequence[tuple[str, str, str]] = ()) -> str:
    """A job summary ($GITHUB_STEP_SUMMARY): verdict, waves, rollback, audit deploy ids.

    `deploys` are (deploy id, stage, outcome) of the audit records the run wrote.
    """
    failed = {"paused": "PAUSED", "halted": "HALTED"}.get(result.stopped or "", "FAILED")
    verdict = ("succeeded" if result.ok else failed) + (
        " under break-glass, health gates FAILED" if result.ok and result.forced else ""
    )
    lines = [f"### Rollout of `{result.revision[:12]}`: {verdict}", ""]
    if result.ok and (result.forced or result.unhealthy):
        lines += [f"**{_unhealthy_text(result.forced or result.unhealthy)}**", ""]
    if result.failure:
        lines += [f"**{result.failure}**", ""]
    lines += [f"> {note}" for note in result.notes]
    lines += ["", "| stage | wave | hosts | apply | gate |", "|---|---|---|---|---|"]
    for wave in result.waves:
        hosts = ", ".join(wave.hosts)
        row = f"| {wave.stage} | {wave.number} | {hosts} | {_apply_text(wave.apply)} |"
        lines.append(f"{row} {_gate_text(wave.gate)} |")
    if result.rollback is not None:
        lines += ["", *(f"- {line}" for line in _rollback_text(result.rollback))]
    if deploys:
        lines += ["", "Audit records: " + ", ".join(f"`{i}` ({s}: {o})" for i, s, o in deploys)]
    return "\n".join(lines) + "\n"
