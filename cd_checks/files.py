"""Which files a run checks: git's view of the repository, globs, and PR mode.

Inside a git work tree the candidates are the files git knows (tracked plus
untracked-but-not-ignored, so a new file is checked before `git add`);
outside git, a plain directory walk. Include/exclude globs use gitwildmatch
semantics (`**` spans directories). `--changed-since REF` keeps the files
changed between the merge-base of REF and the working tree: renames give the
new path, deletions are skipped. Symlinks are never followed out of the
repository. This module reads the file system and runs git; it checks nothing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from cd_checks.errors import InputError, ToolError

SKIP_DIRS = frozenset({".git", ".cd-checks", "__pycache__", ".venv", "node_modules"})


@dataclass(frozen=True)
class Selection:
    """The repo-relative posix paths to check, and symlinks that escape the repository."""

    paths: tuple[str, ...]
    escaping_links: tuple[str, ...]


def matcher(globs: Iterable[str]) -> pathspec.GitIgnoreSpec:
    """Globs with .gitignore semantics, matched against repo-relative posix paths."""
    return pathspec.GitIgnoreSpec.from_lines(list(globs))


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, check=False, text=True
        )
    except FileNotFoundError as exc:
        raise ToolError("git is not installed (needed for --changed-since)") from exc
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise ToolError(f"git {' '.join(args[:2])}: {message}")
    return done.stdout


def in_git_work_tree(root: Path) -> bool:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return False
    return done.returncode == 0 and done.stdout.strip() == "true"


def git_files(root: Path) -> list[str]:
    out = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted({p for p in out.split("\0") if p})


def walk_files(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = Path(dirpath).relative_to(root)
        found.extend((base / name).as_posix() for name in filenames)
    return sorted(found)


def changed_files(root: Path, ref: str) -> list[str]:
    """Files changed between merge-base(REF, HEAD) and the working tree, plus new untracked ones."""
    base = _git(root, "merge-base", ref, "HEAD").strip()
    out = _git(root, "diff", "--name-status", "-z", "-M", "--relative", base)
    fields = [f for f in out.split("\0") if f]
    changed: set[str] = set()
    index = 0
    while index < len(fields):
        status = fields[index]
        if status[0] in "RC":
            changed.add(fields[index + 2])
            index += 3
            continue
        if status[0] != "D":
            changed.add(fields[index + 1])
        index += 2
    untracked = _git(root, "ls-files", "-z", "--others", "--exclude-standard")
    changed.update(p for p in untracked.split("\0") if p)
    return sorted(changed)


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(
        p in ("", ".") or path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes
    )


def _escapes(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return True
    return False


def select(
    root: Path,
    *,
    paths: Sequence[str] = (),
    include: Sequence[str] = ("**/*",),
    exclude: Sequence[str] = (),
    changed_since: str | None = None,
) -> Selection:
    """Choose the files to check under `root`. `paths` are repo-relative prefixes."""
    if not root.is_dir():
        raise InputError(f"not a directory: {root}")
    prefixes = [_relative_prefix(root, p) for p in paths] or [""]
    git = in_git_work_tree(root)
    if changed_since is not None:
        if not git:
            raise InputError(f"--changed-since needs a git repository; {root} is not in one")
        candidates = changed_files(root, changed_since)
    else:
        candidates = git_files(root) if git else walk_files(root)
    keep, drop = matcher(include), matcher(exclude)
    chosen: list[str] = []
    escaping: list[str] = []
    for rel in candidates:
        if rel.split("/", 1)[0] in SKIP_DIRS:  # never our own cache, even when not git-ignored
            continue
        if not _under(rel, prefixes) or not keep.match_file(rel) or drop.match_file(rel):
            continue
        full = root / rel
        if full.is_symlink() and _escapes(root, full):
            escaping.append(rel)
        elif full.is_file():
            chosen.append(rel)
    return Selection(tuple(chosen), tuple(escaping))


def _relative_prefix(root: Path, given: str) -> str:
    candidate = Path(given)
    full = candidate if candidate.is_absolute() else root / candidate
    if not full.exists():
        raise InputError(f"no such file or directory: {given}")
    try:
        return full.resolve().relative_to(root.resolve()).as_posix()
    except ValueError as exc:
        raise InputError(f"{given} is outside the repository {root}") from exc
