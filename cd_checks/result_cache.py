"""The result cache of `validate`: findings by content, authenticated, never from the checkout.

An entry, `.cd-checks/cache/<aa>/<key>.json`, holds one file's findings under
a key derived from the file's bytes and everything else that decides its
verdict, and for a file the cross-file checks read, its parsed documents
(so a warm run parses nothing). Two rules keep a pull request from writing
its own verdict:

- the cache is not used at all when git tracks anything under it, or when
  `.cd-checks` or `.cd-checks/cache` is a symbolic link: a cache that arrives
  with the checked revision (or points elsewhere) is not ours;
- every entry carries an HMAC-SHA256 over its key, findings and documents, made with a
  secret that lives outside the repository: `CD_CHECKS_CACHE_KEY` (a CI
  secret, the same for every run of a project, so CI runs share entries) or
  else a per-user key created once in `$XDG_STATE_HOME/cd-checks/cache.key`.
  An entry that fails verification is a miss, counted for one warning.

Like the cache itself, a problem here costs speed, never a verdict: it is
reported as a warning and the run goes on without the cache. This module
reads and writes the cache directory and the key file; it prints nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cd_checks import state_dir
from cd_checks.findings import Finding

ENV = "CD_CHECKS_CACHE_KEY"
KEY_FILE = "cache.key"
# Below this, a secret can be guessed from entries anyone can compute.
MIN_KEY_LENGTH = 16
DOMAIN = b"cd-checks result cache v1\0"


class Unavailable(Exception):
    """The cache cannot be used in this run; the message says why, in one line."""


def secret(environ: Mapping[str, str]) -> bytes:
    """The HMAC key: `CD_CHECKS_CACHE_KEY`, else this user's key file (created when missing)."""
    given = environ.get(ENV, "")
    if given:
        if len(given) < MIN_KEY_LENGTH:
            raise Unavailable(
                f"{ENV} is shorter than {MIN_KEY_LENGTH} characters; not using the result "
                "cache (make one with `openssl rand -hex 32`)"
            )
        return given.encode()
    return _user_key(user_state_dir(environ) / KEY_FILE)


def user_state_dir(environ: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/cd-checks`, by default `~/.local/state/cd-checks` (XDG base dirs)."""
    return state_dir.user_dir(environ)


def _user_key(path: Path) -> bytes:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            _create_key(path)
        info = path.stat()
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise Unavailable(
            f"cannot use the cache key {path}: {why}; not using the result cache"
        ) from exc
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise Unavailable(
            f"the cache key {path} is open to other users (mode {mode:04o}); not using the "
            f"result cache until `chmod 600 {path}`"
        )
    if len(text) < MIN_KEY_LENGTH:
        raise Unavailable(f"the cache key {path} is too short; delete it to have a new one made")
    return text.encode()


def _create_key(path: Path) -> None:
    """Write a new random key aside, then link it into place: the first of two racing runs wins."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def refusal(root: Path, directory: Path) -> str | None:
    """Why the cache `directory` of the repository at `root` must not be used; None: it may.

    A cache that is part of the checked revision (committed, or a link the
    revision carries) would let the revision choose its own verdict.
    """
    for path in (*reversed(directory.parents), directory):
        if path.is_relative_to(root) and path != root and path.is_symlink():
            return f"{_shown(root, path)} is a symbolic link; not using the result cache"
    tracked = _tracked(root, directory)
    if tracked:
        return (
            f"{tracked} is tracked by git (committed in the checked revision); not using the "
            f"result cache (`git rm -r --cached {_shown(root, directory)}` takes it out of git)"
        )
    return None


def _tracked(root: Path, directory: Path) -> str | None:
    """The first path under `directory` (or a parent inside `root`) that git tracks, if any."""
    top = directory.relative_to(root).parts[0]
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--", top],
            capture_output=True,
            check=False,
        )
    except OSError:
        return None  # no git: nothing can be tracked, and the entries are still verified
    if done.returncode != 0:
        return None  # not a git work tree
    cache = directory.relative_to(root).as_posix()
    for name in done.stdout.decode("utf-8", "replace").split("\0"):
        # `.cd-checks` itself tracked is a committed link (or file) standing in for the directory.
        if name and (name in (top, cache) or name.startswith(cache + "/")):
            return name
    return None


def _shown(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


@dataclass(frozen=True)
class Documents:
    """A file's parsed documents as the cross-file checks read them; `kind` is the file's
    kind (yaml, json, ...). Stored with the findings, so a warm run need not parse."""

    kind: str
    documents: tuple[Any, ...]


@dataclass(frozen=True)
class Hit:
    """A verified entry. `stored`: the entry holds the file's documents (`documents`,
    None when the file had none to read: a syntax error)."""

    findings: list[Finding]
    stored: bool = False
    documents: Documents | None = None


class Cache:
    """Findings by content: `<directory>/<aa>/<key>.json`, each entry authenticated.

    Counts the entries that were there but failed verification (`rejected`),
    so the run can say so once.
    """

    def __init__(self, directory: Path, fingerprint: str, key: bytes) -> None:
        self.directory, self.fingerprint, self._key = directory, fingerprint, key
        self.rejected = 0

    def key(self, path: str, data: bytes) -> str:
        digest = hashlib.sha256(self.fingerprint.encode())
        for part in (path.encode(), data):
            digest.update(b"\0" + part)
        return digest.hexdigest()

    def _entry(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def _mac(self, key: str, findings: object, *documents: object) -> str:
        # Documents, when stored, follow a NUL: no JSON text here holds one (ensure_ascii),
        # so an entry with documents and one without never sign the same message.
        parts = [_canonical(findings), *(_canonical(d) for d in documents)]
        message = DOMAIN + key.encode() + b"\0" + b"\0".join(parts)
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def get(self, key: str) -> list[Finding] | None:
        """The findings stored under `key`; None when missing or not verified (a miss)."""
        hit = self.lookup(key)
        return hit.findings if hit is not None else None

    def lookup(self, key: str) -> Hit | None:
        """The entry stored under `key`, verified; None when missing or not verified (a miss)."""
        try:
            raw = _read_entry(self._entry(key))
        except FileNotFoundError:
            return None
        except OSError:
            raw = b""  # unreadable (or a link): as good as forged
        try:
            entry = json.loads(raw)
            stored, findings = entry["mac"], entry["findings"]
            kept = "documents" in entry
            documents = (entry["documents"],) if kept else ()
            expected = self._mac(key, findings, *documents)
            if not (isinstance(stored, str) and hmac.compare_digest(stored, expected)):
                raise ValueError("entry not verified")
            found = [Finding.from_dict(item) for item in findings]
            return Hit(found, kept, _documents(entry["documents"]) if kept else None)
        except (ValueError, KeyError, TypeError):
            # Forged, damaged or made with another key: checked again and rewritten.
            self.rejected += 1
            return None

    def put(
        self,
        key: str,
        findings: Sequence[Finding],
        *,
        documents: Documents | None = None,
        keep_documents: bool = False,
    ) -> None:
        """Store `findings` under `key`; with `keep_documents`, the file's `documents` too
        (None: the file had none, so none need be parsed next time either)."""
        entry = self._entry(key)
        items = [f.to_dict() for f in findings]
        body: dict[str, Any] = {"findings": items}
        if keep_documents:
            body["documents"] = (
                {"kind": documents.kind, "documents": list(documents.documents)}
                if documents is not None
                else None
            )
        stored = (body["documents"],) if keep_documents else ()
        text = json.dumps({"mac": self._mac(key, items, *stored), **body})
        try:
            if entry.parent.is_symlink():
                return  # written only where the directory really is
            state_dir.make_dirs(entry.parent)
            temporary = entry.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(text, "utf-8")
            temporary.replace(entry)
        except OSError:
            return  # a read-only cache directory costs speed, never a verdict


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _documents(stored: Any) -> Documents | None:
    """The stored documents (already verified) as they were put; a wrong shape is a TypeError."""
    if stored is None:
        return None
    kind, documents = stored["kind"], stored["documents"]
    if not isinstance(kind, str) or not isinstance(documents, list):
        raise TypeError("documents of a wrong shape")
    return Documents(kind, tuple(documents))


def _read_entry(path: Path) -> bytes:
    """An entry's bytes; a symbolic link or anything but a regular file is an OSError."""
    # No link followed, and a FIFO planted there cannot block the run.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path}: not a regular file")
        return handle.read()


def rejected_warning(count: int) -> str:
    """The one line for `count` entries that failed verification."""
    entries = "entry" if count == 1 else "entries"
    were = "was" if count == 1 else "were"
    return (
        f"{count} result cache {entries} failed verification and {were} ignored (forged, "
        f"damaged or made with another key); their files were checked again"
    )
