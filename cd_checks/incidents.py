"""What happens after a deploy, recorded in the audit trail: incidents and post-mortems.

`open_incident` records a deploy-caused incident found after a rollout
(detected at a given time, default now) against the deploy id; `resolve`
records its restore; their difference is the incident's time to restore in
`cd_checks.metrics`. `record_postmortem` validates a post-mortem document and
stores it, with its sha256, in a `postmortem` record that clears the
break-glass obligation of the deploy. Writes go through the `AuditTrail`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from cd_checks.audit.record import RUN_KINDS, AuditRecord, iso, parse_time
from cd_checks.audit.trail import AuditTrail, find, run_of
from cd_checks.breakglass import validate_postmortem
from cd_checks.errors import InputError


def _deploy(records: list[AuditRecord], deploy_id: str) -> AuditRecord:
    record = find(records, deploy_id)
    if record.kind == "break_glass" and record.refs:
        record = find(records, record.refs[0])
    if record.kind not in RUN_KINDS:
        raise InputError(f"{deploy_id} is a {record.kind} record, not a deploy")
    if record.refs and record.finished:
        record = find(records, record.refs[0])
    return record


def open_incident(
    trail: AuditTrail,
    deploy_id: str,
    *,
    actor: str,
    summary: str = "",
    detected_at: datetime | None = None,
) -> AuditRecord:
    """Append an `incident_open` record against a deploy (by its id or its final record's id)."""
    records = trail.records()
    deploy = _deploy(records, deploy_id)
    moment = detected_at or trail.now()
    if moment < parse_time(deploy.started_at or ""):
        raise InputError(f"the incident cannot be detected before deploy {deploy.id} started")
    return trail.append(
        AuditRecord(
            kind="incident_open",
            id=trail.make_id(trail.now()),
            environment=deploy.environment,
            stage=deploy.stage,
            change=deploy.change,  # the metrics of the deploy's change type count it
            revision_from=deploy.revision_from,
            revision_to=deploy.revision_to,
            actor=actor,
            started_at=iso(moment),
            outcome="open",
            refs=(deploy.id,),
            detail={"summary": summary or "unknown"},
        )
    )


def resolve(
    trail: AuditTrail, incident_id: str, *, actor: str, restored_at: datetime | None = None
) -> AuditRecord:
    """Append an `incident_resolve` record; the incident must be open."""
    records = trail.records()
    incident = find(records, incident_id)
    if incident.kind != "incident_open":
        raise InputError(f"{incident_id} is a {incident.kind} record, not an incident")
    if any(r.kind == "incident_resolve" and incident.id in r.refs for r in records):
        raise InputError(f"incident {incident.id} is already resolved")
    moment = restored_at or trail.now()
    if moment < parse_time(incident.started_at or ""):
        raise InputError(f"incident {incident.id} cannot be restored before it was detected")
    return trail.append(
        AuditRecord(
            kind="incident_resolve",
            id=trail.make_id(trail.now()),
            environment=incident.environment,
            change=incident.change,
            revision_to=incident.revision_to,
            actor=actor,
            started_at=incident.started_at,
            ended_at=iso(moment),
            outcome="resolved",
            refs=(incident.id, *incident.refs),
        )
    )


def record_postmortem(
    trail: AuditTrail, deploy_id: str, *, actor: str, text: str, source: str
) -> AuditRecord:
    """Validate `text` (required sections) and append a `postmortem` record for the deploy."""
    validate_postmortem(text, source)
    records = trail.records()
    deploy = _deploy(records, deploy_id)
    # One post-mortem covers every break-glass record of the same `rollout run`.
    runs = {run_of(r) for r in records if r.kind == "break_glass" and deploy.id in r.refs}
    if deploy.break_glass:
        runs.add(run_of(deploy))
    uses = [r.id for r in records if r.kind == "break_glass" and run_of(r) in runs]
    if not uses:
        raise InputError(f"deploy {deploy.id} did not use break-glass; no post-mortem is owed")
    moment = trail.now()
    return trail.append(
        AuditRecord(
            kind="postmortem",
            id=trail.make_id(moment),
            environment=deploy.environment,
            change=deploy.change,
            revision_to=deploy.revision_to,
            actor=actor,
            started_at=iso(moment),
            outcome="recorded",
            refs=(deploy.id, *uses),
            break_glass=deploy.break_glass,
            detail={
                "file": source,
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "text": text,
            },
        )
    )
