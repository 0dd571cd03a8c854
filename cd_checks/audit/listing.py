"""Reading the trail: one row per deploy or event, the full story of one id, exports.

A run's `started` record and its final record are one row, keyed by the
deploy id (the start record's id); a run with no final record shows
`started` (still running, or killed). An incident's open and resolve
records are one row too (outcome `open` or `resolved`). Every row carries its flags:
BREAK-GLASS, the post-mortem state (POSTMORTEM-DUE / -OVERDUE / -DONE) and
INCIDENT. A row names its change type (`changes:` in cd-checks.yml) when it
has one; the table shows a CHANGE column only when some row does, so a trail
without change types lists as it always did. Pure functions over records; the
CLI prints what they return.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from cd_checks.audit.record import RUN_KINDS, AuditRecord, Json, parse_time
from cd_checks.audit.signing import Checked
from cd_checks.audit.trail import final_of, find, run_of
from cd_checks.breakglass import obligations
from cd_checks.report.escaping import escape_controls


@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    environment: str
    stage: str
    revision: str
    actor: str
    started_at: str
    ended_at: str
    outcome: str
    flags: tuple[str, ...]
    change: str | None = None  # None: the unnamed change type


def _short(revision: str | None) -> str:
    if not revision:
        return "-"
    return revision[:12] if len(revision) == 40 else revision


def _flags(
    record: AuditRecord, records: Sequence[AuditRecord], now: datetime, hours: float
) -> tuple[str, ...]:
    flags: list[str] = []
    if record.break_glass:
        flags.append("BREAK-GLASS")
        if record.kind in RUN_KINDS:
            by_id = {r.id: r for r in records}
            owed = {
                run_of(by_id[o.break_glass_id]): o.state for o in obligations(records, now, hours)
            }
            state = owed.get(run_of(record))
            flags.append(f"POSTMORTEM-{state.upper()}" if state else "POSTMORTEM-DONE")
    if any(r.kind == "incident_open" and record.id in r.refs for r in records):
        flags.append("INCIDENT")
    return tuple(flags)


def _closing(records: Sequence[AuditRecord], record: AuditRecord) -> AuditRecord | None:
    """The record that closes `record`: a run's final record, an incident's resolve."""
    if record.kind in RUN_KINDS:
        return final_of(records, record.id)
    if record.kind == "incident_open":
        return next(
            (r for r in records if r.kind == "incident_resolve" and r.refs[:1] == (record.id,)),
            None,
        )
    return None


def _merged(records: Sequence[AuditRecord]) -> set[str]:
    """Ids of records shown within the row of the record they close (or hidden: break_glass)."""
    opened = {r.id for r in records if r.kind == "incident_open"}
    opened |= {r.id for r in records if r.kind in RUN_KINDS and not r.finished}
    return {
        r.id
        for r in records
        if r.kind == "break_glass"
        or (r.refs[:1] and r.refs[0] in opened and r.kind in (*RUN_KINDS, "incident_resolve"))
    }


def rows(records: Sequence[AuditRecord], now: datetime, hours: float) -> list[Row]:
    """One row per run (start and final merged), per incident (open and resolve merged)
    and per post-mortem."""
    merged = _merged(records)
    return [_row(r, records, now, hours) for r in records if r.id not in merged]


def _row(record: AuditRecord, records: Sequence[AuditRecord], now: datetime, hours: float) -> Row:
    shown = _closing(records, record) or record
    run = record.kind in RUN_KINDS
    return Row(
        id=record.id,
        kind=record.kind,
        environment=record.environment or "-",
        stage=record.stage or "-",
        revision=f"{_short(record.revision_from)}..{_short(record.revision_to)}"
        if run
        else _short(record.revision_to),
        actor=record.actor or "-",
        started_at=record.started_at or "-",
        ended_at=shown.ended_at or "-",
        outcome=shown.outcome or "-",
        flags=_flags(record, records, now, hours),
        change=None if record.change is None else str(record.change),
    )


def select(
    found: Sequence[Row],
    *,
    environment: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    change: str | None = None,
) -> list[Row]:
    """The rows that match every filter given (`change`: rows of that change type)."""
    return [
        r
        for r in found
        if (environment is None or r.environment == environment)
        and (change is None or r.change == change)
        and (outcome is None or r.outcome == outcome)
        and (since is None or (r.started_at != "-" and parse_time(r.started_at) >= since))
    ]


COLUMNS = ("ID", "KIND", "ENV", "STAGE", "REVISION", "ACTOR", "STARTED", "OUTCOME", "FLAGS")


def render_table(found: Sequence[Row]) -> str:
    if not found:
        return "no audit records match\n"
    typed = any(r.change is not None for r in found)
    table = [_with_change(COLUMNS, "CHANGE", typed)] + [
        _with_change(
            (
                r.id,
                r.kind,
                r.environment,
                r.stage,
                r.revision,
                r.actor,
                r.started_at,
                r.outcome,
                " ".join(r.flags) or "-",
            ),
            r.change or "-",
            typed,
        )
        for r in found
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() + "\n"
        for line in table
    )


def _with_change(cells: tuple[str, ...], change: str, typed: bool) -> tuple[str, ...]:
    """The cells with the change type after ENV, when the table has that column."""
    return (*cells[:3], change, *cells[3:]) if typed else cells


def render_rows_json(found: Sequence[Row]) -> str:
    return json.dumps([asdict(r) | {"flags": list(r.flags)} for r in found], indent=2) + "\n"


def related(records: Sequence[AuditRecord], record_id: str) -> list[AuditRecord]:
    """The record and every record that references it, or that it references, in trail order."""
    return [records[i] for i in _related_positions(records, record_id)]


def _related_positions(records: Sequence[AuditRecord], record_id: str) -> list[int]:
    record = find(records, record_id)
    ids = {record.id, *record.refs}
    return [i for i, r in enumerate(records) if r.id in ids or ids & set(r.refs)]


def render_show(
    records: Sequence[AuditRecord], record_id: str, signatures: Sequence[Checked]
) -> str:
    """The story of one id; `signatures`: each record's signature judged (`Verdict`)."""
    story = [(records[i], signatures[i]) for i in _related_positions(records, record_id)]
    base = story[0][0]
    return "".join(
        _show_one(record, base if i else None, checked) for i, (record, checked) in enumerate(story)
    )


CHAIN_KEYS = ("refs", "prev_hash", "hash", "outcome")


def _show_one(record: AuditRecord, base: AuditRecord | None, checked: Checked) -> str:
    """All fields of the first record of the story; of the others, what differs from it."""
    same = base.to_dict() if base else {}
    title = f"== {record.kind} {record.id} (#{record.seq})"
    if record.break_glass:
        title += "  ** BREAK-GLASS **"
    lines = [title]
    for key, value in record.to_dict().items():
        if key in ("kind", "id", "seq", "gates", "detail", "signature"):
            continue
        if value in (None, [], {}):
            continue
        if key not in CHAIN_KEYS and key in same and same[key] == value:
            continue
        lines.append(f"  {key}: {_inline(value)}")
    lines.append(f"  signature: {signature_line(checked)}")
    for gate in record.gates or ():
        verdict = "pass" if gate.get("passed") else "FAIL"
        lines.append(
            f"  gate wave {gate.get('wave')} {gate.get('host')} {gate.get('check')}: {verdict}"
            + (f" ({gate['detail']})" if gate.get("detail") else "")
        )
    if record.detail:
        text = record.detail.get("text") if isinstance(record.detail, dict) else None
        shown = {k: v for k, v in record.detail.items() if k != "text"}
        lines.append(f"  detail: {_inline(shown)}")
        if text:
            lines += ["  document:"] + [f"    {line}" for line in str(text).splitlines()]
    return "\n".join(lines) + "\n\n"


def signature_line(checked: Checked) -> str:
    """Who signed a record, as `audit verify` judged it; never the signature itself."""
    # The signer and key are the record's own claims: a forged one may hold anything.
    who = f"{escape_controls(checked.signer, keep='')} ({escape_controls(checked.key, keep='')})"
    if checked.status == "good":
        return f"signed by {who}"
    if checked.status == "unsigned":
        return "unsigned"
    if checked.status == "unknown":
        return f"signed by {who}, NOT an allowed signer: {checked.reason}"
    claimed = f" claiming {who}" if checked.key else ""
    return f"BAD signature{claimed}: {checked.reason}"


def _inline(value: Json) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def export_json(records: Sequence[AuditRecord]) -> str:
    return json.dumps([r.to_dict() for r in records], indent=2, sort_keys=True) + "\n"


CSV_FIELDS = (
    "seq",
    "id",
    "kind",
    "environment",
    "stage",
    "revision_from",
    "revision_to",
    "actor",
    "actor_source",
    "started_at",
    "ended_at",
    "outcome",
    "break_glass_reason",
    "break_glass_ticket",
    "change_request",
    "authors",
    "diffstat",
    "changed_files",
    "waves",
    "gates",
    "rollback",
    "refs",
    "prev_hash",
    "hash",
    "change",  # added last: a reader that goes by position keeps its columns
)


def export_csv(records: Sequence[AuditRecord]) -> str:
    """One row per record; nested values as JSON text."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        data = record.to_dict()
        bg = record.break_glass if isinstance(record.break_glass, dict) else {}
        data["break_glass_reason"] = bg.get("reason", "")
        data["break_glass_ticket"] = bg.get("ticket", "")
        writer.writerow({k: _cell(data.get(k)) for k in CSV_FIELDS})
    return out.getvalue()


def _cell(value: Json) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True)
