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
Containment: a checkout is untrusted input (a pull request chooses its files), so
`inside` refuses a configured path that resolves outside the repository, and
`make_dirs` never writes through a symbolic link at or below `.cd-checks` (a
committed `.cd-checks -> /home/ci` would otherwise put the state, the cache or the
audit trail wherever the link points).
`user_dir` is the other place cd-checks keeps state: per user, outside every
checkout (keys, audit anchors, the break-glass fallback trail).
This module creates directories and that one file; it reads nothing else.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Mapping
from pathlib import Path

from cd_checks.errors import ConfigError, InputError
from cd_checks.report.escaping import escape_controls

NAME = ".cd-checks"
GITIGNORE = (
    "# Created by cd-checks: local state of this machine (cache, lab fleet, rollout state,\n"
    "# local audit trail). Nothing here belongs in git.\n"
    "*\n"
)


def user_dir(env: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/cd-checks` (default `~/.local/state/cd-checks`): per-user state.

    Outside every repository, so nothing a checked revision holds can stand in for
    what is kept here. HOME unset falls back to the account's home directory.
    """
    base = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is invalid, ignore it
        home = env.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
        base = os.path.join(home, ".local", "state")
    return Path(base) / "cd-checks"


def inside(root: Path, path: str | os.PathLike[str], key: str) -> Path:
    """`root / path`, refused (naming the config `key`) unless it resolves inside `root`.

    Symbolic links that exist are followed before the comparison, so neither `../`,
    an absolute path nor a committed link can lead a write out of the checkout.
    """
    target = root / path
    shown = _shown(path)  # the config is the checkout's: its text may hold a newline
    try:
        resolved = target.resolve()
        base = root.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: nowhere we could write
        raise ConfigError(f"{key}: {shown}: cannot resolve the path: {exc}") from exc
    if resolved != base and base not in resolved.parents:
        raise ConfigError(
            f"{key}: {shown} resolves to {_shown(resolved)}, outside the repository "
            f"{_shown(base)}; cd-checks reads and writes only inside the checkout"
        )
    return target


def checkout(root: Path) -> Path:
    """The top of the git checkout `root` lies in (the nearest directory holding `.git`),
    else `root`: a config in a subdirectory may read what its checkout holds beside it."""
    for directory in (root, *root.resolve().parents):
        if (directory / ".git").exists():
            return directory
    return root


def _shown(path: str | os.PathLike[str]) -> str:
    return escape_controls(os.fspath(path), keep="")


def make_dirs(path: Path, *, mode: int = 0o777) -> None:
    """`mkdir -p path`; if it lies in a `.cd-checks/` directory, make that one ignore itself."""
    top = state_root(path)
    if top is not None:
        refuse_links(top, path)
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if top is not None:
        ignore_itself(top)


def refuse_links(top: Path, path: Path) -> None:
    """Refuse `top` (a `.cd-checks`) or any directory between it and `path` that is a symlink."""
    steps = [top]
    for part in path.relative_to(top).parts:
        steps.append(steps[-1] / part)
    for current in steps:
        if current.is_symlink():
            raise InputError(
                f"{_shown(current)} is a symbolic link (to {_shown(os.readlink(current))}); "
                "cd-checks does not write its state through a link: remove it "
                "(the directory is created on use)"
            )


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
