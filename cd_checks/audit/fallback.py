"""Where break-glass writes when the audit trail cannot take it, and what reminds of it.

An emergency deploy must never be stopped by its audit trail, and must never go
unaudited. `FallbackStore` is the store a `rollout run --break-glass` writes
through: the configured trail while it can be read and written, else (a bad
line in it, a read-only checkout, a full disk, an unreachable remote) a
fallback trail outside the checkout, `$XDG_STATE_HOME/cd-checks/audit-fallback/
<repository>-<8 hex>.jsonl` (directory 0700, file 0600), with a warning naming
that file for every record written there. `notices` lists what every reader of
the trail must be told: lines moved to side files, and fallback records that
are not in the trail. The environment is handed in; nothing here prints.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cd_checks import state_dir
from cd_checks.audit import jsonl
from cd_checks.audit.record import AuditRecord
from cd_checks.audit.store import AuditStore, FileStore
from cd_checks.errors import AuditError

FALLBACK_DIR = "audit-fallback"


def _quiet(message: str) -> None:
    """The default warning sink; the CLI hands one that prints."""


def _ignore(record: AuditRecord) -> None:
    """By default nobody follows the main trail's head."""


def fallback_path(root: Path, env: Mapping[str, str]) -> Path:
    """The fallback trail of the repository at `root`, per user (XDG state directory).

    The name carries a hash of the checkout's path: two clones called `infra` differ.
    """
    where = root.resolve()
    digest = hashlib.sha256(str(where).encode("utf-8")).hexdigest()[:8]
    return state_dir.user_dir(env) / FALLBACK_DIR / f"{where.name}-{digest}.jsonl"


@dataclass(frozen=True)
class FallbackStore:
    """The trail `main`, else the fallback trail: what break-glass writes through.

    `records` is the main trail's records (none when it cannot be read) followed by the
    fallback's, so a run that started in the fallback finds its start record there.
    `written` hears of each record the main trail took (the user's anchor follows its
    head: a fallback record is not one of its links).
    """

    main: AuditStore
    fallback: FileStore
    warn: Callable[[str], None] = field(default=_quiet, compare=False, repr=False)
    written: Callable[[AuditRecord], None] = field(default=_ignore, compare=False, repr=False)

    def describe(self) -> str:
        return f"{self.main.describe()} (break-glass fallback: {self.fallback.path})"

    def records(self) -> list[AuditRecord]:
        try:
            main = self.main.records()
        except AuditError as exc:
            self.warn(
                f"BREAK-GLASS: the audit trail {self.main.describe()} cannot be read ({exc}); "
                f"this run reads and writes the fallback trail {self.fallback.path}"
            )
            main = []
        return main + self.fallback.records()

    def append(self, record: AuditRecord) -> AuditRecord:
        try:
            # A trail with a bad line takes appends but cannot be read back: unusable too.
            self.main.records()
            linked = self.main.append(record)
        except AuditError as exc:
            return self._fall_back(record, exc)
        try:
            self.written(linked)
        except AuditError as exc:  # the record is written: the run goes on, told
            self.warn(f"the audit record {linked.id} is written, but {exc}")
        return linked

    def _fall_back(self, record: AuditRecord, reason: AuditError) -> AuditRecord:
        try:
            linked = self.fallback.append(record)
        except AuditError as exc:
            raise AuditError(f"{reason}; the break-glass fallback failed too: {exc}") from exc
        self.warn(
            f"BREAK-GLASS: the audit trail {self.main.describe()} is unusable ({reason}); "
            f"the {record.kind} record {record.id} was written to {self.fallback.path}: keep that "
            "file, it is this deploy's audit record"
        )
        return linked


def notices(store: AuditStore, fallback: Path) -> list[str]:
    """What a reader of the trail must be told: side files next to it, fallback records."""
    found = []
    if isinstance(store, FileStore):
        found += [_side_notice(store.path, side) for side in jsonl.side_files(store.path)]
    count = jsonl.count_lines(fallback) if fallback.is_file() else 0
    if count:
        found.append(
            f"{fallback}: {count} break-glass record(s) were written to this fallback trail "
            "while the audit trail was unusable; they are not in the trail: keep the file"
        )
    return found


def _side_notice(trail: Path, side: Path) -> str:
    count = jsonl.count_lines(side)
    if ".torn-" in side.name:
        return (
            f"{side}: {count} torn line(s) moved out of the trail {trail} (a writer died "
            "mid-append; never a complete record): inspect, then delete the file"
        )
    return f"{side}: {count} line(s) moved out of the trail by `cd-checks audit repair`"
