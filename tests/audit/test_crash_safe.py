"""Crash-safe appends (issue 9, item 3): a torn tail never blocks, repair, break-glass fallback.

What a user sees: exit codes, the one warning or error line, the side files
next to the trail and the records in it. The SIGKILL test kills a real writer
process a hundred times mid-append.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cd_checks.audit.fallback import fallback_path
from cd_checks.audit.record import AuditRecord, verify
from cd_checks.audit.store import FileStore
from cd_checks.errors import AuditError
from tests.conftest import Run, init_repo, write_tree
from tests.rollout.test_cli import Repo

TRAIL = ".cd-checks/audit.jsonl"
BREAK_GLASS = (
    "rollout",
    "run",
    "--all",
    "--break-glass",
    "--reason",
    "outage",
    "--ticket",
    "INC-9",
)


def _store(path: Path, count: int = 3, warnings: list[str] | None = None) -> FileStore:
    store = FileStore(path, warnings.append if warnings is not None else print)
    for n in range(count):
        store.append(AuditRecord(kind="stage", id=f"r{n}", environment="prod"))
    return store


def _side(path: Path, kind: str) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.{kind}-*"))


def _ids(store: FileStore) -> list[str]:
    return [r.id for r in store.records()]


# --- the torn tail: moved aside automatically, never blocking ---------------------------------


def test_a_torn_tail_is_moved_to_a_side_file_by_the_next_append(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = _store(tmp_path / "audit.jsonl", warnings=warnings)
    torn = b'{"kind":"stage","id":"r3","detail":"' + b"x" * 5000
    with store.path.open("ab") as handle:
        handle.write(torn)
    store.append(AuditRecord(kind="stage", id="r4"))
    assert _ids(store) == ["r0", "r1", "r2", "r4"]
    assert verify(store.records()) == []
    [side] = _side(store.path, "torn")
    assert side.read_bytes() == b"4:" + torn + b"\n"
    assert len(warnings) == 1
    assert f"moved its torn last line (line 4, {len(torn)} bytes" in warnings[0]
    assert str(side) in warnings[0]


def test_reading_a_torn_trail_moves_the_tail_aside_and_reads_the_rest(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = _store(tmp_path / "audit.jsonl", warnings=warnings)
    with store.path.open("ab") as handle:
        handle.write(b"\x00\x00\x00")
    assert _ids(store) == ["r0", "r1", "r2"]
    assert store.path.read_bytes().endswith(b"\n")
    assert len(_side(store.path, "torn")) == 1 and len(warnings) == 1


def test_a_last_line_that_is_not_a_record_is_torn_too(tmp_path: Path) -> None:
    store = _store(tmp_path / "audit.jsonl")
    with store.path.open("ab") as handle:
        handle.write(b'{"kind":"stage"}\n{"kin')
    store.append(AuditRecord(kind="stage", id="r3"))
    assert _ids(store) == ["r0", "r1", "r2", "r3"]
    [side] = _side(store.path, "torn")
    assert side.read_bytes() == b'4:{"kind":"stage"}\n5:{"kin\n'


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = _store(tmp_path / "audit.jsonl", warnings=warnings)
    store.path.write_bytes(store.path.read_bytes().rstrip(b"\n"))  # an editor's doing
    store.append(AuditRecord(kind="stage", id="r3"))
    assert _ids(store) == ["r0", "r1", "r2", "r3"] and verify(store.records()) == []
    assert _side(store.path, "torn") == []
    assert warnings == [f"{store.path}: its last record lacked a newline; added one"]


def test_two_bad_lines_at_the_end_stop_the_append_naming_repair(tmp_path: Path) -> None:
    store = _store(tmp_path / "audit.jsonl")
    with store.path.open("ab") as handle:
        handle.write(b"garbage\nmore garbage\n")
    with pytest.raises(AuditError, match=r"audit\.jsonl:4: the last line is not an audit record"):
        store.append(AuditRecord(kind="stage", id="r3"))
    assert len(_side(store.path, "torn")) == 1  # the last one went; the rest is repair's


def test_a_reader_that_cannot_take_the_lock_ignores_the_torn_tail_loudly(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = _store(tmp_path / "audit.jsonl", warnings=warnings)
    with store.path.open("ab") as handle:
        handle.write(b'{"kind":"st')
    store.path.with_name("audit.jsonl.lock").unlink()
    store.path.with_name("audit.jsonl.lock").mkdir()  # no lock to take (a read-only place)
    assert _ids(store) == ["r0", "r1", "r2"]
    assert store.path.read_bytes().endswith(b'{"kind":"st')  # left as it was
    assert "ignoring its incomplete last line (11 bytes" in warnings[-1]


def test_verify_and_log_with_a_torn_tail_exit_0_and_name_the_side_file(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    store = _store(root / TRAIL)
    with store.path.open("ab") as handle:
        handle.write(b'{"kind":"stage","id":"torn"')
    verified = cli("-C", root, "audit", "verify")
    assert verified.code == 0
    assert "3 records, chain intact" in verified.out
    [side] = _side(store.path, "torn")
    assert verified.err.count("\n") == 1
    assert verified.err.startswith("cd-checks: warning: ") and f"to {side}" in verified.err
    again = cli("-C", root, "audit", "verify")
    assert again.code == 0 and "3 records, chain intact" in again.out
    assert again.err == (
        f"cd-checks: warning: {side}: 1 torn line(s) moved out of the trail {store.path} "
        "(a writer died mid-append; never a complete record): inspect, then delete the file\n"
    )
    logged = cli("-C", root, "audit", "log")
    assert logged.code == 0 and "r2" in logged.out and str(side) in logged.err


def test_metrics_with_a_torn_tail_works(tmp_path: Path, cli: Callable[..., Run]) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    store = _store(root / TRAIL)
    with store.path.open("ab") as handle:
        handle.write(b'{"kind":')
    run = cli("-C", root, "metrics", "-e", "prod", "--format", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out) and "moved its torn last line" in run.err


# --- 100 SIGKILLs during appends ------------------------------------------------------------


def _writer(path: str, run: str, out: int) -> None:
    """Append ~100 KB records through the real FileStore until killed; report each one."""
    store = FileStore(Path(path))
    blob, n = "x" * 100_000, 0
    while True:
        store.append(AuditRecord(kind="stage", id=f"{run}-{n}", detail={"blob": blob}))
        os.write(out, f"{run}-{n}\n".encode())  # after append returned: written and fsynced
        n += 1


def _kill_mid_append(path: Path, run: str, rng: random.Random) -> set[str]:
    """Start a writer process, let it append for a random moment, SIGKILL it; what it wrote."""
    read, write = os.pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_writer, args=(str(path), run, write)
    )
    child.start()
    os.close(write)
    with os.fdopen(read, "rb") as reports:
        first = reports.readline()  # its first append went through: nothing blocked it
        if first:
            time.sleep(rng.uniform(0, 0.04))
            os.kill(child.pid or 0, signal.SIGKILL)
        child.join()
        rest = reports.read()
    assert first, f"writer {run} could not append (exit code {child.exitcode})"
    assert child.exitcode == -signal.SIGKILL
    return {first.decode().strip(), *rest.decode().split()}


def test_100_sigkills_mid_append_lose_no_written_record_and_block_nothing(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    root = tmp_path / "repo"
    path = root / TRAIL
    rng = random.Random(9)
    written: set[str] = set()
    for run in range(100):
        written |= _kill_mid_append(path, f"k{run}", rng)
    verified = cli("-C", root, "audit", "verify")
    assert verified.code == 0, verified.out + verified.err
    assert "records, chain intact" in verified.out
    records = FileStore(path).records()
    assert written <= {r.id for r in records}  # 0 records that append returned are lost
    assert verify(records) == []
    for line in verified.err.splitlines():
        assert line.startswith("cd-checks: warning: ") and ".torn-" in line
    for side in _side(path, "torn"):  # one unfinished line each, never a whole record
        number, torn = side.read_bytes().split(b":", 1)
        assert number.isdigit() and torn.endswith(b"\n") and torn.count(b"\n") == 1
        assert torn.startswith(b'{"actor":') and not torn.endswith(b"}\n")


# --- cd-checks audit repair -----------------------------------------------------------------


def _repo_with_trail(tmp_path: Path, count: int = 3) -> tuple[Path, FileStore]:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    return root, _store(root / TRAIL, count)


def _insert(store: FileStore, position: int, line: bytes) -> None:
    lines = store.path.read_bytes().splitlines(keepends=True)
    lines.insert(position, line)
    store.path.write_bytes(b"".join(lines))


def test_a_bad_middle_line_is_one_error_naming_repair(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    root, store = _repo_with_trail(tmp_path)
    _insert(store, 1, b"<<<<<<< HEAD\n")
    for args in (("audit", "log"), ("audit", "verify"), ("metrics",)):
        run = cli("-C", root, *args)
        assert run.code == 2
        assert run.err == (
            f"cd-checks: error: {store.path}:2: not a JSON audit record: Expecting value: "
            "line 1 column 1 (char 0); `cd-checks audit repair` moves such lines out of the "
            "trail\n"
        )


def test_repair_is_a_dry_run_without_yes(tmp_path: Path, cli: Callable[..., Run]) -> None:
    root, store = _repo_with_trail(tmp_path)
    _insert(store, 1, b"<<<<<<< HEAD\n")
    _insert(store, 3, b">>>>>>> theirs\n")
    before = store.path.read_bytes()
    run = cli("-C", root, "audit", "repair")
    digest = hashlib.sha256(b"<<<<<<< HEAD\n").hexdigest()
    assert run.code == 0
    assert run.out.splitlines() == [
        "line 2: not a JSON audit record: Expecting value: line 1 column 1 (char 0) "
        f"(13 bytes, sha256 {digest[:16]})",
        "line 4: not a JSON audit record: Expecting value: line 1 column 1 (char 0) "
        f"(15 bytes, sha256 {hashlib.sha256(b'>>>>>>> theirs' + bytes([10])).hexdigest()[:16]})",
        f"would move 2 line(s) to {store.path}.repair-<UTC time> and record the repair; "
        "nothing changed (a dry run): `cd-checks audit repair --yes` does it",
    ]
    assert store.path.read_bytes() == before and _side(store.path, "repair") == []


def test_repair_yes_moves_bad_lines_aside_and_records_itself(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    root, store = _repo_with_trail(tmp_path)
    _insert(store, 1, b"<<<<<<< HEAD\n")
    _insert(store, 3, b"\xff\xfe not utf-8\n")
    run = cli("-C", root, "audit", "repair", "--yes")
    assert run.code == 0, run.err
    [side] = _side(store.path, "repair")
    assert side.read_bytes() == b"2:<<<<<<< HEAD\n4:\xff\xfe not utf-8\n"
    assert f"moved 2 line(s) to {side}; repair recorded as " in run.out
    records = store.records()
    assert [r.kind for r in records] == ["stage", "stage", "stage", "repair"]
    repair = records[-1]
    assert repair.outcome == "recorded" and repair.actor
    assert repair.detail["side_file"] == side.name
    assert [(d["line"], d["bytes"], d["sha256"]) for d in repair.detail["removed"]] == [
        (2, 13, hashlib.sha256(b"<<<<<<< HEAD\n").hexdigest()),
        (4, 13, hashlib.sha256(b"\xff\xfe not utf-8\n").hexdigest()),
    ]
    assert "not UTF-8" in repair.detail["removed"][1]["reason"]
    verified = cli("-C", root, "audit", "verify")
    assert verified.code == 0 and "4 records, chain intact" in verified.out
    assert f"{side}: 2 line(s) moved out of the trail by `cd-checks audit repair`" in verified.err
    logged = cli("-C", root, "audit", "log")
    assert logged.code == 0 and f"{repair.id}  repair" in logged.out
    again = cli("-C", root, "audit", "repair", "--yes")
    assert again.code == 0 and "every line is an audit record, nothing to repair" in again.out


def test_repair_never_removes_a_record_that_reads_but_breaks_the_chain(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    root, store = _repo_with_trail(tmp_path)
    lines = store.path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"environment":"prod"', b'"environment":"staging"')
    store.path.write_bytes(b"".join(lines))
    run = cli("-C", root, "audit", "repair", "--yes")
    assert run.code == 0 and "nothing to repair" in run.out
    assert _ids(store) == ["r0", "r1", "r2"]
    verified = cli("-C", root, "audit", "verify")
    assert verified.code == 1 and "edited: record r1 at position 1" in verified.out


def test_a_removed_record_line_stays_a_gap_verify_names(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    root, store = _repo_with_trail(tmp_path)
    lines = store.path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:40] + b"\n"  # a record damaged on disk: unreadable
    store.path.write_bytes(b"".join(lines))
    assert cli("-C", root, "audit", "repair", "--yes").code == 0
    verified = cli("-C", root, "audit", "verify")
    assert verified.code == 1
    assert "1 record was deleted before record r2" in verified.out


def test_repair_of_the_git_store_is_one_error(tmp_path: Path, cli: Callable[..., Run]) -> None:
    root = init_repo(
        write_tree(tmp_path / "repo", {"cd-checks.yml": "audit:\n  store: git\n", "a": "1\n"})
    )
    run = cli("-C", root, "audit", "repair")
    assert run.code == 2
    assert run.err.startswith("cd-checks: error: audit repair works on the file store")
    assert run.err.count("\n") == 1


# --- break-glass always writes --------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Repo:
    return Repo(tmp_path, capsys)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def _corrupt(repo: Repo) -> Path:
    """A trail with a bad line in the middle: no read of it works until it is repaired."""
    assert repo.cli("rollout", "run", "--stage", "staging")[0] == 0
    path = repo.root / TRAIL
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], b"<<<<<<< HEAD\n", *lines[1:]]))
    return path


def test_break_glass_writes_to_the_fallback_when_the_trail_is_corrupt(
    repo: Repo, state: Path
) -> None:
    trail = _corrupt(repo)
    before = trail.read_bytes()
    code, out, err = repo.cli("rollout", "run", "--all")
    assert code == 2
    assert err.splitlines()[-1].startswith(f"cd-checks: error: {trail}:2: not a JSON audit")
    code, out, err = repo.cli(*BREAK_GLASS)
    assert code == 0, out + err
    fallback = fallback_path(repo.root, os.environ)
    assert fallback.parent.parent.parent == state and fallback.name.startswith("repo-")
    assert f"cd-checks: BREAK-GLASS: the audit trail {trail} cannot be read" in err
    assert f"was written to {fallback}: keep that file" in err
    records = FileStore(fallback).records()
    assert verify(records) == []
    assert {r.kind for r in records} == {"stage", "break_glass"}
    assert [r.outcome for r in records if r.kind == "stage" and r.finished] == ["succeeded"] * 3
    assert all(r.break_glass["ticket"] == "INC-9" for r in records)
    assert trail.read_bytes() == before
    assert oct(fallback.stat().st_mode & 0o777) == "0o600"
    assert oct(fallback.parent.stat().st_mode & 0o777) == "0o700"
    assert set(repo.running().values()) == {repo.head()}


def test_break_glass_writes_to_the_fallback_when_the_trail_cannot_be_written(
    repo: Repo, state: Path
) -> None:
    assert repo.cli("rollout", "run", "--stage", "staging")[0] == 0
    lock = repo.root / (TRAIL + ".lock")
    lock.unlink()
    lock.mkdir()  # readable, but no writer can take the lock
    code, _, err = repo.cli("rollout", "run", "--stage", "canary")
    assert code == 2 and err.splitlines()[-1].startswith(
        "cd-checks: error: cannot write the audit record (stage): cannot write the audit trail"
    )
    code, out, err = repo.cli(*BREAK_GLASS)
    assert code == 0, out + err
    fallback = fallback_path(repo.root, os.environ)
    assert "is unusable (cannot write the audit trail" in err and str(fallback) in err
    kinds = [r.kind for r in FileStore(fallback).records()]
    assert kinds.count("break_glass") == 2 and kinds.count("stage") == 6  # 3 stages
    code, out, err = repo.cli("audit", "log")
    assert code == 0
    assert f"cd-checks: warning: {fallback}: 8 break-glass record(s) were written" in err
    code, out, err = repo.cli("audit", "verify")
    assert code == 0 and f"{fallback}: 8 break-glass record(s)" in err, out + err


def test_a_break_glass_run_with_a_usable_trail_writes_only_the_trail(
    repo: Repo, state: Path
) -> None:
    code, out, err = repo.cli(*BREAK_GLASS)
    assert code == 0, out + err
    assert "fallback" not in err and not fallback_path(repo.root, os.environ).exists()
    assert "break_glass" in {r.kind for r in FileStore(repo.root / TRAIL).records()}
