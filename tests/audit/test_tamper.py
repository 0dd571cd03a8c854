"""Tampering with a signed trail, as someone who can write the file or push the branch can:
every way is caught by `cd-checks audit verify` (exit 1, the record named), in both stores,
and a forged success never becomes the rollback target."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cd_checks import config
from cd_checks.audit import integrity, signing
from cd_checks.audit.identity import git_runner
from cd_checks.audit.integrity import Policy
from cd_checks.audit.record import AuditRecord, chain, compute_hash
from cd_checks.audit.signing import Keyring, Signer, load_allowed, sign
from cd_checks.audit.store import FileStore, GitBranchStore
from cd_checks.audit.trail import AuditKnownGood, AuditTrail, open_trail, verified_known_good
from cd_checks.errors import AuditError
from cd_checks.rollout.recorder import TrailHistory
from tests.conftest import Run, git, init_repo, write_tree
from tests.rollout.test_cli import Repo

TRAIL = ".cd-checks/audit.jsonl"
BRANCH = "cd-checks/audit"


@pytest.fixture(autouse=True)
def user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A user at a workstation: their own state directory (key, allowed list, anchors)."""
    state = tmp_path / "xdg"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    for name in ("CI", "CD_CHECKS_AUDIT_KEY", "GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(name, raising=False)
    return state / "cd-checks"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def write_records(root: Path, count: int = 5) -> list[AuditRecord]:
    """`count` signed records, written as `rollout run` writes them (signed, anchored)."""
    trail = open_trail(config.load(root), now=_now, env=os.environ)
    return [
        trail.append(
            AuditRecord(
                kind="stage",
                id=f"r{n}",
                environment="production",
                stage="production",
                outcome="succeeded",
                revision_to=str(n) * 40,
            )
        )
        for n in range(count)
    ]


def mallory(tmp_path: Path) -> Signer:
    """Someone with write access to the trail and a key of their own, not an allowed one."""
    return signing.user_signer(tmp_path / "mallory", "mallory")


def forged(previous: AuditRecord | None, signer: Signer | None = None) -> AuditRecord:
    claim = AuditRecord(
        kind="stage",
        id="forged",
        environment="production",
        stage="production",
        outcome="succeeded",
        revision_to="0" * 40,
    )
    return sign(chain(claim, previous), signer)


def rechain(records: list[AuditRecord], start: int) -> list[AuditRecord]:
    """Recompute seq, prev_hash and hash from `start` on (signatures cannot be redone)."""
    out = list(records[:start])
    for record in records[start:]:
        seq, prev = (out[-1].seq + 1, out[-1].hash) if out else (0, "0" * 64)
        moved = replace(record, seq=seq, prev_hash=prev, hash="")
        out.append(replace(moved, hash=compute_hash(moved)))
    return out


# Each tampering: (records, attacker's key) -> the records the attacker leaves.
def edit(records: list[AuditRecord], key: Signer) -> list[AuditRecord]:
    return [*records[:2], replace(records[2], actor="mallory"), *records[3:]]


def edit_and_rehash(records: list[AuditRecord], key: Signer) -> list[AuditRecord]:
    return rechain([*records[:2], replace(records[2], outcome="failed"), *records[3:]], 2)


def truncate(records: list[AuditRecord], key: Signer) -> list[AuditRecord]:
    return records[:3]


def append_forged(records: list[AuditRecord], key: Signer) -> list[AuditRecord]:
    return [*records, forged(records[-1])]


def append_forged_signed(records: list[AuditRecord], key: Signer) -> list[AuditRecord]:
    return [*records, forged(records[-1], key)]


def insert_forged(records: list[AuditRecord], key: Signer) -> list[AuditRecord]:
    return rechain([*records[:2], forged(records[1], key), *records[2:]], 3)


TAMPERINGS = {
    "edit": (edit, "edited: record r2 at position 2 was edited: its content does not match"),
    "edit-and-rehash": (
        edit_and_rehash,
        "bad-signature: record #2 (r2) at position 2: BAD signature by ",
    ),
    "truncate": (truncate, "truncated: record #4 (r4) is gone: the trail ends at #2, but held #4"),
    "append-forged": (
        append_forged,
        "unsigned: record #5 (forged) at position 5 carries no signature: records before it "
        "are signed, and a signature cannot be taken away",
    ),
    "append-forged-signed": (
        append_forged_signed,
        "unknown-signer: record #5 (forged) at position 5 is signed as 'mallory' with key SHA256:",
    ),
    "insert-forged": (
        insert_forged,
        "unknown-signer: record #2 (forged) at position 2 is signed as 'mallory'",
    ),
}


def _write_file(path: Path, records: list[AuditRecord]) -> None:
    path.write_text("".join(r.to_json() + "\n" for r in records))


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_file_store_tampering_is_caught(name: str, tmp_path: Path, cli: Callable[..., Run]) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    records = write_records(root)
    clean = cli("-C", root, "audit", "verify")
    assert clean.code == 0, clean.out + clean.err
    assert "5 records, chain intact, 5 signed (" in clean.out
    tamper, expected = TAMPERINGS[name]
    _write_file(root / TRAIL, tamper(records, mallory(tmp_path)))
    caught = cli("-C", root, "audit", "verify")
    assert caught.code == 1, caught.out
    assert expected in caught.out
    assert "problem(s)" in caught.err


class Remote:
    """A bare remote, a deployer's clone (writes the trail) and an attacker's clone."""

    def __init__(self, tmp_path: Path) -> None:
        origin = init_repo(
            write_tree(
                tmp_path / "origin", {"cd-checks.yml": "audit: {store: git, remote: origin}\n"}
            )
        )
        self.tmp = tmp_path
        self.bare = tmp_path / "remote.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(origin), str(self.bare)], check=True)
        self.deployer = self.clone("deployer")

    def clone(self, name: str) -> Path:
        target = self.tmp / name
        subprocess.run(["git", "clone", "-q", str(self.bare), str(target)], check=True)
        return target

    def push(self, records: list[AuditRecord], *, keep: int | None = None) -> None:
        """The attacker's clone commits `records` as the branch's records and pushes: on
        top of the branch (a fast-forward), or on its commit #`keep` (a forced push)."""
        attacker = self.clone(f"attacker-{len(list(self.tmp.glob('attacker-*')))}")
        git(attacker, "checkout", "-q", "-b", "work", f"origin/{BRANCH}")
        if keep is not None:
            git(attacker, "reset", "-q", "--hard", f"HEAD~{keep}")
        git(attacker, "rm", "-q", "-r", "records")
        for record in records:
            write_tree(attacker, {f"records/{record.seq:08d}-{record.id}.json": record.to_json()})
        git(attacker, "add", "-A", "records")
        git(attacker, "commit", "-q", "-m", "audit: tidy up")
        force = ["--force"] if keep is not None else []
        git(attacker, "push", "-q", *force, "origin", f"work:{BRANCH}")


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_git_store_tampering_is_caught(name: str, tmp_path: Path, cli: Callable[..., Run]) -> None:
    remote = Remote(tmp_path)
    records = write_records(remote.deployer)
    assert cli("-C", remote.deployer, "audit", "verify").code == 0
    tamper, expected = TAMPERINGS[name]
    remote.push(tamper(records, mallory(tmp_path)))
    caught = cli("-C", remote.deployer, "audit", "verify")
    assert caught.code == 1, caught.out + caught.err
    assert expected in caught.out
    assert "problem(s)" in caught.err


def test_a_force_pushed_rewrite_is_caught_by_the_writer_and_by_a_fresh_clone(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    remote = Remote(tmp_path)
    records = write_records(remote.deployer)
    assert cli("-C", remote.deployer, "audit", "verify").code == 0
    # Back to record #2 and a new history from there, chain recomputed, force-pushed.
    kept = records[:3]
    remote.push([*kept, forged(kept[-1])], keep=2)
    caught = cli("-C", remote.deployer, "audit", "verify")
    assert caught.code == 1
    assert (
        f"rewritten: the audit branch {BRANCH} on origin was rewritten (force-pushed): "
        "record #3 (r3) of the local copy is not in its history" in caught.out
    )
    # The writer does not build on it either: its next record is refused, saying why.
    trail = open_trail(config.load(remote.deployer), now=_now, env=os.environ)
    with pytest.raises(AuditError, match="was rewritten"):
        trail.append(AuditRecord(kind="incident_open", id="i1"))
    # A fresh clone has no local copy to compare with; the user's anchor remembers #4.
    fresh = remote.clone("fresh")
    again = cli("-C", fresh, "audit", "verify")
    assert again.code == 1
    assert "truncated: record #4 (r4) is gone: the trail ends at #3" in again.out
    assert "unsigned: record #3 (forged)" in again.out


def test_verify_json_gives_the_head_and_the_anchor_follows_it(
    tmp_path: Path, cli: Callable[..., Run], user: Path
) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    records = write_records(root, 2)
    result = cli("-C", root, "audit", "verify", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["ok"] and data["records"] == 2 and data["problems"] == []
    assert data["head"] == {"seq": 1, "id": "r1", "hash": records[-1].hash}
    assert data["anchor"] == {"seq": 1, "id": "r1", "hash": records[-1].hash, "signed": True}
    [anchor] = (user / "anchors").glob("*.json")
    assert oct(anchor.stat().st_mode & 0o777) == "0o600"
    _write_file(root / TRAIL, records[:1])
    cut = json.loads(cli("-C", root, "audit", "verify", "--format", "json").out)
    assert not cut["ok"] and [p["kind"] for p in cut["problems"]] == ["truncated"]
    assert cut["problems"][0]["id"] == "r1"


def test_a_trail_from_before_signatures_still_verifies_its_records_reported(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    old = Path(__file__).parent / "fixtures/trail-0.1.0.jsonl"
    write_tree(root, {TRAIL: old.read_text()})
    result = cli("-C", root, "audit", "verify")
    assert result.code == 0, result.out
    assert "unsigned: 2 record(s) (#0..#1) carry no signature" in result.out
    assert "2 records, chain intact, 0 signed, 2 unsigned" in result.out
    # New records are signed; the old ones stay as they were.
    write_records(root, 1)
    assert "3 records, chain intact, 1 signed" in cli("-C", root, "audit", "verify").out
    (root / "cd-checks.yml").write_text("audit: {require_signatures: true}\n")
    required = cli("-C", root, "audit", "verify")
    assert required.code == 1
    assert "carries no signature: audit.require_signatures is on" in required.out


# --- known-good from verified records only --------------------------------------------------


def _signed_store(tmp_path: Path) -> tuple[FileStore, Policy]:
    alice = signing.user_signer(tmp_path / "alice", "alice")
    ring = Keyring(load_allowed(tmp_path / "alice" / "allowed_signers"))
    store = FileStore(tmp_path / "audit.jsonl", signer=alice)
    for revision in ("1" * 40, "2" * 40):
        store.append(
            AuditRecord(
                kind="stage",
                id=f"run-{revision[0]}",
                environment="production",
                stage="production",
                outcome="succeeded",
                revision_to=revision,
            )
        )
    return store, Policy(ring)


def test_known_good_comes_only_from_verified_records(tmp_path: Path) -> None:
    store, policy = _signed_store(tmp_path)
    records = store.records()
    _write_file(store.path, [*records, forged(records[-1], mallory(tmp_path))])
    revision, warnings = verified_known_good(integrity.read(store, policy), "production")
    assert revision == "2" * 40
    assert warnings == [
        "audit record #2 (forged) says production succeeded at 000000000000, but it does "
        "not verify (unknown-signer): it is not a rollback target"
    ]
    # A later genuine success is believed again; the forged claim is left behind.
    store.append(
        AuditRecord(
            kind="rollback",
            id="rb",
            environment="production",
            outcome="succeeded",
            revision_to="3" * 40,
        )
    )
    assert verified_known_good(integrity.read(store, policy), "production") == ("3" * 40, [])


def test_a_broken_chain_names_no_known_good(tmp_path: Path) -> None:
    store, policy = _signed_store(tmp_path)
    records = store.records()
    _write_file(store.path, [replace(records[0], actor="mallory"), records[1]])
    revision, warnings = verified_known_good(integrity.read(store, policy), "production")
    assert revision is None
    assert warnings == [
        "audit record #1 (run-2) says production succeeded at 222222222222, but it does not "
        "verify (the trail is broken): it is not a rollback target",
        "the audit trail is broken (edited at position 0): no known-good revision is taken "
        "from it; run `cd-checks audit verify`",
    ]


def test_unsigned_records_count_only_where_signatures_are_not_required(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "audit.jsonl")
    store.append(
        AuditRecord(
            kind="rollback", id="a", environment="p", outcome="succeeded", revision_to="1" * 40
        )
    )
    assert verified_known_good(integrity.read(store, Policy()), "p") == ("1" * 40, [])
    revision, [warning] = verified_known_good(
        integrity.read(store, Policy(require_signatures=True)), "p"
    )
    assert revision is None and "(unsigned): it is not a rollback target" in warning


def test_the_engine_adapter_says_each_unbelieved_claim_once(tmp_path: Path) -> None:
    store, policy = _signed_store(tmp_path)
    records = store.records()
    _write_file(store.path, [*records, forged(records[-1])])
    heard: list[str] = []
    adapter = AuditKnownGood(store, {"production": "production"}, policy, warn=heard.append)
    assert adapter.get("production") == adapter.get("production") == "2" * 40
    assert len(heard) == 1 and "record #2 (forged)" in heard[0]


def test_a_forged_success_is_never_the_rollback_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = Repo(tmp_path, capsys)
    old = repo.head()
    assert repo.cli("rollout", "run", "--all")[0] == 0
    good = repo.commit({"notes.txt": "v2\n"})
    assert repo.cli("rollout", "run", "--all")[0] == 0
    path = repo.root / TRAIL
    records = FileStore(path).records()
    claim = replace(forged(records[-1]), environment="staging", stage="staging", revision_to=old)
    claim = chain(claim, records[-1])
    _write_file(path, [*records, claim])
    repo.commit({"broken": "yes"})
    code, out, err = repo.cli("rollout", "run", "--all")
    assert code == 1
    assert f"rollback of environment staging to {good[:12]}: stage-1, stage-2" in out
    assert (
        f"cd-checks: warning: audit record #{claim.seq} (forged) says staging succeeded at "
        f"{old[:12]}, but it does not verify (unsigned): it is not a rollback target"
    ) in err
    assert set(repo.running().values()) == {good}


def test_a_forged_rollback_record_does_not_choose_the_base_revision(tmp_path: Path) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    parent = git(root, "rev-parse", "HEAD").strip()
    write_tree(root, {"a.txt": "2\n"})
    git(root, "commit", "-qam", "two")
    head = git(root, "rev-parse", "HEAD").strip()
    store, policy = _signed_store(tmp_path)
    claim = AuditRecord(
        kind="stage",
        id="forged",
        environment="production",
        stage="production",
        outcome="rolled_back",
        revision_to=head,
        rollback={"target": "0" * 40, "verified": True, "hosts": ["web1"]},
    )
    records = store.records()
    _write_file(store.path, [*records, chain(claim, records[-1])])
    trail = AuditTrail(store, root, _now, policy=policy)
    history = TrailHistory(trail, git_runner(root))
    base = history.base("production", head)
    assert base is not None and base.revision == parent
    assert history.failed_run("production") is None
    assert [r.id for r in trail.believed()] == ["run-1", "run-2"]


def test_a_trail_reset_on_purpose_verifies_once_its_anchor_is_removed(
    tmp_path: Path, cli: Callable[..., Run], user: Path
) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    write_records(root, 2)
    (root / TRAIL).unlink()
    reset = cli("-C", root, "audit", "verify")
    assert reset.code == 1 and "truncated: record #1 (r1) is gone" in reset.out
    [anchor] = (user / "anchors").glob("*.json")
    assert f"the head last seen here is kept in {anchor}; only if this trail" in reset.err
    anchor.unlink()
    assert cli("-C", root, "audit", "verify").code == 0


def test_the_anchor_of_a_git_trail_never_keeps_credentials(tmp_path: Path) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    git(root, "remote", "add", "origin", "https://deploy:s3cret@git.example.com/ops/infra.git")
    store = GitBranchStore(root, remote="origin")
    assert store.location() == f"git https://git.example.com/ops/infra.git {BRANCH}"


def test_a_ci_job_without_its_key_does_not_deploy_but_break_glass_does_loudly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo(tmp_path, capsys)
    team = signing.user_signer(tmp_path / "team", "ci")
    text = (repo.root / "cd-checks.yml").read_text() + "audit: {signers: audit-signers}\n"
    repo.commit({"cd-checks.yml": text, "audit-signers": team.allowed_line() + "\n"})
    monkeypatch.setenv("CI", "true")
    code, _, err = repo.cli("rollout", "run", "--all")
    assert code == 2 and repo.running() == {}
    assert err.splitlines()[-1] == (
        "cd-checks: error: cannot write the audit record (stage): audit records must be "
        "signed (audit.require_signatures) and this job has no key: set CD_CHECKS_AUDIT_KEY "
        "to an OpenSSH Ed25519 private key listed in audit.signers"
    )
    emergency = ("rollout", "run", "--all", "--break-glass", "--reason", "outage")
    code, out, err = repo.cli(*emergency, "--ticket", "INC-7")
    assert code == 0, out + err
    assert "cd-checks: warning: BREAK-GLASS: audit records must be signed" in err
    caught = repo.cli("audit", "verify")
    assert caught[0] == 1
    assert "carries no signature: audit.require_signatures is on" in caught[1]
    monkeypatch.setenv("CD_CHECKS_AUDIT_KEY", str(tmp_path / "team" / "audit_ed25519"))
    assert repo.cli("rollout", "run", "--all")[0] == 0
    signed = FileStore(repo.root / TRAIL).records()[-1].signature
    assert signed["signer"] == "ci" and signed["key"] == team.fingerprint
