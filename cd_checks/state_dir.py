"""The local state directory `<repo>/.cd-checks/`, created so that it ignores itself.

Everything cd-checks keeps there (the validate cache, the lab fleet, rollout
locks and run records, the default file audit trail) belongs to one machine.
Every writer creates its directories through `make_dirs`, which also writes
`.cd-checks/.gitignore` containing `*` whenever that file is missing (as
pytest, ruff and mypy do for their caches): the directory never shows in
`git status` and never lands in a commit, without the user doing anything.
A directory outside any `.cd-checks/` (a `state_dir` or audit `path` the user
chose) is the user's own: it is created, never given a `.gitignore`. A team's
audit trail belongs on the git branch store, not in this directory.
This module creates directories and that one file; it reads nothing else.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

NAME = ".cd-checks"
GITIGNORE = (
    "# Created by cd-checks: local state of this machine (cache, lab fleet, rollout state,\n"
    "# local audit trail). Nothing here belongs in git.\n"
    "*\n"
)


def make_dirs(path: Path, *, mode: int = 0o777) -> None:
    """`mkdir -p path`; if it lies in a `.cd-checks/` directory, make that one ignore itself."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    top = state_root(path)
    if top is not None:
        ignore_itself(top)


def state_root(path: Path) -> Path | None:
    """The outermost `.cd-checks` directory that `path` is (or is inside), or None."""
    for candidate in reversed((path, *path.parents)):
        if candidate.name == NAME:
            return candidate
    return None


def ignore_itself(directory: Path) -> None:
    """Write `directory/.gitignore` (`*`) unless one is there; a user's own file is kept."""
    marker = directory / ".gitignore"
    if marker.exists():
        return
    # Written aside, then linked into place: a concurrent writer or a git run never
    # sees a half-written file, and the first of two racing writers wins.
    temporary = directory / f".gitignore.{os.getpid()}.tmp"
    temporary.write_text(GITIGNORE, "utf-8")
    try:
        with contextlib.suppress(FileExistsError):
            os.link(temporary, marker)
    finally:
        temporary.unlink(missing_ok=True)
