"""Stopping a process and everything it started: the lab's daemons, a rollout's apply.

Linux only: descendants are found through /proc (each process's parent in
/proc/PID/stat), so a child that double-forked away from its parent is not
found. Written here rather than taken from psutil: these few reads are all
cd-checks needs, and the lab and the rollout both run where /proc is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT = 5.0


class ProcessError(OSError):
    """A process that did not stop when killed."""


def state(stat: str) -> str:
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    try:
        return state(Path(f"/proc/{pid}/stat").read_text()) not in {"Z", "X"}
    except (OSError, IndexError):
        return False


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def terminate(pid: int, *, children_first: bool, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM `pid` (with `children_first`, its descendants too), SIGKILL what is left
    after `timeout` seconds; ProcessError if even that does not stop them."""
    family = [*descendants(pid), pid]
    for target in family if children_first else [pid]:
        signal_process(target, signal.SIGTERM)
    if wait_gone(family, timeout):
        return
    for target in family:
        signal_process(target, signal.SIGKILL)
    if not wait_gone(family, timeout):
        raise ProcessError(f"process {pid} did not stop")


def signal_process(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def wait_gone(pids: Iterable[int], timeout: float) -> bool:
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if alive(pid)]
        if pending:
            time.sleep(0.02)
    return not pending


@dataclass(frozen=True)
class Finished:
    """How a bounded run ended: `returncode` None when it was stopped at its timeout."""

    returncode: int | None
    stdout: str
    stderr: str


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    merge_stderr: bool = False,
) -> Finished:
    """Run `argv` (no shell, no stdin) for at most `timeout` seconds. Past it, or when the
    caller is interrupted (Ctrl-C), the process and everything it started (pytest-xdist's
    workers, ansible's forks, their ssh) are stopped: subprocess.run's own timeout kills
    the direct child only, and leaves the rest running on the hosts. OSError if it cannot
    start."""
    process = subprocess.Popen(  # noqa: S603 - an argument list, never a shell
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        errors="replace",
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_tree(process)
        try:
            stdout, stderr = process.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # a process it started, now not ours, holds a pipe
            stdout, stderr = "", ""
        return Finished(None, stdout or "", stderr or "")
    except BaseException:
        _stop_tree(process)
        raise
    return Finished(process.returncode, stdout or "", stderr or "")


def _stop_tree(process: subprocess.Popen[str]) -> None:
    # SIGKILLed and still there (a process stuck in the kernel): nothing more to do.
    with contextlib.suppress(ProcessError, subprocess.TimeoutExpired):
        terminate(process.pid, children_first=True)
        process.wait(STOP_TIMEOUT)
