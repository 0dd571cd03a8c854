"""What a trail proves: its chain, who signed each record, and that its head is still there.

`judge` names every problem `cd-checks audit verify` fails on (exit 1):
chain breaks (`record.verify`), records whose signature is bad or made by a
key no allowed signers file lists, unsigned records where signatures are
required (or after signed ones: a signature cannot be taken away), a head
seen earlier (the user's anchor, or `--anchor HASH`) that the trail lost or
changed, and a git remote rewritten under the local copy. It also says
which records can be believed (`trusted`), the only ones that may name a
known-good revision: none at all once the chain, the anchor or the history
is broken (whoever broke it would otherwise choose the rollback target, by
cutting the trail back to an old success); else those whose signature is
good, and unsigned ones where signatures are not required and no record
before them is signed.

`require_signatures` defaults to true when the config names `audit.signers`
(a team that lists its signers wants every record signed) and to false
otherwise, so a trail written before 0.2.0 still verifies, its unsigned
records reported. `open_keys` finds the writer's key and the allowed signers
for a repository; the environment is handed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cd_checks import state_dir
from cd_checks.audit import signing
from cd_checks.audit.anchor import Anchor, AnchorFile
from cd_checks.audit.record import AuditRecord, Problem, missing_anchor, verify
from cd_checks.audit.signing import Checked, Keyring, Signer
from cd_checks.audit.store import AuditStore, FileStore, GitBranchStore, RewrittenHistory

CHAIN_KINDS = ("edited", "deleted", "inserted", "reordered", "truncated", "rewritten")


@dataclass(frozen=True)
class Policy:
    """How records are judged: whose signatures count, and whether every record needs one."""

    keyring: Keyring = field(default_factory=Keyring)
    require_signatures: bool = False


@dataclass(frozen=True)
class Keys:
    """A repository's signing setup: the writer's key (None: it writes unsigned)."""

    signer: Signer | None
    policy: Policy
    state: Path | None  # the per-user state directory (anchors); None outside a user's run
    missing_key: str | None = None  # why an unsigned write is refused, when it must be


@dataclass(frozen=True)
class Verdict:
    """Every problem of a trail, each record's signature, and the records to believe."""

    records: tuple[AuditRecord, ...]
    problems: tuple[Problem, ...]
    signatures: tuple[Checked, ...]
    trusted: frozenset[int]
    unsigned: tuple[int, ...]  # positions of unsigned records accepted (not required)

    @property
    def broken(self) -> tuple[Problem, ...]:
        """The breaks of the chain, the anchor or the history (nothing is trusted then)."""
        return tuple(p for p in self.problems if p.kind in CHAIN_KINDS)

    @property
    def ok(self) -> bool:
        return not self.problems

    def signers(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for checked in self.signatures:
            if checked.status == "good":
                counts[checked.signer] = counts.get(checked.signer, 0) + 1
        return counts

    def why_untrusted(self, position: int) -> str:
        own = [p.kind for p in self.problems if p.position == position]
        return ", ".join(dict.fromkeys(own)) or "the trail is broken"


def judge(
    records: Sequence[AuditRecord],
    policy: Policy,
    *,
    anchor: Anchor | None = None,
    published: str | None = None,
    rewrite: RewrittenHistory | None = None,
    seen: dict[tuple[str, ...], Checked] | None = None,
) -> Verdict:
    """The verdict on `records` (see the module docstring).

    `seen`: signatures judged before, by record (a caller that judges the same trail
    again and again, as a rollout does, checks each signature once).
    """
    problems = list(verify(records))
    held = _anchor_problems(records, anchor)
    if published and all(r.hash != published for r in records):
        held.append(missing_anchor(published, len(records)))
    if rewrite is not None:
        held.append(_rewrite_problem(records, rewrite))
    problems += held
    checks = tuple(_check(r, policy.keyring, {} if seen is None else seen) for r in records)
    signed_from = _signed_from(records, checks, anchor)
    accepted: list[int] = []
    for position, (record, checked) in enumerate(zip(records, checks, strict=True)):
        problem = _signature_problem(position, record, checked, policy, signed_from)
        if problem is not None:
            problems.append(problem)
        elif checked.status == "unsigned":
            accepted.append(position)
    bad = {p.position for p in problems}
    broken = any(p.kind in CHAIN_KINDS for p in problems)
    trusted = frozenset() if broken else frozenset(range(len(records))) - bad
    ordered = tuple(sorted(problems, key=lambda p: p.position))
    return Verdict(tuple(records), ordered, checks, trusted, tuple(accepted))


def _check(
    record: AuditRecord, keyring: Keyring, checked: dict[tuple[str, ...], Checked]
) -> Checked:
    # What a signature's verdict depends on: the hash it signs, itself, the record's time.
    key = (str(record.hash), repr(record.signature), str(record.started_at), str(record.ended_at))
    if key not in checked:
        checked[key] = signing.check(record, keyring)
    return checked[key]


def name(record: AuditRecord) -> str:
    return f"record #{record.seq} ({record.id})"


def _signed_from(
    records: Sequence[AuditRecord], checks: Sequence[Checked], anchor: Anchor | None
) -> int:
    """The first position from which every record must be signed."""
    first = next((i for i, c in enumerate(checks) if c.status != "unsigned"), len(records))
    if anchor is not None and anchor.signed:
        at = next((i for i, r in enumerate(records) if r.seq == anchor.seq), len(records))
        first = min(first, at)
    return first


def _signature_problem(
    position: int, record: AuditRecord, checked: Checked, policy: Policy, signed_from: int
) -> Problem | None:
    who = f"{checked.signer!r} with key {checked.key}"
    if checked.status == "bad":
        by = f" by {who}" if checked.key else ""
        message = f"{name(record)} at position {position}: BAD signature{by}: {checked.reason}"
        return Problem("bad-signature", position, record.id, message)
    if checked.status == "unknown":
        message = (
            f"{name(record)} at position {position} is signed as {who}, which no allowed "
            f"signer may sign: {checked.reason}"
        )
        return Problem("unknown-signer", position, record.id, message)
    if checked.status != "unsigned":
        return None
    if policy.require_signatures:
        why = "audit.require_signatures is on"
    elif position > signed_from:
        why = "records before it are signed, and a signature cannot be taken away"
    elif position == signed_from:
        why = "it was signed when this trail was last written or verified here"
    else:
        return None
    message = f"{name(record)} at position {position} carries no signature: {why}"
    return Problem("unsigned", position, record.id, message)


def _anchor_problems(records: Sequence[AuditRecord], anchor: Anchor | None) -> list[Problem]:
    if anchor is None:
        return []
    at = next((i for i, r in enumerate(records) if r.seq == anchor.seq), None)
    seen = "when this trail was last written or verified here"
    if at is None:
        end = f"#{records[-1].seq}" if records else "nothing (it is empty)"
        message = (
            f"record #{anchor.seq} ({anchor.id}) is gone: the trail ends at {end}, but held "
            f"#{anchor.seq} {seen}: records were cut off its end"
        )
        return [Problem("truncated", len(records), anchor.id, message)]
    if records[at].hash != anchor.hash:
        message = (
            f"{name(records[at])} at position {at} is not the record #{anchor.seq} "
            f"({anchor.id}, hash {anchor.hash[:16]}) the trail held {seen}: it was rewritten"
        )
        return [Problem("rewritten", at, records[at].id, message)]
    return []


def _rewrite_problem(records: Sequence[AuditRecord], rewrite: RewrittenHistory) -> Problem:
    lost = rewrite.lost
    seq = lost.seq if lost is not None else None
    position = next((i for i, r in enumerate(records) if r.seq == seq), len(records))
    if lost is None:
        position = 0
    return Problem("rewritten", position, lost.id if lost else "unknown", str(rewrite))


def read(
    store: AuditStore,
    policy: Policy,
    anchor: AnchorFile | None = None,
    *,
    published: str | None = None,
    seen: dict[tuple[str, ...], Checked] | None = None,
) -> Verdict:
    """Read the trail and judge it; a force-pushed git remote is a problem, not an error."""
    rewrite: RewrittenHistory | None = None
    try:
        records = store.records()
    except RewrittenHistory as exc:
        records, rewrite = exc.records, exc
    held = anchor.read() if anchor is not None else None
    return judge(records, policy, anchor=held, published=published, rewrite=rewrite, seen=seen)


def location(store: AuditStore) -> str:
    """Which trail `store` is, for its anchor: the same wherever it is read from."""
    if isinstance(store, GitBranchStore):
        return store.location()
    if isinstance(store, FileStore):
        return f"file {store.path.resolve()}"
    return store.describe()


def open_keys(root: Path, section: Mapping[str, Any], env: Mapping[str, str]) -> Keys:
    """The writer's key and the allowed signers (see the module docstrings)."""
    state = signing.state_home(env)
    ci = signing.in_ci(env)
    signer = signing.env_signer(env)
    if signer is None and not ci:
        signer = signing.user_signer(state, signing.user_principal(env))
    files: list[tuple[Path, str]] = []
    configured = section.get("signers")
    if configured:
        path = state_dir.inside(root, configured, "audit.signers")
        files.append((path, f"audit.signers ({configured})"))
    own = state / signing.USER_SIGNERS
    if not ci and own.exists():
        files.append((own, str(own)))
    keyring = signing.load_keyring(files)
    if signer is not None:
        principal = keyring.principal_of(signer.blob) or signer.principal
        signer = Signer(principal, signer.public, signer.seed)
    require = bool(section.get("require_signatures", bool(configured)))
    missing = None
    if signer is None and require:
        missing = (
            "audit records must be signed (audit.require_signatures) and this job has no key: "
            f"set {signing.KEY_ENV} to an OpenSSH Ed25519 private key listed in audit.signers"
        )
    return Keys(signer, Policy(keyring, require), None if ci else state, missing)


def anchor_for(keys: Keys, store: AuditStore) -> AnchorFile | None:
    if keys.state is None:
        return None
    return AnchorFile.of(keys.state, location(store))
