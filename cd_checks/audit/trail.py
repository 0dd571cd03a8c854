"""The audit trail as the rollout engine and the CLI use it: write runs, read them back.

`AuditTrail.start` appends the `started` record of a run (what changed, who
ran it, who approved it, the planned waves) before any host is touched, and
raises `AuditError` if it cannot: the run must not start. `finish` appends
the final record (outcome, every gate result, rollback details) with a
reference to the start record; its failure is an `AuditError` the caller
must report loudly and exit non-zero on. The deploy id the user sees is the
id of the start record. A break-glass run also appends a `break_glass`
record, which leaves the post-mortem obligation (see `cd_checks.breakglass`).

`known_good` reads the last known-good revision of an environment from the
trail, per change type (each has its own; None is the unnamed type of a lone
`rollout:` section and of every record older than change types);
`AuditKnownGood`, the rollout engine's view of it, believes only the records
`cd_checks.audit.integrity` trusts (signed by an allowed signer, the chain,
anchor and history intact) and says which claims it did not believe.
A trail opened with `open_trail` signs what it writes and moves the user's
anchor forward. The clock, ids, git and the environment are passed in;
nothing here prints (warnings go to the `warn` the caller hands in).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from cd_checks.audit import integrity
from cd_checks.audit.anchor import AnchorFile
from cd_checks.audit.identity import Git, Identity, git_runner
from cd_checks.audit.integrity import Policy, Verdict
from cd_checks.audit.record import RUN_KINDS, UNKNOWN, AuditRecord, Json, iso
from cd_checks.audit.signing import Checked, Signer
from cd_checks.audit.store import AuditStore, open_store
from cd_checks.config import Config
from cd_checks.errors import AuditError


@dataclass(frozen=True)
class Gate:
    """One health check on one host of one wave (wave numbers from 1)."""

    wave: int
    host: str
    check: str
    passed: bool
    detail: str = ""

    def to_json(self) -> dict[str, Json]:
        return {
            "wave": self.wave,
            "host": self.host,
            "check": self.check,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Rollback:
    """An automatic or manual rollback.

    `exposed_at`: the change reached the stage's first host (its apply started);
    `detected_at`: the first failed check of the failing gate was seen;
    `restored_at`: the rollback's own gate verified the hosts. Time to restore is
    detected -> restored; exposure is exposed -> restored.
    """

    target: str | None
    hosts: tuple[str, ...]
    verified: bool
    reason: str
    detected_at: str | None = None
    restored_at: str | None = None
    exposed_at: str | None = None

    def to_json(self) -> dict[str, Json]:
        shape: dict[str, Json] = {
            "target": self.target or UNKNOWN,
            "hosts": list(self.hosts),
            "verified": self.verified,
            "reason": self.reason,
            "detected_at": self.detected_at,
            "restored_at": self.restored_at if self.verified else None,
        }
        if self.exposed_at is not None:  # records written before it keep their shape
            shape["exposed_at"] = self.exposed_at
        return shape


@dataclass(frozen=True)
class BreakGlass:
    """A break-glass use: why, the ticket, what it overrode.

    `validate` is the summary of a failed pre-flight validate it went past;
    `run` is the deploy id of the first stage of the same `rollout run`, so one
    post-mortem covers every stage and environment that run touched.
    """

    reason: str
    ticket: str
    validate: Json = None
    run: str | None = None

    def to_json(self) -> dict[str, Json]:
        data: dict[str, Json] = {"reason": self.reason, "ticket": self.ticket}
        if self.validate is not None:
            data["validate"] = self.validate
        if self.run is not None:
            data["run"] = self.run
        return data


def run_of(record: AuditRecord) -> str:
    """The break-glass run a start or break_glass record belongs to (see BreakGlass.run)."""
    bg = record.break_glass if isinstance(record.break_glass, dict) else {}
    if bg.get("run"):
        return str(bg["run"])
    closes = record.kind == "break_glass" or (record.kind in RUN_KINDS and record.finished)
    return record.refs[0] if closes and record.refs else record.id


def new_id(moment: datetime) -> str:
    """A record id: sortable by time, unique across concurrent writers."""
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def _quiet(message: str) -> None:
    """The default warning sink; the CLI hands in one that prints."""


@dataclass(frozen=True)
class AuditTrail:
    """The trail; `policy` judges it, `anchor` keeps its head (see `open_trail`).

    `missing_key`: why this trail must not be written unsigned (signatures required,
    no key), refused at the first write. `signer`: the key its store signs with (for
    another store writing on its behalf, e.g. the break-glass fallback).
    """

    store: AuditStore
    repo: Path
    now: Callable[[], datetime]
    make_id: Callable[[datetime], str] = new_id
    git: Git | None = None
    policy: Policy = field(default_factory=Policy)
    anchor: AnchorFile | None = None
    warn: Callable[[str], None] = field(default=_quiet, compare=False, repr=False)
    missing_key: str | None = None
    signer: Signer | None = field(default=None, compare=False, repr=False)

    def records(self) -> list[AuditRecord]:
        return self.store.records()

    def verdict(self, *, published: str | None = None) -> Verdict:
        """The trail judged: chain, signatures, anchor (and a rewritten git remote)."""
        return integrity.read(self.store, self.policy, self.anchor, published=published)

    def for_break_glass(self) -> AuditTrail:
        """This trail for a break-glass run, which always writes: where signatures are
        required and there is no key, unsigned, said loudly (`verify` names each record)."""
        if self.missing_key is None:
            return self
        self.warn(
            f"BREAK-GLASS: {self.missing_key}; this run's records are written unsigned and "
            "`cd-checks audit verify` will name each of them"
        )
        return replace(self, missing_key=None)

    def believed(self) -> list[AuditRecord]:
        """The records that verify: the only ones that may choose what a rollback does."""
        verdict = self.verdict()
        return [r for i, r in enumerate(verdict.records) if i in verdict.trusted]

    def append(self, record: AuditRecord) -> AuditRecord:
        try:
            return self._write(record)
        except AuditError as exc:
            raise AuditError(f"cannot write the audit record ({record.kind}): {exc}") from exc

    def _write(self, record: AuditRecord) -> AuditRecord:
        """Append (signed by the store) and move the anchor to the new record."""
        if self.missing_key is not None:
            raise AuditError(self.missing_key)
        written = self.store.append(record)
        if self.anchor is not None:
            try:
                self.anchor.advance(written)
            except AuditError as exc:  # the record is written: the run goes on, told
                self.warn(f"the audit record {written.id} is written, but {exc}")
        return written

    def start(
        self,
        kind: str,
        environment: str,
        stage: str | None,
        revision_from: str | None,
        revision_to: str,
        plan_waves: Sequence[Sequence[str]],
        identity: Identity,
        break_glass: BreakGlass | None = None,
        *,
        owes_postmortem: bool = True,
        base_revision: str | None = None,
        change: str | None = None,
    ) -> str:
        """Append the `started` record of a run; its id is the deploy id. AuditError: don't run.

        With `break_glass`, a `break_glass` record (the post-mortem obligation) follows
        unless `owes_postmortem` is false (a later stage of a run that already owes one).
        `base_revision`: where a rollback goes while the environment has no known-good.
        `change`: the change type it deploys (None: the unnamed one); the final record
        and the break-glass record copy it.
        """
        if kind not in RUN_KINDS:
            raise AuditError(f"not a run kind: {kind!r} (one of {', '.join(RUN_KINDS)})")
        _check_break_glass(break_glass)
        moment = self.now()
        git = self.git or git_runner(self.repo)
        revision_from = _resolve(git, revision_from)
        revision_to = _resolve(git, revision_to) or revision_to
        files = changed_files(git, revision_from, revision_to)
        record = AuditRecord(
            kind=kind,
            id=self.make_id(moment),
            environment=environment,
            stage=stage,
            change=change,
            revision_from=revision_from or UNKNOWN,
            revision_to=revision_to,
            base_revision=base_revision,
            changed_files=files,
            diffstat=diffstat(files),
            authors=authors(git, revision_from, revision_to),
            change_request=identity.change_request_json(),
            actor=identity.actor,
            actor_source=identity.source,
            started_at=iso(moment),
            waves=[list(w) for w in plan_waves],
            outcome="started",
            break_glass=break_glass.to_json() if break_glass else None,
            detail={"notes": list(identity.notes)} if identity.notes else None,
        )
        started = self.append(record)
        if break_glass is not None and owes_postmortem:
            self._break_glass(started, break_glass)
        return started.id

    def _break_glass(self, started: AuditRecord, break_glass: BreakGlass) -> None:
        self.append(
            replace(
                started,
                kind="break_glass",
                id=self.make_id(self.now()),
                outcome="recorded",
                refs=(started.id,),
                break_glass=break_glass.to_json(),
            )
        )

    def finish(
        self,
        start_id: str,
        outcome: str,
        gates: Sequence[Gate] = (),
        rollback: Rollback | None = None,
        ended_at: datetime | None = None,
        detail: Mapping[str, Json] | None = None,
        *,
        also: Sequence[str] = (),
    ) -> AuditRecord:
        """Append the final record of the run `start_id`. AuditError: say so loudly, exit 1.

        `also`: more ids the final record refers to, after the start record's (the run
        that took over an interrupted one).
        """
        records = self.records()
        start = find(records, start_id)
        if start.kind not in RUN_KINDS or start.finished:
            raise AuditError(f"{start_id} is not the start record of a run")
        if final_of(records, start.id) is not None:
            raise AuditError(f"the {start.kind} {start.id} already has its final record")
        moment = ended_at or self.now()
        final = replace(
            start,
            id=self.make_id(moment),
            ended_at=iso(moment),
            outcome=outcome,
            gates=[g.to_json() for g in gates],
            rollback=rollback.to_json() if rollback else None,
            refs=(start.id, *also),
            detail={**(start.detail or {}), **detail} if detail else start.detail,
        )
        try:
            return self._write(final)
        except AuditError as exc:
            raise AuditError(
                f"the {start.kind} {start_id} ran but its final audit record could not be "
                f"written: {exc}; the trail shows it as started only"
            ) from exc


def _resolve(git: Git, revision: str | None) -> str | None:
    """The full commit id of `revision` (as given when git cannot resolve it)."""
    if not revision or revision == UNKNOWN:
        return revision
    return git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"]) or revision


def _check_break_glass(break_glass: BreakGlass | None) -> None:
    if break_glass is None:
        return
    missing = [n for n in ("reason", "ticket") if not getattr(break_glass, n).strip()]
    if missing:
        raise AuditError(f"break-glass needs a {' and a '.join(missing)}")


def find(records: Sequence[AuditRecord], record_id: str) -> AuditRecord:
    """The record with `record_id` (a unique prefix of at least 8 characters is enough)."""
    exact = [r for r in records if r.id == record_id]
    matches = exact or [r for r in records if len(record_id) >= 8 and r.id.startswith(record_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AuditError(f"no audit record {record_id!r}")
    raise AuditError(f"{record_id!r} matches {len(matches)} audit records; give more of the id")


def final_of(records: Sequence[AuditRecord], start_id: str) -> AuditRecord | None:
    """The finished record of the run whose start record is `start_id`, if written."""
    for record in records:
        if record.finished and record.kind in RUN_KINDS and record.refs[:1] == (start_id,):
            return record
    return None


def changed_files(git: Git, revision_from: str | None, revision_to: str) -> Json:
    """[{path, added, deleted}] between the revisions (git diff --numstat), or unknown."""
    if not revision_from or revision_from == UNKNOWN:
        return UNKNOWN
    output = git(["diff", "--numstat", "--no-renames", revision_from, revision_to, "--"])
    if output is None:
        return UNKNOWN
    files: list[dict[str, Json]] = []
    for line in output.splitlines():
        added, deleted, path = line.split("\t", 2)
        files.append({"path": path, "added": _count(added), "deleted": _count(deleted)})
    return files


def _count(text: str) -> int | None:
    return None if text == "-" else int(text)


def diffstat(files: Json) -> Json:
    if not isinstance(files, list):
        return UNKNOWN
    return {
        "files": len(files),
        "added": sum(f["added"] or 0 for f in files),
        "deleted": sum(f["deleted"] or 0 for f in files),
    }


def authors(git: Git, revision_from: str | None, revision_to: str) -> Json:
    """Commit authors of revision_from..revision_to, first appearance first."""
    if not revision_from or revision_from == UNKNOWN:
        return UNKNOWN
    output = git(["log", "--format=%aN <%aE>", f"{revision_from}..{revision_to}"])
    if output is None:
        return UNKNOWN
    return list(dict.fromkeys(line for line in output.splitlines() if line.strip()))


def _gates_failed(record: AuditRecord) -> bool:
    return any(not g.get("passed", False) for g in record.gates or ())


def known_good(
    records: Sequence[AuditRecord],
    environment: str,
    final_stages: Mapping[str, str] | None = None,
    change: str | None = None,
) -> str | None:
    """revision_to of the last succeeded stage/rollout of `environment` that passed its gates,
    among the runs of the change type `change` (None: the unnamed type).

    With `final_stages` ({environment: last stage}), only runs of the environment's
    last stage count: a revision is known-good once the whole environment has it.
    A revision deployed by a break-glass run is never known-good if that run (same
    `break_glass.run`) went past a failed gate in any stage, of any environment. A verified
    on-demand rollback (`cd-checks rollback`) makes its target known-good. `records` are
    taken as true: give only trusted ones (`verified_known_good` does).
    """
    final = (final_stages or {}).get(environment)
    forced = _forced_runs(records)
    for record in reversed(records):
        if _claims_known_good(record, environment, final, forced, change):
            return record.revision_to
    return None


def _claims_known_good(
    record: AuditRecord, environment: str, final: str | None, forced: set[str], change: str | None
) -> bool:
    """Whether `record`, if true, makes its revision_to known-good for `environment`
    and the change type `change`."""
    if record.environment != environment or record.change != change:
        return False
    if record.kind == "rollback":
        return record.outcome == "succeeded"
    if record.kind not in ("stage", "rollout") or record.outcome != "succeeded":
        return False
    if final is not None and record.stage != final:
        return False
    return not (record.break_glass and run_of(record) in forced)


def verified_known_good(
    verdict: Verdict,
    environment: str,
    final_stages: Mapping[str, str] | None = None,
    change: str | None = None,
) -> tuple[str | None, list[str]]:
    """Known-good from the records the verdict trusts, and a warning for each newer claim
    it did not believe (a forged "succeeded" record is never a rollback target)."""
    trusted = [r for i, r in enumerate(verdict.records) if i in verdict.trusted]
    revision = known_good(trusted, environment, final_stages, change)
    final = (final_stages or {}).get(environment)
    forced = _forced_runs(trusted)
    warnings: list[str] = []
    for position in range(len(verdict.records) - 1, -1, -1):
        record = verdict.records[position]
        claims = _claims_known_good(record, environment, final, forced, change)
        if claims and position in verdict.trusted:
            break
        if claims:
            warnings.append(_unbelieved(verdict, position, environment))
    if verdict.broken and warnings:
        # Nothing is believed: the newest claim stands for all the others.
        first = verdict.broken[0]
        warnings[1:] = [
            f"the audit trail is broken ({first.kind} at position {first.position}): no "
            "known-good revision is taken from it; run `cd-checks audit verify`"
        ]
    return revision, warnings


def _unbelieved(verdict: Verdict, position: int, environment: str) -> str:
    record = verdict.records[position]
    if record.change is not None:
        environment = f"{environment} (change type {record.change})"
    return (
        f"audit {integrity.name(record)} says {environment} succeeded at "
        f"{str(record.revision_to)[:12]}, but it does not verify "
        f"({verdict.why_untrusted(position)}): it is not a rollback target"
    )


def _forced_runs(records: Sequence[AuditRecord]) -> set[str]:
    """Break-glass runs that went past a failed gate in any stage of any environment."""
    return {run_of(r) for r in records if r.break_glass and _gates_failed(r)}


@dataclass(frozen=True)
class AuditKnownGood:
    """The rollout engine's KnownGoodStore, read from the trail (`set` writes nothing:
    the final record of the run that completed the environment is the source).

    Only verified records count (`verified_known_good`); each claim not believed is
    said once through `warn`. `change`: the change type whose known-good it reads
    (None: the unnamed type).
    """

    store: AuditStore
    final_stages: Mapping[str, str] | None = None
    policy: Policy = field(default_factory=Policy)
    anchor: AnchorFile | None = None
    warn: Callable[[str], None] = field(default=_quiet, compare=False, repr=False)
    change: str | None = None
    _said: set[str] = field(default_factory=set, compare=False, repr=False)
    _checked: dict[tuple[str, ...], Checked] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(
        cls,
        trail: AuditTrail,
        final_stages: Mapping[str, str] | None,
        change: str | None = None,
    ) -> AuditKnownGood:
        return cls(trail.store, final_stages, trail.policy, trail.anchor, trail.warn, change=change)

    def get(self, environment: str) -> str | None:
        verdict = integrity.read(self.store, self.policy, self.anchor, seen=self._checked)
        revision, warnings = verified_known_good(
            verdict, environment, self.final_stages, self.change
        )
        for warning in warnings:
            if warning not in self._said:
                self._said.add(warning)
                self.warn(warning)
        return revision

    def set(self, environment: str, revision: str) -> None:
        return None


def open_trail(
    config: Config,
    *,
    now: Callable[[], datetime],
    warn: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> AuditTrail:
    """The trail the config's `audit` section names, for the repository at `config.root`.

    `warn` hears what the store fixed on its own (a torn tail moved to a side file) and
    the claims of the trail not believed. With the environment (`env`, the CLI's):
    records are signed with the writer's key, judged against the allowed signers, and
    the user's anchor follows the head. Without it, records are written unsigned, judged
    against `audit.signers` only, and no anchor is kept.
    """
    section = config.section("audit")
    keys = integrity.open_keys(config.root, section, env if env is not None else {"CI": "1"})
    store = open_store(config.root, section, warn=warn, signer=keys.signer)
    return AuditTrail(
        store,
        config.root,
        now,
        policy=keys.policy,
        anchor=integrity.anchor_for(keys, store),
        warn=warn or _quiet,
        missing_key=keys.missing_key if env is not None else None,
        signer=keys.signer,
    )
