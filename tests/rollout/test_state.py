"""Locks that survive crashes, run records (known-good lives in the audit trail)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cd_checks.errors import RolloutError
from cd_checks.rollout.state import LockHolder, RunRecord, StateDir, process_alive, process_start


def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path, lambda: "2026-01-01T00:00:00+00:00")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    child.wait()
    return child.pid


def test_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    store = state(tmp_path)
    me = store.me("cd-checks rollout run --all")
    assert store.acquire("production", me, break_lock=False) == []
    other = LockHolder(1, me.hostname, "later", "second run")
    with pytest.raises(RolloutError, match=rf"locked by pid {me.pid} on .*rollout run --all"):
        store.acquire("production", other, break_lock=False)
    store.release("production", other)  # not the holder: nothing happens
    assert store.holder("production") == me
    store.release("production", me)
    assert store.holder("production") is None


def test_a_dead_holder_on_this_host_is_broken_with_a_note(tmp_path: Path) -> None:
    store = state(tmp_path)
    me = store.me("now")
    store.acquire(
        "staging", LockHolder(dead_pid(), me.hostname, "earlier", "old"), break_lock=False
    )
    notes = store.acquire("staging", me, break_lock=False)
    assert len(notes) == 1 and "no longer running" in notes[0]
    assert store.holder("staging") == me


def test_a_holder_on_another_host_is_never_presumed_dead(tmp_path: Path) -> None:
    store = state(tmp_path)
    store.acquire(
        "staging", LockHolder(dead_pid(), "elsewhere", "earlier", "old"), break_lock=False
    )
    with pytest.raises(RolloutError, match="on elsewhere"):
        store.acquire("staging", store.me("now"), break_lock=False)
    notes = store.acquire("staging", store.me("now"), break_lock=True)
    assert "--break-lock" in notes[0]


def test_process_alive_sees_zombies_and_reused_pids() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    child.wait()
    assert not process_alive(child.pid, None)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        pass
    assert not process_alive(zombie.pid, None)
    zombie.wait()
    me = Path("/proc/self").resolve().name
    assert process_alive(int(me), process_start(int(me)))
    assert not process_alive(int(me), "1")  # same pid, another start time: reused


def test_run_record_round_trip(tmp_path: Path) -> None:
    store = state(tmp_path)
    record = RunRecord(
        "production", "abc", "running", "canary", (("h1",), ("h2", "h3")), 1, 0, ("h1",)
    )
    store.save(record.with_applied(("h1", "h2")))
    assert store.record("production") == record.with_applied(("h2",))
    store.close("production", "done", "abc")
    assert store.record("production") is None and store.closed("production") == "done"
    marker = json.loads((tmp_path / "production" / "rollout.json").read_text())
    assert marker["status"] == "done" and marker["revision"] == "abc"


def test_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "production").mkdir()
    (tmp_path / "production" / "rollout.json").write_text("{nope")
    with pytest.raises(RolloutError, match="rollout.json is corrupt"):
        state(tmp_path).record("production")


def test_the_lock_is_never_visible_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = state(tmp_path)
    seen: list[str] = []
    real_link = os.link

    def link(source: str | Path, target: str | Path) -> None:
        real_link(source, target)
        seen.append(Path(target).read_text())

    monkeypatch.setattr(os, "link", link)
    me = store.me("run")
    store.acquire("production", me, break_lock=False)
    assert seen and seen[0].strip() and store.holder("production") == me
    assert [p.name for p in (tmp_path / "production").iterdir()] == ["lock"]  # no temp left


def test_an_empty_lock_is_broken_with_break_lock_or_once_stale(tmp_path: Path) -> None:
    store = state(tmp_path)
    lock = tmp_path / "staging" / "lock"
    lock.parent.mkdir()
    lock.write_text("")
    with pytest.raises(RolloutError, match="is being created"):
        store.acquire("staging", store.me("now"), break_lock=False)
    notes = store.acquire("staging", store.me("now"), break_lock=True)
    assert notes == ["broke the empty lock of environment staging: --break-lock"]
    store.release("staging", store.me("now"))
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))
    notes = store.acquire("staging", store.me("now"), break_lock=False)
    assert len(notes) == 1 and "empty for 60s" in notes[0]
    assert store.holder("staging") == store.me("now")
