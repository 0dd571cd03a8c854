"""`cd-checks audit repair`: take the lines that are not records out of the file trail, on record.

A line that cannot be read as an audit record (a torn write older than the
automatic quarantine, a stray edit, a merge-conflict marker, bad UTF-8) stops
every read of the trail. `bad_lines` lists them; `repair` moves them to a side
file (`<trail>.repair-<UTC time>`, with their line numbers) and appends a
`repair` record naming each removed line by number, size and sha256, so the
repair is itself in the trail. A line that reads as a record stays, whatever
its chain says: repair is no way to launder an edited record (`audit verify`
keeps naming it). Only the file store has lines; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cd_checks.audit.identity import Identity
from cd_checks.audit.jsonl import BadLine
from cd_checks.audit.record import AuditRecord, Json, iso
from cd_checks.audit.store import AuditStore, FileStore, Repaired
from cd_checks.errors import AuditError


def file_store(store: AuditStore) -> FileStore:
    """The store as a file store; AuditError for a store without lines to repair."""
    if not isinstance(store, FileStore):
        raise AuditError(
            f"audit repair works on the file store; the audit {store.describe()} keeps each "
            "record in its own commit (audit verify checks it)"
        )
    return store


def record(
    removed: list[BadLine], side: Path, *, identity: Identity, moment: datetime, record_id: str
) -> AuditRecord:
    """The `repair` record: what was removed (line, bytes, sha256, why) and where it went."""
    lines: list[Json] = [
        {"line": b.line, "bytes": b.size, "sha256": b.sha256, "reason": b.reason} for b in removed
    ]
    return AuditRecord(
        kind="repair",
        id=record_id,
        actor=identity.actor,
        actor_source=identity.source,
        started_at=iso(moment),
        outcome="recorded",
        detail={"removed": lines, "side_file": side.name},
    )


def repair(
    store: FileStore,
    *,
    identity: Identity,
    now: Callable[[], datetime],
    make_id: Callable[[datetime], str],
) -> Repaired | None:
    """Move the bad lines aside and append the repair record; None: nothing to repair."""

    def make(removed: list[BadLine], side: Path) -> AuditRecord:
        moment = now()
        return record(removed, side, identity=identity, moment=moment, record_id=make_id(moment))

    return store.repair(make)
