"""Where the audit trail lives: a local JSON-lines file or a git branch, behind one interface.

`append` takes a record without chain fields and returns it chained (seq,
prev_hash, hash) after the last record, atomically with respect to other
writers: `FileStore` holds an fcntl lock on a lock file while it reads the
last record and appends; `GitBranchStore` builds one commit per record on
the audit branch with git plumbing (the work tree and index are never
touched), moves the branch with a compare-and-swap `update-ref`, and with a
remote fetches, builds on the remote tip and pushes, refetching and retrying
on a rejected (non-fast-forward) push. Any failure is an `AuditError`; a
write that cannot be made is never silently skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cd_checks import state_dir
from cd_checks.audit.record import AuditRecord, chain
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


def open_store(root: Path, section: Mapping[str, Any]) -> AuditStore:
    """The store the `audit` section of the config names (default: the JSON-lines file)."""
    kind = section.get("store", "file")
    if kind == "git":
        return GitBranchStore(
            root, section.get("branch", DEFAULT_BRANCH), remote=section.get("remote")
        )
    # The config comes with the checkout a pull request chose: its trail stays inside it.
    return FileStore(state_dir.inside(root, section.get("path", DEFAULT_PATH), "audit.path"))


@dataclass(frozen=True)
class FileStore:
    """JSON lines, one record a line; `<path>.lock` serialises writers across processes."""

    path: Path

    def describe(self) -> str:
        return str(self.path)

    def append(self, record: AuditRecord) -> AuditRecord:
        try:
            with self._locked():
                linked = chain(record, self._last())
                self._write_line(linked.to_json())
        except OSError as exc:
            raise AuditError(f"cannot write the audit trail {self.path}: {exc}") from exc
        return linked

    def records(self) -> list[AuditRecord]:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditError(f"cannot read the audit trail {self.path}: {exc}") from exc
        return [
            _parse(line, f"{self.path}:{n}")
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]

    def _last(self) -> AuditRecord | None:
        """The last record (read under the lock); a torn last line stops the write."""
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return None
        if text and not text.endswith("\n"):
            raise AuditError(
                f"{self.path}: the last line is incomplete (a writer died mid-write); "
                "inspect it and run cd-checks audit verify before writing more"
            )
        lines = [line for line in text.splitlines() if line.strip()]
        return _parse(lines[-1], f"{self.path}:{len(lines)}") if lines else None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        state_dir.make_dirs(self.path.parent)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_line(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)


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


@dataclass(frozen=True)
class GitBranchStore:
    """`records/<seq>-<id>.json` on a branch of the repository, one commit per record."""

    repo: Path
    branch: str = DEFAULT_BRANCH
    remote: str | None = None
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = field(default=random.random)

    def describe(self) -> str:
        where = f" (pushed to {self.remote})" if self.remote else ""
        return f"branch {self.branch} of {self.repo}{where}"

    @property
    def _ref(self) -> str:
        return f"refs/heads/{self.branch}"

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
        """Update the local branch from the remote; False when another local writer raced us."""
        assert self.remote is not None
        done = self._git.run(["fetch", "--quiet", self.remote, f"+{self._ref}:{self._ref}"])
        if done.returncode == 0 or "couldn't find remote ref" in done.stderr:
            return True
        if "cannot lock ref" in done.stderr or "Unable to create" in done.stderr:
            return False
        raise AuditError(f"cannot fetch the audit branch from {self.remote}: {_last(done)}")

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
        linked = chain(record, last[0] if last else None)
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
