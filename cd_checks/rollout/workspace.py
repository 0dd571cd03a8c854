"""The revision being deployed, checked out on its own: git worktrees.

Deploying REV means the playbook, templates and health tests come from
commit REV, whatever the working tree holds; rolling back runs the same
applier from a worktree of the known-good revision. Uses the real `git`
through argument lists (a revision is resolved with `--end-of-options`,
paths follow `--`); errors become `ToolError`/`InputError`.

Worktrees live in `<repository>/.cd-checks/worktrees/cd-checks-worktree-*/`,
each with an `owner` file naming the process that made it. A run killed with
SIGKILL cannot remove its worktree; `sweep()`, called when the next run
starts, removes those whose owner is gone (never one a concurrent rollout of
another environment is using) and has git forget them (`git worktree prune`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cd_checks import state_dir
from cd_checks.errors import InputError, ToolError
from cd_checks.rollout.state import process_alive, process_start

WORKTREES = Path(state_dir.NAME) / "worktrees"
PREFIX = "cd-checks-worktree-"
OWNER = "owner"
# A worktree directory without its owner file is a run killed while creating it,
# unless it is younger than this (a concurrent run that is creating it right now).
UNOWNED_SECONDS = 60.0


class Workspace(Protocol):
    def resolve(self, revision: str) -> str: ...

    def checkout(self, revision: str) -> AbstractContextManager[Path]: ...


@dataclass(frozen=True)
class GitWorkspace:
    repo: Path
    env: Mapping[str, str]

    @property
    def worktrees(self) -> Path:
        """The directory cd-checks keeps its worktrees in (created on use)."""
        return self.repo / WORKTREES

    def _git(self, *args: str) -> str:
        git = shutil.which("git", path=self.env.get("PATH"))
        if git is None:
            raise ToolError("git not found on PATH")
        done = subprocess.run(  # noqa: S603 - an argument list, never a shell
            [git, "-C", str(self.repo), *args],
            env=dict(self.env),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ToolError(f"git {' '.join(args)}: {done.stderr.strip() or done.returncode}")
        return done.stdout.strip()

    def resolve(self, revision: str) -> str:
        """The full commit id of `revision`; InputError when it is not a commit here."""
        try:
            # --end-of-options: a revision such as `--output=x` is a name, never an option.
            spec = f"{revision}^{{commit}}"
            return self._git("rev-parse", "--verify", "--quiet", "--end-of-options", spec)
        except ToolError as exc:
            raise InputError(f"revision {revision!r} is not a commit of {self.repo}") from exc

    @contextmanager
    def checkout(self, revision: str) -> Iterator[Path]:
        commit = self.resolve(revision)
        state_dir.make_dirs(self.worktrees)
        scratch = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.worktrees))
        tree = scratch / "tree"
        # The config may live in a subdirectory of the git repository (examples/):
        # the same subdirectory of the worktree is what the applier runs from.
        try:
            _claim(scratch)
            prefix = self._git("rev-parse", "--show-prefix")
            self._git("worktree", "add", "--detach", "--", str(tree), commit)
            yield tree / prefix if prefix else tree
        finally:
            self._remove(scratch)
            with contextlib.suppress(ToolError):
                self._git("worktree", "prune")

    def sweep(self) -> tuple[Path, ...]:
        """Remove the worktrees of runs that were killed; the directories removed."""
        removed = []
        with contextlib.suppress(OSError):
            for scratch in sorted(self.worktrees.glob(PREFIX + "*")):
                if scratch.is_symlink() or not _owner_alive(scratch):
                    self._remove(scratch)
                    removed.append(scratch)
        with contextlib.suppress(ToolError):
            self._git("worktree", "prune")
        return tuple(removed)

    def _remove(self, scratch: Path) -> None:
        # Cleaning up must not hide the error that ended the block.
        tree = scratch / "tree"
        if scratch.is_symlink():
            scratch.unlink()
            return
        with contextlib.suppress(ToolError):
            if tree.exists():
                self._git("worktree", "remove", "--force", "--", str(tree))
        shutil.rmtree(scratch, ignore_errors=True)


def _claim(scratch: Path) -> None:
    pid = os.getpid()
    owner = {"pid": pid, "pid_start": process_start(pid), "hostname": socket.gethostname()}
    (scratch / OWNER).write_text(json.dumps(owner), "utf-8")


def _owner_alive(scratch: Path) -> bool:
    """Whether the process that made `scratch` may still use it (when unsure: yes)."""
    try:
        owner = json.loads((scratch / OWNER).read_text("utf-8"))
        pid, started, host = int(owner["pid"]), owner.get("pid_start"), owner.get("hostname")
    except FileNotFoundError:
        return _young(scratch)
    except (OSError, ValueError, TypeError, KeyError):
        return False  # unreadable debris: no run can be using it
    if host != socket.gethostname():
        return True  # another machine's (a shared disk): not ours to judge
    return process_alive(pid, started if isinstance(started, str) else None)


def _young(scratch: Path) -> bool:
    try:
        return time.time() - scratch.stat().st_mtime < UNOWNED_SECONDS
    except OSError:
        return False
