"""Both stores: append chains, concurrent writers lose nothing, failures are AuditErrors."""

from __future__ import annotations

import multiprocessing
import subprocess
import threading
from pathlib import Path

import pytest

from cd_checks.audit.record import AuditRecord, verify
from cd_checks.audit.store import FileStore, GitBranchStore, open_store
from cd_checks.errors import AuditError
from tests.conftest import git, init_repo, write_tree

WRITERS = 4
EACH = 25


def _append_many(path: str, writer: int, count: int) -> None:
    store = FileStore(Path(path))
    for n in range(count):
        store.append(AuditRecord(kind="stage", id=f"w{writer}-{n}", environment="prod"))


def _ids(records: list[AuditRecord]) -> set[str]:
    return {r.id for r in records}


def _expected(writers: int, each: int) -> set[str]:
    return {f"w{w}-{n}" for w in range(writers) for n in range(each)}


def test_file_store_appends_chained_records(tmp_path: Path) -> None:
    store = FileStore(tmp_path / ".cd-checks" / "audit.jsonl")
    first = store.append(AuditRecord(kind="rollout", id="a"))
    second = store.append(AuditRecord(kind="rollout", id="b"))
    assert (first.seq, second.seq, second.prev_hash) == (0, 1, first.hash)
    assert store.records() == [first, second]


def test_concurrent_file_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".cd-checks" / "audit.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_append_many, args=(str(path), w, EACH)) for w in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * WRITERS
    records = FileStore(path).records()
    assert len(records) == WRITERS * EACH
    assert _ids(records) == _expected(WRITERS, EACH)
    assert verify(records) == []


def test_an_unwritable_file_store_is_an_audit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(AuditError, match="cannot write the audit trail"):
        FileStore(blocker / "audit.jsonl").append(AuditRecord(kind="rollout", id="a"))


def test_open_store_follows_the_config(tmp_path: Path) -> None:
    assert open_store(tmp_path, {}) == FileStore(tmp_path / ".cd-checks/audit.jsonl")
    store = open_store(tmp_path, {"store": "git", "branch": "audit", "remote": "origin"})
    assert isinstance(store, GitBranchStore)
    assert (store.branch, store.remote) == ("audit", "origin")


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    write_tree(root, {"app.conf": "x\n"})
    return init_repo(root)


def test_git_store_commits_one_record_each_without_touching_the_work_tree(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    write_tree(root, {"dirty.txt": "uncommitted\n"})
    git(root, "add", "dirty.txt")
    status = git(root, "status", "--porcelain")
    store = GitBranchStore(root)
    for n in range(3):
        store.append(AuditRecord(kind="stage", id=f"r{n}", environment="prod"))
    records = store.records()
    assert [r.id for r in records] == ["r0", "r1", "r2"] and verify(records) == []
    log = git(root, "log", "--format=%s", "cd-checks/audit").splitlines()
    assert log == [f"audit: stage r{n} (prod)" for n in (2, 1, 0)]
    files = git(root, "ls-tree", "-r", "--name-only", "cd-checks/audit").split()
    assert files == [f"records/{n:08d}-r{n}.json" for n in range(3)]
    assert git(root, "status", "--porcelain") == status
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"


def test_git_store_local_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    root = _repo(tmp_path)

    def write(writer: int) -> None:
        store = GitBranchStore(root)
        for n in range(10):
            store.append(AuditRecord(kind="stage", id=f"w{writer}-{n}"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = GitBranchStore(root).records()
    assert _ids(records) == _expected(3, 10) and verify(records) == []


def test_two_ci_jobs_pushing_to_one_bare_remote_lose_nothing(tmp_path: Path) -> None:
    origin = _repo(tmp_path)
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(origin), str(bare)], check=True)
    clones = []
    for name in ("job-a", "job-b"):
        clone = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
        clones.append(clone)
    errors: list[BaseException] = []

    def job(writer: int, clone: Path) -> None:
        store = GitBranchStore(clone, remote="origin")
        try:
            for n in range(EACH):
                store.append(AuditRecord(kind="stage", id=f"w{writer}-{n}", environment="prod"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=(w, c)) for w, c in enumerate(clones)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    fresh = tmp_path / "auditor"
    subprocess.run(["git", "clone", "-q", str(bare), str(fresh)], check=True)
    records = GitBranchStore(fresh, remote="origin").records()
    assert len(records) == 2 * EACH
    assert _ids(records) == _expected(2, EACH)
    assert verify(records) == []
    commits = subprocess.run(
        ["git", "-C", str(bare), "rev-list", "--count", "cd-checks/audit"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(commits) == 2 * EACH


def test_git_store_that_cannot_push_is_an_audit_error(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    git(root, "remote", "add", "origin", str(tmp_path / "missing.git"))
    with pytest.raises(AuditError, match="cannot fetch the audit branch from origin"):
        GitBranchStore(root, remote="origin").append(AuditRecord(kind="rollout", id="a"))


def test_git_store_outside_a_repository_is_an_audit_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="git hash-object"):
        GitBranchStore(tmp_path).append(AuditRecord(kind="rollout", id="a"))


def test_a_torn_last_line_no_longer_stops_further_writes(tmp_path: Path) -> None:
    # Issue 9: it is moved to a side file instead (tests/audit/test_crash_safe.py).
    store = FileStore(tmp_path / "audit.jsonl")
    store.append(AuditRecord(kind="rollout", id="a"))
    with store.path.open("a") as handle:
        handle.write('{"kind": "rollout", "id"')
    store.append(AuditRecord(kind="rollout", id="b"))
    assert [r.id for r in store.records()] == ["a", "b"]
