"""The audit record, its hash chain, and the check that finds a tampered trail.

One `AuditRecord` per rollout run, stage, rollback, break-glass use,
post-mortem and incident event. Each record carries `seq` (its position in
the chain, from 0), `prev_hash` (the hash of the record before it, or
`GENESIS` for the first) and `hash`: sha256 over the canonical JSON (sorted
keys, no spaces) of the record without `hash` and `signature`. `verify`
walks a trail and names each edited, deleted, inserted or reordered record.
A chain alone cannot show that its newest records were cut off: compare its
head with a hash published earlier (`missing_anchor`), and it proves nothing
about who wrote a record: anyone who can write the trail can recompute it.
That is the `signature`'s job (`cd_checks.audit.signing`): {signer, key,
sig} over `hash`, left out of records written without a key (and of every
record from before 0.2.0), so their hashes stay as they were.

Unknown values: a value that applies but is not known (no PR found, no token
to ask for approvers, no git history) is the string `"unknown"`, for lists
too; a value that does not apply (no rollback happened, no stage for an
incident) is null. Nothing is ever guessed. `base_revision` (stage runs
from 0.2.0 on: the revision a rollback goes back to while the environment
has no known-good one) is left out of a record that has none, so records
written before it existed keep their hashes. `change` (the change type a run
deploys, named under `changes:` in cd-checks.yml) is left out the same way when None (the
unnamed type of a lone `rollout:` section, and every older record), so a trail written
before change types existed verifies unchanged. This module does no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, Literal

from cd_checks.errors import AuditError

UNKNOWN = "unknown"
GENESIS = "0" * 64
Json = Any
ProblemKind = Literal[
    "edited",
    "deleted",
    "inserted",
    "reordered",
    "truncated",
    "rewritten",
    "unsigned",
    "bad-signature",
    "unknown-signer",
]

# Outcomes a finished record can have; `started` marks the record written before work begins.
# `interrupted`: the process running it was killed; refs name the run that took over.
OUTCOMES = (
    "started",
    "succeeded",
    "failed",
    "rolled_back",
    "rollback_failed",
    "recorded",
    "interrupted",
    "paused",
    "halted",
    "forced",
)
# `paused`: the failure policy stopped the stage and left its hosts (resume or roll back);
# `halted`: it stopped without any rollback (an irreversible change);
# `forced`: break-glass took it past failed health gates (no rollback, not known-good).
FAILED_OUTCOMES = ("failed", "rolled_back", "rollback_failed", "halted", "forced")
RUN_KINDS = ("rollout", "stage", "rollback")
# Fields left out of the serialised record when None, so records written before each
# existed keep their hashes (see the module docstring).
OMITTED_WHEN_NONE = ("base_revision", "change", "signature")


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, to the second: the only timestamp format in the trail."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    try:
        # Python 3.10's fromisoformat does not take the Z suffix.
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"not an ISO 8601 time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the trail. Nested values are plain JSON (see the module docstring)."""

    kind: str
    id: str
    environment: str | None = None
    stage: str | None = None
    change: str | None = None  # the change type (see the docstring); None: the unnamed one
    revision_from: str | None = None
    revision_to: str | None = None
    base_revision: str | None = None  # the fallback without known-good (see the docstring)
    changed_files: Json = None  # [{path, added, deleted}] ("-" counts of binary files are null)
    diffstat: Json = None  # {files, added, deleted}
    authors: Json = None  # ["Name <email>", ...]
    change_request: Json = None  # {system, number, url, approved, approvers}
    actor: str | None = None
    actor_source: str | None = None  # github | gitlab | git | unknown
    started_at: str | None = None
    ended_at: str | None = None
    waves: Json = None  # [[host, ...], ...]
    gates: Json = None  # [{wave, host, check, passed, detail}]
    outcome: str | None = None
    rollback: Json = None  # {target, hosts, verified, detected_at, restored_at, reason}
    break_glass: Json = None  # {reason, ticket}
    refs: tuple[str, ...] = ()
    detail: Json = None  # kind-specific: incident summary, post-mortem document, ...
    seq: int = -1
    prev_hash: str = ""
    hash: str = ""
    signature: Json = None  # {signer, key, sig} over `hash` (see the docstring)
    extra: Mapping[str, Json] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Json]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        data["refs"] = list(self.refs)
        for optional in OMITTED_WHEN_NONE:
            if data[optional] is None:
                del data[optional]
        data.update(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Json]) -> AuditRecord:
        """Rebuild a record verbatim (unknown keys kept in `extra`, so hashes still check)."""
        if not isinstance(data, Mapping) or "kind" not in data or "id" not in data:
            raise AuditError("an audit record must be a JSON object with 'kind' and 'id'")
        names = {f.name for f in fields(cls)} - {"extra"}
        # An explicit null of a field `to_dict` leaves out stays in `extra`, written back
        # as it was: the record's hash covers it.
        names -= {k for k in OMITTED_WHEN_NONE if k in data and data[k] is None}
        known = {k: v for k, v in data.items() if k in names}
        if "refs" in known:
            known["refs"] = tuple(known["refs"] or ())
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**known, extra=extra)

    def to_json(self) -> str:
        return canonical(self.to_dict())

    @property
    def finished(self) -> bool:
        return self.outcome not in (None, "started")


def canonical(data: Mapping[str, Json]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_hash(record: AuditRecord) -> str:
    data = record.to_dict()
    data.pop("hash", None)
    # The signature signs the hash, so it cannot be part of it.
    data.pop("signature", None)
    return hashlib.sha256(canonical(data).encode("utf-8")).hexdigest()


def chain(record: AuditRecord, previous: AuditRecord | None) -> AuditRecord:
    """The record as the next link after `previous` (None: the first record of the trail).

    Unsigned: a record made from another (a final record from its start) must not carry
    that one's signature; the store signs the new link.
    """
    seq = previous.seq + 1 if previous is not None else 0
    prev_hash = previous.hash if previous is not None else GENESIS
    linked = replace(record, seq=seq, prev_hash=prev_hash, hash="", signature=None)
    return replace(linked, hash=compute_hash(linked))


@dataclass(frozen=True)
class Problem:
    """One tampering found by `verify`: what, which record and where (0-based position)."""

    kind: ProblemKind
    position: int
    record_id: str
    message: str


def verify(records: Sequence[AuditRecord]) -> list[Problem]:
    """Every edited, deleted, inserted or reordered record of the trail, in trail order."""
    problems = [_edited(i, r) for i, r in enumerate(records) if compute_hash(r) != r.hash]
    referenced = {r.prev_hash for r in records}
    inserted = _inserted(records, referenced)
    problems += [_inserted_problem(records, i) for i in sorted(inserted)]
    problems += _link_problems(records, inserted)
    return sorted(problems, key=lambda p: p.position)


def _edited(position: int, record: AuditRecord) -> Problem:
    return Problem(
        "edited",
        position,
        record.id,
        f"record {record.id} at position {position} was edited: "
        "its content does not match its hash",
    )


def _inserted(records: Sequence[AuditRecord], referenced: set[str]) -> set[int]:
    """Positions of records nobody chains to although a later record skips over them."""
    where = {r.hash: i for i, r in enumerate(records)}
    inserted: set[int] = set()
    for i, record in enumerate(records):
        j = -1 if record.prev_hash == GENESIS else where.get(record.prev_hash)
        if j is None or j >= i - 1:
            continue
        between = range(j + 1, i)
        if all(records[k].hash not in referenced for k in between):
            inserted.update(between)
    return inserted


def _inserted_problem(records: Sequence[AuditRecord], position: int) -> Problem:
    record = records[position]
    return Problem(
        "inserted",
        position,
        record.id,
        f"record {record.id} at position {position} was inserted: "
        "no record of the trail was chained after it",
    )


def _link_problems(records: Sequence[AuditRecord], inserted: set[int]) -> list[Problem]:
    where = {r.hash: (i, r.id) for i, r in enumerate(records)}
    problems: list[Problem] = []
    previous: tuple[int, AuditRecord] | None = None
    for i, record in enumerate(records):
        if i in inserted:
            continue
        problem = _link_problem(i, record, previous, where)
        if problem is not None:
            problems.append(problem)
        previous = (i, record)
    return problems


def _link_problem(
    i: int,
    record: AuditRecord,
    previous: tuple[int, AuditRecord] | None,
    where: Mapping[str, tuple[int, str]],
) -> Problem | None:
    expected = previous[1].hash if previous else GENESIS
    if record.prev_hash == expected:
        return None
    before = f"after record {previous[1].id} (position {previous[0]})" if previous else "first"
    if record.prev_hash in where or record.prev_hash == GENESIS:
        j, other = where.get(record.prev_hash, (-1, ""))
        chained = f"record {other} (now at position {j})" if j >= 0 else "the start of the trail"
        message = (
            f"record {record.id} at position {i} is out of order: it stands {before} "
            f"but was written right after {chained}"
        )
        return Problem("reordered", i, record.id, message)
    return _missing(i, record, previous, before)


def _missing(
    i: int, record: AuditRecord, previous: tuple[int, AuditRecord] | None, before: str
) -> Problem:
    expected_seq = previous[1].seq + 1 if previous else 0
    gap = record.seq - expected_seq if isinstance(record.seq, int) else 0
    if gap > 0:
        count = "1 record was" if gap == 1 else f"{gap} records were"
        message = (
            f"{count} deleted before record {record.id} at position {i}: it was chained "
            f"to record #{record.seq - 1}, which is not in the trail (it stands {before})"
        )
        return Problem("deleted", i, record.id, message)
    victim = previous[1].id if previous else record.id
    position = previous[0] if previous else i
    message = (
        f"record {victim} at position {position} was edited and re-hashed: "
        f"record {record.id} at position {i} was chained to a different record"
    )
    return Problem("edited", position, victim, message)


def missing_anchor(anchor: str, count: int) -> Problem:
    """The trail lacks a record hash published earlier: records at its end were deleted."""
    return Problem(
        "deleted",
        count,
        "unknown",
        f"no record has the anchor hash {anchor}: records were deleted from the end of the "
        "trail (or the anchor belongs to another trail)",
    )
