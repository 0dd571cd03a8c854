"""What a rollout keeps on disk: the lock and the run record of an unfinished rollout.

Both live under the state directory (`<repo>/.cd-checks/rollout/` by
default), one subdirectory per environment:

- `lock`: one rollout per environment at a time. Created atomically (written
  to a temporary file, then hard-linked into place) with the holder's pid,
  pid start time, hostname and command. It survives a crash; it is broken
  only explicitly or when its holder is provably dead (same hostname and
  the pid is gone, a zombie, or now a different process). An empty lock
  (debris of an older version killed between creating and writing it) is
  broken with --break-lock or once it is older than a few seconds.
- `rollout.json`: the run record of the environment's open rollout: the
  revision, the current stage's waves, how far applying got, and every host
  that received (or may have received) the revision. `running` while a run
  works on it; a record still `running` when the next run starts means that
  run was killed midway. `open` between the stages of one environment (the
  canary job passed, the production job has not run yet). `rolling_back`
  from the moment an automatic rollback starts (with its target and the
  failure that called for it) until it verifies: a run killed then must not
  be resumed (its gate would pass on the old revision and bless the bad
  one); only `cd-checks rollback` finishes it. `failed` when the rollout
  stopped and was not rolled back and verified. `paused` and `halted` when the
  failure policy (`on_failure: pause|halt`) left the hosts as they are: a
  paused run resumes with `--resume` (the paused wave accepted), a halted one
  is rolled forward by a later revision or rolled back on demand. `audit_id` is the deploy id
  of the stage run still owed its final audit record: a killed run leaves
  it, and the run that resumes or rolls back closes it as `interrupted`.
  A finished rollout leaves a closed marker (`done`, or `rolled_back` once
  verified) in place of the record: never an unfinished rollout. `base` is
  the revision to fall back to while the environment has no known-good one
  (the deploy's base revision, found before any host was touched; see
  `cd_checks.rollout.engine.History`), `base_reason` how it was found.

The last known-good revision is not kept here: it is read from the audit
trail (`cd_checks.audit.trail.AuditKnownGood` implements `KnownGoodStore`).

The clock and process checks are passed in; nothing here reads os.environ.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from cd_checks import state_dir
from cd_checks.errors import RolloutError

# An empty lock older than this is debris of a crash, not a lock being created.
EMPTY_LOCK_SECONDS = 5.0

Status = Literal["running", "open", "failed", "rolling_back", "paused", "halted"]
Closed = Literal["done", "rolled_back"]
CLOSED: tuple[Closed, ...] = ("done", "rolled_back")


class KnownGoodStore(Protocol):
    """Where the last known-good revision of each environment is kept."""

    def get(self, environment: str) -> str | None: ...

    def set(self, environment: str, revision: str) -> None: ...


@dataclass(frozen=True)
class LockHolder:
    pid: int
    hostname: str
    started: str
    command: str
    pid_start: str | None = None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.hostname} since {self.started} ({self.command})"


@dataclass(frozen=True)
class RunRecord:
    """The open rollout of one environment (see the module docstring)."""

    environment: str
    revision: str
    status: Status
    stage: str
    waves: tuple[tuple[str, ...], ...]
    waves_started: int = 0
    waves_applied: int = 0
    applied: tuple[str, ...] = ()
    completed_stages: tuple[str, ...] = ()
    pid: int = 0
    started: str = ""
    notes: tuple[str, ...] = field(default=())
    target: str | None = None  # the revision a rollback is putting back (rolling_back)
    failure: str | None = None  # why the rollout stopped (rolling_back, failed)
    audit_id: str | None = None  # the deploy id of the stage run whose final record is owed
    base: str | None = None  # the fallback without known-good: what the hosts ran before
    base_reason: str = ""  # how `base` was found, e.g. "the parent of 1a2b3c4d5e6f"

    def with_applied(self, hosts: tuple[str, ...]) -> RunRecord:
        return replace(
            self, applied=self.applied + tuple(h for h in hosts if h not in self.applied)
        )


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (ticks since boot), None when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, started: str | None) -> bool:
    """Whether `pid` still runs and is the same process (not a zombie, not a reused pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and (started is None or process_start(pid) in (None, started))


@dataclass(frozen=True)
class StateDir:
    """The state directory of one repository."""

    path: Path
    now: Callable[[], str]

    def _env(self, environment: str) -> Path:
        return self.path / environment

    def me(self, command: str) -> LockHolder:
        pid = os.getpid()
        return LockHolder(pid, socket.gethostname(), self.now(), command, process_start(pid))

    def acquire(self, environment: str, holder: LockHolder, *, break_lock: bool) -> list[str]:
        """Take the environment's lock; return notes about any lock broken on the way."""
        path = self._env(environment) / "lock"
        state_dir.make_dirs(path.parent)
        notes: list[str] = []
        for _ in range(3):
            if _create_exclusive(path, json.dumps(asdict(holder))):
                return notes
            notes.append(self._break_or_refuse(environment, path, holder, break_lock=break_lock))
        raise RolloutError(f"environment {environment}: cannot take the lock {path}")

    def _break_or_refuse(
        self, environment: str, path: Path, me: LockHolder, *, break_lock: bool
    ) -> str:
        other = _read_holder(path)
        if other is None:
            return self._break_empty(environment, path, break_lock=break_lock)
        dead = other.hostname == me.hostname and not process_alive(other.pid, other.pid_start)
        if not (dead or break_lock):
            raise RolloutError(
                f"environment {environment} is locked by {other.describe()}; "
                "wait for it, or if it is gone use --break-lock"
            )
        path.unlink(missing_ok=True)
        why = "its holder is no longer running" if dead else "--break-lock"
        return f"broke the lock of environment {environment} held by {other.describe()}: {why}"

    def _break_empty(self, environment: str, path: Path, *, break_lock: bool) -> str:
        """An empty lock (left by an older version killed between create and write)."""
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return f"the lock of environment {environment} went away while it was read"
        if not (break_lock or age > EMPTY_LOCK_SECONDS):
            raise RolloutError(f"environment {environment}: lock {path} is being created")
        path.unlink(missing_ok=True)
        why = "--break-lock" if break_lock else f"empty for {age:.0f}s"
        return f"broke the empty lock of environment {environment}: {why}"

    def release(self, environment: str, holder: LockHolder) -> None:
        path = self._env(environment) / "lock"
        current = _read_holder(path)
        if current is not None and current.pid == holder.pid:
            path.unlink(missing_ok=True)

    def holder(self, environment: str) -> LockHolder | None:
        return _read_holder(self._env(environment) / "lock")

    def record(self, environment: str) -> RunRecord | None:
        """The environment's unfinished rollout; None when there is none (or it is closed)."""
        data = _read_json(self._env(environment) / "rollout.json")
        if not data or data.get("status") in CLOSED:
            return None
        return _record_from(data)

    def closed(self, environment: str) -> Closed | None:
        """How the environment's last rollout ended, when its record says it is closed."""
        status = _read_json(self._env(environment) / "rollout.json").get("status")
        return next((c for c in CLOSED if c == status), None)

    def save(self, record: RunRecord) -> None:
        _write_json(self._env(record.environment) / "rollout.json", _record_to(record))

    def close(self, environment: str, status: Closed, revision: str) -> None:
        """Mark the environment's rollout finished: `done`, or `rolled_back` and verified.

        A marker rather than no file, so that an older open record carried between CI
        jobs (artifacts of earlier jobs) is overwritten, not resurrected.
        """
        marker = {
            "environment": environment,
            "status": status,
            "revision": revision,
            "closed": self.now(),
        }
        _write_json(self._env(environment) / "rollout.json", marker)


def _create_exclusive(path: Path, text: str) -> bool:
    """Create `path` holding `text` unless it exists; never visible empty or half-written.

    The content goes to a private temporary file first, then a hard link puts it in
    place atomically (link fails if the name exists, as O_EXCL would).
    """
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_text(text, "utf-8")
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


def _read_holder(path: Path) -> LockHolder | None:
    data = _read_json(path)
    return LockHolder(**data) if data else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RolloutError(f"cannot read {path}: {exc}") from exc
    if not text.strip():
        return {}
    try:
        return dict(json.loads(text))
    except ValueError as exc:
        raise RolloutError(f"{path} is corrupt ({exc}); inspect it, then remove it") from exc


def _write_json(path: Path, data: dict[str, Any]) -> None:
    state_dir.make_dirs(path.parent)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    os.replace(temporary, path)


def _record_to(record: RunRecord) -> dict[str, Any]:
    data = asdict(record)
    data["waves"] = [list(w) for w in record.waves]
    return data


def _record_from(data: dict[str, Any]) -> RunRecord:
    return RunRecord(
        environment=data["environment"],
        revision=data["revision"],
        status=data["status"],
        stage=data["stage"],
        waves=tuple(tuple(w) for w in data["waves"]),
        waves_started=int(data["waves_started"]),
        waves_applied=int(data["waves_applied"]),
        applied=tuple(data["applied"]),
        completed_stages=tuple(data["completed_stages"]),
        pid=int(data["pid"]),
        started=data["started"],
        notes=tuple(data.get("notes", ())),
        target=data.get("target"),
        failure=data.get("failure"),
        audit_id=data.get("audit_id"),
        base=data.get("base"),
        base_reason=data.get("base_reason", ""),
    )
