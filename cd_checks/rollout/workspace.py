"""The revision being deployed, checked out on its own: git worktrees.

Deploying REV means the playbook, templates and health tests come from
commit REV, whatever the working tree holds; rolling back runs the same
applier from a worktree of the known-good revision. Uses the real `git`
through argument lists; errors become `ToolError`/`InputError`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cd_checks.errors import InputError, ToolError


class Workspace(Protocol):
    def resolve(self, revision: str) -> str: ...

    def checkout(self, revision: str) -> AbstractContextManager[Path]: ...


@dataclass(frozen=True)
class GitWorkspace:
    repo: Path
    env: Mapping[str, str]

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
            return self._git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
        except ToolError as exc:
            raise InputError(f"revision {revision!r} is not a commit of {self.repo}") from exc

    @contextmanager
    def checkout(self, revision: str) -> Iterator[Path]:
        scratch = Path(tempfile.mkdtemp(prefix="cd-checks-worktree-"))
        tree = scratch / "tree"
        # The config may live in a subdirectory of the git repository (examples/):
        # the same subdirectory of the worktree is what the applier runs from.
        prefix = self._git("rev-parse", "--show-prefix")
        try:
            self._git("worktree", "add", "--detach", str(tree), revision)
            yield tree / prefix if prefix else tree
        finally:
            # Cleaning up must not hide the error that ended the block.
            with contextlib.suppress(ToolError):
                if tree.exists():
                    self._git("worktree", "remove", "--force", str(tree))
            shutil.rmtree(scratch, ignore_errors=True)
            with contextlib.suppress(ToolError):
                self._git("worktree", "prune")
