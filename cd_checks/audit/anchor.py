"""The newest head of a trail this user has seen, kept where the trail's writers cannot reach.

A hash chain cannot show that its newest records were cut off, nor that a
branch was rewritten from some record on with a freshly computed chain. So
each user keeps, per trail, the last head (seq, id, hash, signed?) they wrote
or verified, in `$XDG_STATE_HOME/cd-checks/anchors/<trail>.json` (0600): a
later `verify` fails if the trail no longer has that record with that hash.
The anchor only moves forward. It is as safe as the user's own account:
whoever can write the trail (a file others can write, a branch others can
push) cannot change it. In CI, whose state is thrown away, the head printed
by `cd-checks audit verify` (`--format json`) is the anchor to keep and pass
back with `--anchor`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cd_checks.audit.record import AuditRecord
from cd_checks.audit.signing import make_private_dir
from cd_checks.errors import AuditError


@dataclass(frozen=True)
class Anchor:
    seq: int
    id: str
    hash: str
    signed: bool


@dataclass(frozen=True)
class AnchorFile:
    """The anchor of one trail (`trail` names it: a file path, a remote URL and branch)."""

    path: Path
    trail: str

    @classmethod
    def of(cls, directory: Path, trail: str) -> AnchorFile:
        name = hashlib.sha256(trail.encode("utf-8")).hexdigest()[:32]
        return cls(directory / "anchors" / f"{name}.json", trail)

    def read(self) -> Anchor | None:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditError(f"cannot read the audit anchor {self.path}: {exc}") from exc
        try:
            data = json.loads(text)
            return Anchor(
                int(data["seq"]), str(data["id"]), str(data["hash"]), bool(data["signed"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditError(
                f"the audit anchor {self.path} is damaged ({exc}); remove it to start over"
            ) from exc

    def advance(self, record: AuditRecord) -> None:
        """Make `record` the anchor if it is newer than the one kept (never move back)."""
        with self._locked():
            current = self.read()
            if current is not None and record.seq <= current.seq:
                return
            data = {
                "trail": self.trail,
                "seq": record.seq,
                "id": record.id,
                "hash": record.hash,
                "signed": record.signature is not None,
            }
            self._write(json.dumps(data, sort_keys=True) + "\n")

    def _write(self, text: str) -> None:
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, text.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
        except OSError as exc:
            raise AuditError(f"cannot write the audit anchor {self.path}: {exc}") from exc

    @contextmanager
    def _locked(self) -> Iterator[None]:
        make_private_dir(self.path.parent)
        lock = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot lock the audit anchor {self.path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
