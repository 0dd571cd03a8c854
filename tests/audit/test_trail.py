"""The facade the rollout engine calls: start/finish records, known-good, failures."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cd_checks.audit.identity import ChangeRequest, Identity, git_runner
from cd_checks.audit.record import UNKNOWN, AuditRecord, verify
from cd_checks.audit.store import FileStore
from cd_checks.audit.trail import (
    AuditKnownGood,
    AuditTrail,
    BreakGlass,
    Gate,
    Rollback,
    final_of,
    find,
    known_good,
)
from cd_checks.errors import AuditError
from tests.conftest import git, init_repo, write_tree

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
IDENTITY = Identity(
    "bob", "github", ChangeRequest("github", "42", "https://x/pull/42", True, ("carol",), "bob")
)


def clock(start: datetime = T0, step: timedelta = timedelta(minutes=1)) -> Callable[[], datetime]:
    ticks = itertools.count()
    return lambda: start + step * next(ticks)


def ids() -> Callable[[datetime], str]:
    numbers = itertools.count()
    return lambda moment: f"id{next(numbers)}"


def _repo(tmp_path: Path) -> tuple[Path, str, str]:
    root = init_repo(write_tree(tmp_path / "repo", {"nginx.conf": "a\nb\n", "logo.png": b"\0\1"}))
    before = git(root, "rev-parse", "HEAD").strip()
    write_tree(root, {"nginx.conf": "a\nc\nd\n", "logo.png": b"\0\2", "new.yml": "k: v\n"})
    git(root, "add", "-A")
    git(root, "commit", "-qm", "change", "--author", "Zed <zed@example.com>")
    write_tree(root, {"new.yml": "k: w\n"})
    git(root, "commit", "-qam", "second")
    return root, before, git(root, "rev-parse", "HEAD").strip()


def _trail(tmp_path: Path, root: Path) -> AuditTrail:
    return AuditTrail(FileStore(tmp_path / "audit.jsonl"), root, clock(), ids(), git_runner(root))


def test_start_and_finish_record_everything_the_issue_lists(tmp_path: Path) -> None:
    root, before, after = _repo(tmp_path)
    trail = _trail(tmp_path, root)
    deploy = trail.start(
        "stage", "production", "canary", before, after, [["web1"], ["web2", "web3"]], IDENTITY
    )
    gates = [Gate(1, "web1", "http /healthz", True), Gate(2, "web2", "testinfra", False, "503")]
    rollback = Rollback(
        before,
        ("web1", "web2"),
        True,
        "gate failed",
        "2026-11-01T12:02:00Z",
        "2026-11-01T12:03:00Z",
    )
    final = trail.finish(deploy, "rolled_back", gates, rollback)
    start = find(trail.records(), deploy)
    assert start.outcome == "started" and start.started_at == "2026-11-01T12:00:00Z"
    assert start.changed_files == [
        {"path": "logo.png", "added": None, "deleted": None},
        {"path": "new.yml", "added": 1, "deleted": 0},
        {"path": "nginx.conf", "added": 2, "deleted": 1},
    ]
    assert start.diffstat == {"files": 3, "added": 3, "deleted": 1}
    assert start.authors == ["Test Author <author@example.com>", "Zed <zed@example.com>"]
    assert start.revision_from == before and start.revision_to == after
    assert start.change_request["approvers"] == ["carol"]
    assert (start.actor, start.actor_source) == ("bob", "github")
    assert start.waves == [["web1"], ["web2", "web3"]]
    assert final_of(trail.records(), deploy) == final
    assert final.refs == (deploy,) and final.outcome == "rolled_back"
    assert final.ended_at == "2026-11-01T12:01:00Z" and final.started_at == start.started_at
    assert final.gates[1] == {
        "wave": 2,
        "host": "web2",
        "check": "testinfra",
        "passed": False,
        "detail": "503",
    }
    assert final.rollback["hosts"] == ["web1", "web2"] and final.rollback["verified"] is True
    assert final.changed_files == start.changed_files
    assert verify(trail.records()) == []


def test_first_rollout_has_unknown_changes_never_guessed(tmp_path: Path) -> None:
    root, _, after = _repo(tmp_path)
    trail = _trail(tmp_path, root)
    deploy = trail.start("rollout", "staging", None, None, after, [["s1"]], Identity())
    start = find(trail.records(), deploy)
    assert (start.revision_from, start.changed_files, start.diffstat, start.authors) == (
        UNKNOWN,
        UNKNOWN,
        UNKNOWN,
        UNKNOWN,
    )
    assert (start.actor, start.change_request) == (UNKNOWN, UNKNOWN)


def test_break_glass_adds_its_own_record(tmp_path: Path) -> None:
    root, before, after = _repo(tmp_path)
    trail = _trail(tmp_path, root)
    deploy = trail.start(
        "rollout",
        "production",
        None,
        before,
        after,
        [["w1"]],
        IDENTITY,
        BreakGlass("DNS down", "INC-7"),
    )
    kinds = [(r.kind, r.refs, r.break_glass) for r in trail.records()]
    assert kinds == [
        ("rollout", (), {"reason": "DNS down", "ticket": "INC-7"}),
        ("break_glass", (deploy,), {"reason": "DNS down", "ticket": "INC-7"}),
    ]


def test_break_glass_without_a_ticket_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    root, before, after = _repo(tmp_path)
    trail = _trail(tmp_path, root)
    with pytest.raises(AuditError, match="break-glass needs a ticket"):
        trail.start("rollout", "p", None, before, after, [], IDENTITY, BreakGlass("why", " "))
    assert trail.records() == []


def test_a_trail_that_cannot_be_written_refuses_the_start(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("")
    trail = AuditTrail(FileStore(tmp_path / "blocked" / "audit.jsonl"), tmp_path, clock())
    with pytest.raises(AuditError, match=r"cannot write the audit record \(rollout\)"):
        trail.start("rollout", "p", None, None, "abc", [], Identity())


def test_a_final_record_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    root, before, after = _repo(tmp_path)
    trail = _trail(tmp_path, root)
    deploy = trail.start("stage", "p", "canary", before, after, [], IDENTITY)
    trail.store.path.chmod(0o444)  # type: ignore[attr-defined]
    lock = trail.store.path.with_name("audit.jsonl.lock")  # type: ignore[attr-defined]
    lock.unlink()
    lock.mkdir()
    with pytest.raises(AuditError, match=f"the stage {deploy} ran but its final audit record"):
        trail.finish(deploy, "succeeded")


def _run(kind: str, env: str, stage: str, outcome: str, rev: str, **kw: Any) -> AuditRecord:
    return AuditRecord(
        kind=kind,
        id=f"{env}-{stage}-{rev}-{outcome}",
        environment=env,
        stage=stage,
        outcome=outcome,
        revision_to=rev,
        **kw,
    )


def test_known_good_is_the_last_succeeded_run_of_the_environment() -> None:
    records = [
        _run("stage", "prod", "canary", "succeeded", "r1"),
        _run("stage", "prod", "production", "succeeded", "r1"),
        _run("stage", "prod", "canary", "succeeded", "r2"),
        _run("stage", "staging", "staging", "succeeded", "r3"),
        _run("stage", "prod", "canary", "started", "r4"),
        _run("stage", "prod", "production", "rolled_back", "r4"),
        _run(
            "stage",
            "prod",
            "production",
            "succeeded",
            "r5",
            break_glass={"reason": "x", "ticket": "y"},
            gates=[{"passed": False}],
        ),
    ]
    assert known_good(records, "prod") == "r2"
    assert known_good(records, "prod", {"prod": "production"}) == "r1"
    assert known_good(records, "staging") == "r3"
    assert known_good(records, "nowhere") is None


def test_audit_known_good_adapter_reads_the_trail(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "audit.jsonl")
    adapter = AuditKnownGood(store, {"prod": "production"})
    assert adapter.get("prod") is None
    store.append(_run("stage", "prod", "production", "succeeded", "abc"))
    adapter.set("prod", "ignored")
    assert adapter.get("prod") == "abc"
    assert len(store.records()) == 1


def test_revisions_are_recorded_as_full_commit_ids(tmp_path: Path) -> None:
    root, before, after = _repo(tmp_path)
    trail = _trail(tmp_path, root)
    deploy = trail.start("stage", "p", "canary", "HEAD~2", "HEAD", [], Identity())
    start = find(trail.records(), deploy)
    assert (start.revision_from, start.revision_to) == (before, after)


def test_a_run_is_finished_once(tmp_path: Path) -> None:
    root, before, after = _repo(tmp_path)
    trail = _trail(tmp_path, root)
    deploy = trail.start("stage", "p", "canary", before, after, [], Identity())
    trail.finish(deploy, "succeeded")
    with pytest.raises(AuditError, match="already has its final record"):
        trail.finish(deploy, "failed")
