"""Which files a run checks: git's view of the repository, globs, and PR mode.

Inside a git work tree the candidates are the files git knows (tracked plus
untracked-but-not-ignored, so a new file is checked before `git add`);
outside git, a plain directory walk. Include/exclude globs use gitwildmatch
semantics (`**` spans directories). `--changed-since REF` keeps the files
changed between the merge-base of REF and the working tree: renames give the
new path, deletions are skipped. Symlinks are never followed out of the
repository. REF is resolved to a commit first (`rev-parse --verify
--end-of-options`), so it can never be read as an option of a git command, and a
REF that is missing or has no merge-base in a shallow clone is one error naming
the fix (`fetch-depth: 0`). Names git lists that are not UTF-8 keep their bytes
(surrogateescape, as `os.listdir` does). This module reads the file system and
runs git; it checks nothing.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from cd_checks.errors import InputError, ToolError
from cd_checks.findings import Finding
from cd_checks.report.escaping import escape_controls

SKIP_DIRS = frozenset({".git", ".cd-checks", "__pycache__", ".venv", "node_modules"})


@dataclass(frozen=True)
class Selection:
    """The repo-relative posix paths to check, symlinks that escape the repository, and
    findings for what cannot be looked at (an unreadable file or directory, a link loop)."""

    paths: tuple[str, ...]
    escaping_links: tuple[str, ...]
    problems: tuple[Finding, ...] = ()


def matcher(globs: Iterable[str]) -> pathspec.GitIgnoreSpec:
    """Globs with .gitignore semantics, matched against repo-relative posix paths.

    A glob that does not compile is an InputError naming it; the config and the
    exceptions file check theirs first (`bad_glob`) to also name the key or line.
    """
    globs = list(globs)
    try:
        return pathspec.GitIgnoreSpec.from_lines(globs)
    except (re.error, ValueError) as exc:
        glob = next((g for g in globs if bad_glob(g)), None)
        raise InputError(f"bad glob {glob!r}: {_reason(exc)}") from exc


def bad_glob(glob: str) -> str | None:
    """Why `glob` is not a usable gitwildmatch pattern (e.g. `[z-a]`); None when it is."""
    try:
        pathspec.GitIgnoreSpec.from_lines([glob])
    except (re.error, ValueError) as exc:
        return _reason(exc)
    return None


def _reason(exc: Exception) -> str:
    # re's messages end in "at position N" of the translated regex, not of the glob.
    return re.sub(r" at position \d+$", "", str(exc).splitlines()[0])


def _git(root: Path, *args: str) -> str:
    return _git_run(root, *args).stdout


def _git_run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        raw = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise ToolError("git is not installed (needed for --changed-since)") from exc
    # Decoded by hand: text mode would turn a carriage return in a file name into a newline.
    done = subprocess.CompletedProcess(
        raw.args,
        raw.returncode,
        raw.stdout.decode("utf-8", "surrogateescape"),
        raw.stderr.decode("utf-8", "replace"),
    )
    if check and done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise ToolError(f"git {' '.join(args[:2])}: {message}")
    return done


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


# git lists what it can and warns about a directory it cannot open.
_GIT_UNREADABLE = re.compile(r"^warning: could not open directory '(?P<dir>.*)': (?P<why>.*)$")


def git_files(root: Path) -> list[str]:
    return _git_files(root)[0]


def _git_files(root: Path) -> tuple[list[str], list[Finding]]:
    done = _git_run(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    unreadable = [
        _unreadable_directory(found["dir"].rstrip("/"), found["why"])
        for found in map(_GIT_UNREADABLE.match, done.stderr.splitlines())
        if found
    ]
    return sorted({p for p in done.stdout.split("\0") if p}), unreadable


def walk_files(root: Path) -> list[str]:
    return _walk_files(root)[0]


def _walk_files(root: Path) -> tuple[list[str], list[Finding]]:
    found: list[str] = []
    unreadable: list[Finding] = []

    def skipped(error: OSError) -> None:
        where = Path(str(error.filename)).relative_to(root).as_posix()
        unreadable.append(_unreadable_directory(where, error.strerror or str(error)))

    for dirpath, dirnames, filenames in os.walk(root, onerror=skipped, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = Path(dirpath).relative_to(root)
        found.extend((base / name).as_posix() for name in filenames)
    return sorted(found), unreadable


def _unreadable_directory(path: str, why: str) -> Finding:
    message = f"cannot read this directory: {why}; the files in it are not checked"
    return Finding(path, None, None, "syntax", "unreadable", "error", message)


def changed_files(root: Path, ref: str) -> list[str]:
    """Files changed between merge-base(REF, HEAD) and the working tree, plus new untracked ones."""
    base = merge_base(root, ref)
    out = _git(root, "diff", "--name-status", "-z", "-M", "--relative", base, "--")
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


FULL_HISTORY = (
    "fetch the full history: `fetch-depth: 0` on actions/checkout (GitHub Actions), "
    "`GIT_DEPTH: 0` in the job's variables (GitLab CI), or `git fetch --unshallow`"
)


def merge_base(root: Path, ref: str) -> str:
    """The commit where HEAD's history meets REF's; one clear error when there is none."""
    shown = escape_controls(ref, keep="")
    if ref.startswith("-"):  # git would read it as an option, --end-of-options or not
        raise InputError(f"--changed-since {shown}: a revision cannot start with '-'")
    commit = _commit(root, ref)
    head = _commit(root, "HEAD")
    shallow = _git(root, "rev-parse", "--is-shallow-repository").strip() == "true"
    if commit is None:
        hint = f"this clone is shallow; {FULL_HISTORY}" if shallow else "fetch it first"
        raise InputError(f"--changed-since {shown}: no such revision in this clone; {hint}")
    if head is None:
        raise InputError(f"--changed-since {shown}: HEAD has no commit yet")
    done = _git_run(root, "merge-base", commit, head, check=False)
    if done.returncode == 0:
        return done.stdout.strip()
    if shallow:
        raise InputError(
            f"--changed-since {shown}: no common ancestor with HEAD, because this clone is "
            f"shallow (history cut off); {FULL_HISTORY}"
        )
    if done.returncode == 1 and not done.stderr.strip():
        raise InputError(
            f"--changed-since {shown}: no common ancestor with HEAD (unrelated history)"
        )
    raise ToolError(f"git merge-base: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")


def _commit(root: Path, rev: str) -> str | None:
    """The commit `rev` names, or None; `rev` is never read as an option."""
    done = _git_run(
        root,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{rev}^{{commit}}",
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


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
    problems: list[Finding] = []
    if changed_since is not None:
        if not git:
            raise InputError(f"--changed-since needs a git repository; {root} is not in one")
        candidates = changed_files(root, changed_since)
    else:
        candidates, problems = _git_files(root) if git else _walk_files(root)
    problems = [p for p in problems if _under(p.path, prefixes)]
    keep, drop = matcher(include), matcher(exclude)
    chosen: list[str] = []
    escaping: list[str] = []
    for rel in candidates:
        if rel.split("/", 1)[0] in SKIP_DIRS:  # never our own cache, even when not git-ignored
            continue
        if not _under(rel, prefixes) or not keep.match_file(rel) or drop.match_file(rel):
            continue
        place = _place(root, rel)
        if isinstance(place, Finding):
            problems.append(place)
        elif place == "escaping":
            escaping.append(rel)
        elif place == "file":
            chosen.append(rel)
    return Selection(tuple(chosen), tuple(escaping), tuple(problems))


def _place(root: Path, rel: str) -> str | Finding:
    """What a listed path is: a "file" to check, an "escaping" link, or one to "skip"
    (a directory, a dangling link); a finding when it cannot be looked at."""
    full = root / rel
    try:
        if full.is_symlink():
            os.stat(full)  # follows the link: ELOOP for a loop
            if _escapes(root, full):
                return "escaping"
        return "file" if full.is_file() else "skip"
    except FileNotFoundError:
        return "skip"  # a dangling link, or deleted since it was listed
    except RuntimeError:  # Python < 3.13: resolve() on a loop
        return _link_loop(rel)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _link_loop(rel)
        message = f"cannot read: {exc.strerror or exc}"
        return Finding(rel, None, None, "syntax", "unreadable", "error", message)


def _link_loop(rel: str) -> Finding:
    message = "symbolic link loop; not followed"
    return Finding(rel, None, None, "syntax", "symlink-loop", "warning", message)


def _relative_prefix(root: Path, given: str) -> str:
    # The pre-commit hook passes staged file names: any character may be in one.
    shown = escape_controls(given, keep="")
    candidate = Path(given)
    full = candidate if candidate.is_absolute() else root / candidate
    try:
        if not full.exists():
            raise InputError(f"no such file or directory: {shown}")
        resolved = full.resolve()
    except (OSError, RuntimeError) as exc:  # unreadable directory, symbolic link loop
        raise InputError(f"cannot use {shown}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError as exc:
        raise InputError(f"{shown} is outside the repository {root}") from exc
