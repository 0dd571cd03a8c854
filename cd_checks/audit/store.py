"""Where the audit trail lives: a local JSON-lines file or a git branch, behind one interface.

`append` takes a record without chain fields and returns it chained (seq,
prev_hash, hash) after the last record, atomically with respect to other
writers: `FileStore` holds an fcntl lock on a lock file while it reads the
last record and appends; `GitBranchStore` builds one commit per record on
the audit branch with git plumbing (the work tree and index are never
touched), moves the branch with a compare-and-swap `update-ref`, and with a
remote fetches, builds on the remote tip and pushes, refetching and retrying
on a rejected (non-fast-forward) push. The local audit branch only ever
fast-forwards to the remote's: a remote branch that no longer contains it
was rewritten (force-pushed), and reading or writing it is a
`RewrittenHistory` error until someone decides. Any failure is an
`AuditError`; a write that cannot be made is never silently skipped. A store
given a `Signer` signs every record it appends (`cd_checks.audit.signing`).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from cd_checks import state_dir
from cd_checks.audit import jsonl
from cd_checks.audit.record import AuditRecord, chain
from cd_checks.audit.signing import Signer, sign
from cd_checks.errors import AuditError

DEFAULT_PATH = ".cd-checks/audit.jsonl"
DEFAULT_BRANCH = "cd-checks/audit"
PUSH_ATTEMPTS = 30
GIT_IDENTITY = ("-c", "user.name=cd-checks", "-c", "user.email=cd-checks@localhost")


class AuditStore(Protocol):
    """The one interface of every store."""

    def append(self, record: AuditRecord) -> AuditRecord: ...

    def records(self) -> list[AuditRecord]: ...

    def describe(self) -> str: ...


def open_store(
    root: Path,
    section: Mapping[str, Any],
    *,
    warn: Callable[[str], None] | None = None,
    signer: Signer | None = None,
) -> AuditStore:
    """The store the `audit` section of the config names (default: the JSON-lines file).

    `warn` hears what the file store fixed on its own (a torn tail moved aside).
    `signer`: the key every record this store appends is signed with (None: unsigned).
    """
    kind = section.get("store", "file")
    if kind == "git":
        return GitBranchStore(
            root, section.get("branch", DEFAULT_BRANCH), remote=section.get("remote"), signer=signer
        )
    # The config comes with the checkout a pull request chose: its trail stays inside it.
    path = state_dir.inside(root, section.get("path", DEFAULT_PATH), "audit.path")
    return FileStore(path, warn or _quiet, signer=signer)


def _quiet(message: str) -> None:
    """The default warning sink; the CLI hands stores one that prints."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Repaired:
    """What `FileStore.repair` did: the lines it moved, where to, and the repair record."""

    removed: tuple[jsonl.BadLine, ...]
    side_file: Path
    record: AuditRecord


@dataclass(frozen=True)
class FileStore:
    """JSON lines, one record a line; `<path>.lock` serialises writers across processes.

    Crash-safe: a record is one write, fsynced (and the directory, when the write
    created the file) before `append` returns. A writer killed mid-write leaves a
    torn tail; the next append or read finds it under the lock, moves it to
    `<path>.torn-<UTC time>` (see `cd_checks.audit.jsonl`), cuts the trail back
    to its last complete record and says so through `warn`. A bad line anywhere
    else is for `repair`. `private`: the break-glass fallback (0700 directory, 0600 file).
    """

    path: Path
    warn: Callable[[str], None] = field(default=_quiet, compare=False, repr=False)
    private: bool = False
    now: Callable[[], datetime] = field(default=_utc_now, compare=False, repr=False)
    signer: Signer | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        return str(self.path)

    def append(self, record: AuditRecord) -> AuditRecord:
        try:
            with self._locked():
                created = not self.path.exists()
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, self._mode)
                try:
                    linked = sign(chain(record, self._settle(fd)), self.signer)
                    _append_line(fd, linked.to_json())
                finally:
                    os.close(fd)
                if created:
                    jsonl.fsync_dir(self.path.parent)
        except OSError as exc:
            raise AuditError(f"cannot write the audit trail {self.path}: {exc}") from exc
        return linked

    def records(self) -> list[AuditRecord]:
        data = self._read()
        if data is None:
            return []
        check = jsonl.examine(data[jsonl.last_line_start(data, whole=True) or 0 :])
        if check.torn_at is not None or check.needs_newline:
            data = self._settled(data)
        return self._parse(data)

    def bad_lines(self) -> list[jsonl.BadLine]:
        """Every line `repair` would move out of the trail (read without the lock)."""
        return jsonl.bad_lines(self._read() or b"")

    def repair(
        self, make_record: Callable[[list[jsonl.BadLine], Path], AuditRecord]
    ) -> Repaired | None:
        """Move every line that is not a record to `<path>.repair-<UTC time>`, keep the
        rest, and append the record `make_record(removed, side file)` describing it.

        One step under the lock: the side file is written and fsynced first, then the
        trail is replaced (a new file renamed over it) by its kept lines and the
        repair record. None: nothing to repair.
        """
        try:
            with self._locked():
                data = self._read() or b""
                bad = jsonl.bad_lines(data)
                if not bad:
                    return None
                side = jsonl.write_side_file(self.path, "repair", bad, self.now(), self._mode)
                kept = jsonl.without(data, bad)
                records = self._parse(kept)
                last = records[-1] if records else None
                linked = sign(chain(make_record(bad, side), last), self.signer)
                self._replace(kept + linked.to_json().encode("utf-8") + b"\n")
        except OSError as exc:
            raise AuditError(f"cannot repair the audit trail {self.path}: {exc}") from exc
        return Repaired(tuple(bad), side, linked)

    @property
    def _mode(self) -> int:
        return 0o600 if self.private else 0o644

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditError(f"cannot read the audit trail {self.path}: {exc}") from exc

    def _parse(self, data: bytes) -> list[AuditRecord]:
        records = []
        for number, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                records.append(jsonl.parse_line(raw, f"{self.path}:{number}"))
            except AuditError as exc:
                raise AuditError(
                    f"{exc}; `cd-checks audit repair` moves such lines out of the trail"
                ) from exc
        return records

    def _settled(self, data: bytes) -> bytes:
        """The trail after settling its torn tail under the lock (a writer may only be
        slow: the lock waits for it). Cannot lock or write: the tail is ignored, loudly."""
        try:
            with self._locked():
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
                try:
                    self._settle(fd)
                finally:
                    os.close(fd)
                return self._read() or b""
        except OSError as exc:
            cut = data.rfind(b"\n") + 1
            self.warn(
                f"{self.path}: ignoring its incomplete last line ({len(data) - cut} bytes; "
                f"cannot move it aside: {exc})"
            )
            return data[:cut] + (data[cut:] if jsonl.examine(data[cut:]).needs_newline else b"")

    def _settle(self, fd: int) -> AuditRecord | None:
        """The last record, after moving a torn tail aside (once); under the lock."""
        for attempt in range(2):
            offset, tail = jsonl.tail_window(fd, os.fstat(fd).st_size)
            check = jsonl.examine(tail)
            if check.needs_newline:
                _append_line(fd, "")
                self.warn(f"{self.path}: its last record lacked a newline; added one")
            if check.torn_at is None:
                return check.last
            if attempt:
                break
            self._quarantine(fd, offset + check.torn_at, tail[check.torn_at :])
        number = jsonl.line_number(fd, offset)
        raise AuditError(
            f"{self.path}:{number}: the last line is not an audit record either; "
            "`cd-checks audit repair` moves such lines out of the trail"
        )

    def _quarantine(self, fd: int, offset: int, torn: bytes) -> None:
        lines = jsonl.torn_lines(torn, jsonl.line_number(fd, offset))
        side = jsonl.write_side_file(self.path, "torn", lines, self.now(), self._mode)
        # The side file is durable before the trail is cut: a crash between keeps both.
        os.ftruncate(fd, offset)
        os.fsync(fd)
        where = ", ".join(str(b.line) for b in lines)
        self.warn(
            f"{self.path}: moved its torn last line (line {where}, {len(torn)} bytes: a writer "
            f"died mid-append, it was never a complete record) to {side}; "
            "the trail ends at its last complete record"
        )

    def _replace(self, data: bytes) -> None:
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self._mode)
        try:
            jsonl.write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        jsonl.fsync_dir(self.path.parent)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self.private:
            _private_dirs(self.path.parent)
        else:
            state_dir.make_dirs(self.path.parent)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(os.open(lock_path, os.O_WRONLY | os.O_CREAT, self._mode), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _append_line(fd: int, line: str) -> None:
    """One write of the line and its newline, then fsync; a failed write is cut off again."""
    size = os.fstat(fd).st_size
    try:
        jsonl.write_all(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    except OSError:
        # Under the lock nobody else appended: take back a partial line (e.g. a full disk).
        with suppress(OSError):
            os.ftruncate(fd, size)
        raise


def _private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents as 0700 (user-level state)."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)


def _parse(text: str, where: str) -> AuditRecord:
    try:
        return AuditRecord.from_dict(json.loads(text))
    except ValueError as exc:
        raise AuditError(f"{where}: not a JSON audit record: {exc}") from exc
    except AuditError as exc:
        raise AuditError(f"{where}: {exc}") from exc


Runner = Callable[[list[str], str | None], str]


@dataclass(frozen=True)
class Git:
    """git in one repository; a failed command is an AuditError naming it."""

    repo: Path

    def __call__(self, args: list[str], stdin: str | None = None) -> str:
        done = self.run(args, stdin)
        if done.returncode != 0:
            error = done.stderr.strip().splitlines()
            raise AuditError(f"git {' '.join(args)} failed: {error[-1] if error else ''}")
        return done.stdout

    def run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["git", "-C", str(self.repo), *GIT_IDENTITY, *args],
                input=stdin,
                capture_output=True,
                text=True,
                check=False,
            )
        except OSError as exc:
            raise AuditError(f"cannot run git: {exc}") from exc


class RewrittenHistory(AuditError):
    """The remote's audit branch does not contain the local one: it was force-pushed.

    `records`: the remote's records (to verify them anyway); `lost`: the first record of
    the local copy the remote no longer has (None: the commits changed, the records not).
    """

    def __init__(self, message: str, records: list[AuditRecord], lost: AuditRecord | None):
        super().__init__(message)
        self.records = records
        self.lost = lost


@dataclass(frozen=True)
class GitBranchStore:
    """`records/<seq>-<id>.json` on a branch of the repository, one commit per record."""

    repo: Path
    branch: str = DEFAULT_BRANCH
    remote: str | None = None
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default=random.random)
    signer: Signer | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        where = f" (pushed to {self.remote})" if self.remote else ""
        return f"branch {self.branch} of {self.repo}{where}"

    def location(self) -> str:
        """Which trail this is, the same in every clone: the remote's URL (else the
        repository) and the branch."""
        where = str(self.repo.resolve())
        if self.remote:
            done = self._git.run(["config", "--get", f"remote.{self.remote}.url"])
            where = done.stdout.strip() if done.returncode == 0 else self.remote
        # A URL may carry credentials (https://user:token@host/...): never keep them.
        return f"git {re.sub(r'//[^/@]*@', '//', where)} {self.branch}"

    @property
    def _ref(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def _seen(self) -> str:
        """Where the remote's tip is fetched to, before the audit branch may follow it."""
        return f"refs/cd-checks/{self.remote}/{self.branch}"

    @property
    def _git(self) -> Git:
        return Git(self.repo)

    def records(self) -> list[AuditRecord]:
        if self.remote:
            for _ in range(PUSH_ATTEMPTS):
                if self._fetch():
                    break
                self.sleep(0.05 * (0.5 + self.jitter()))
        return self._records_at(self._tip())

    def append(self, record: AuditRecord) -> AuditRecord:
        for attempt in range(PUSH_ATTEMPTS):
            if self.remote and not self._fetch():
                self.sleep(0.05 * (0.5 + self.jitter()))
                continue
            tip = self._tip()
            linked, commit = self._commit(record, tip)
            if self._publish(commit, tip):
                return linked
            self.sleep(min(2.0, 0.05 * 2 ** min(attempt, 5)) * (0.5 + self.jitter()))
        raise AuditError(
            f"cannot append to the audit {self.describe()}: "
            f"other writers won {PUSH_ATTEMPTS} times in a row"
        )

    def _tip(self) -> str | None:
        done = self._git.run(["rev-parse", "--verify", "--quiet", self._ref + "^{commit}"])
        return done.stdout.strip() if done.returncode == 0 else None

    def _fetch(self) -> bool:
        """Fast-forward the local branch to the remote's; False when another local writer
        raced us. The remote's tip lands in a ref of our own first (as in FETCH_HEAD): the
        audit branch itself never takes a forced update."""
        assert self.remote is not None
        done = self._git.run(["fetch", "--quiet", self.remote, f"+{self._ref}:{self._seen}"])
        if "couldn't find remote ref" in done.stderr:
            return True
        if "cannot lock ref" in done.stderr or "Unable to create" in done.stderr:
            return False
        if done.returncode != 0:
            raise AuditError(f"cannot fetch the audit branch from {self.remote}: {_last(done)}")
        tip, seen = self._tip(), self._git(["rev-parse", self._seen]).strip()
        if tip == seen:
            return True
        if tip is not None and not self._contains(seen, tip):
            raise self._rewritten(tip, seen)
        moved = self._git.run(["update-ref", self._ref, seen, tip or "0" * 40])
        return moved.returncode == 0

    def _contains(self, descendant: str, ancestor: str) -> bool:
        done = self._git.run(["merge-base", "--is-ancestor", ancestor, descendant])
        if done.returncode > 1:
            raise AuditError(f"cannot compare audit branch commits: {_last(done)}")
        return done.returncode == 0

    def _rewritten(self, tip: str, seen: str) -> RewrittenHistory:
        remote = self._records_at(seen)
        kept = {(r.seq, r.hash) for r in remote}
        lost = next((r for r in self._records_at(tip) if (r.seq, r.hash) not in kept), None)
        what = (
            f"record #{lost.seq} ({lost.id}) of the local copy is not in its history"
            if lost is not None
            else "its commits are not those of the local copy (the records still are)"
        )
        return RewrittenHistory(
            f"the audit branch {self.branch} on {self.remote} was rewritten (force-pushed): "
            f"{what}; local {tip[:12]}, remote {seen[:12]} (kept as {self._seen}). "
            f"Run `cd-checks audit verify`; only if the new history is legitimate, follow "
            f"it: git update-ref {self._ref} {self._seen}",
            remote,
            lost,
        )

    def _entries(self, tip: str | None) -> list[str]:
        if tip is None:
            return []
        done = self._git.run(["ls-tree", f"{tip}:records"])
        return done.stdout.splitlines() if done.returncode == 0 else []

    def _records_at(self, tip: str | None) -> list[AuditRecord]:
        return self._read(tip, sorted(line.split("\t", 1)[1] for line in self._entries(tip)))

    def _read(self, tip: str | None, names: list[str]) -> list[AuditRecord]:
        if not names:
            return []
        wanted = "".join(f"{tip}:records/{name}\n" for name in names)
        output = self._git(["cat-file", "--batch"], wanted)
        return [
            _parse(text, f"{self.branch}:records/{name}") for name, text in _blobs(output, names)
        ]

    def _commit(self, record: AuditRecord, tip: str | None) -> tuple[AuditRecord, str]:
        entries = self._entries(tip)
        names = sorted(line.split("\t", 1)[1] for line in entries)
        last = self._read(tip, names[-1:])
        linked = sign(chain(record, last[0] if last else None), self.signer)
        blob = self._git(["hash-object", "-w", "--stdin"], linked.to_json() + "\n").strip()
        name = f"{linked.seq:08d}-{linked.id}.json"
        subtree = self._git(["mktree"], "".join(e + "\n" for e in entries) + _entry(blob, name))
        tree = self._git(["mktree"], f"040000 tree {subtree.strip()}\trecords\n").strip()
        parents = ["-p", tip] if tip else []
        message = f"audit: {linked.kind} {linked.id} ({linked.environment or '-'})"
        commit = self._git(["commit-tree", tree, *parents, "-m", message]).strip()
        return linked, commit

    def _publish(self, commit: str, tip: str | None) -> bool:
        if self.remote:
            done = self._git.run(["push", self.remote, f"{commit}:{self._ref}"])
            if done.returncode != 0:
                if _rejected(done.stderr):
                    return False
                raise AuditError(f"cannot push the audit branch to {self.remote}: {_last(done)}")
        done = self._git.run(["update-ref", self._ref, commit, tip or "0" * 40])
        # With a remote the push decided: the record is there even if a local writer
        # moved the local branch meanwhile (the next fetch brings it back in line).
        return bool(self.remote) or done.returncode == 0


def _entry(blob: str, name: str) -> str:
    return f"100644 blob {blob}\t{name}\n"


def _blobs(output: str, names: list[str]) -> Iterator[tuple[str, str]]:
    data = output.encode("utf-8")
    position = 0
    for name in names:
        header_end = data.index(b"\n", position)
        size = int(data[position:header_end].split()[2])
        start = header_end + 1
        yield name, data[start : start + size].decode("utf-8")
        position = start + size + 1


def _rejected(stderr: str) -> bool:
    markers = ("[rejected]", "rejected", "non-fast-forward", "fetch first", "failed to update ref")
    return any(m in stderr for m in markers) or "cannot lock ref" in stderr


def _last(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"
