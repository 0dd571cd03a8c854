"""The bytes of the file store's JSON-lines trail: torn tails, unreadable lines, side files.

A writer appends a record as one line with one write and fsyncs it. A writer
killed mid-write leaves a torn tail: bytes after the last newline that are not
a record (an unfinished line), sometimes preceded by a last line that is not a
record either. `examine` finds it in the end of the file; `bad_lines` finds
every line that is not an audit record, for `cd-checks audit repair`. Lines
taken out of the trail are never dropped: `write_side_file` keeps them next
to the trail in `<trail>.torn-<UTC time>` (moved automatically) or
`<trail>.repair-<UTC time>` (moved by a repair), one removed line a line,
prefixed with its line number as `grep -n` prints it (`12:{"kind": ...`).
A line that reads as a record is never a bad line, whatever its chain says:
`audit verify` judges those. File-descriptor level I/O only; nothing prints.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cd_checks.audit.record import AuditRecord
from cd_checks.errors import AuditError

SIDE_KINDS = ("torn", "repair")
TORN = "torn: no newline at its end (a writer died mid-append)"
WINDOW = 1 << 16


@dataclass(frozen=True)
class BadLine:
    """A line of the trail that is not an audit record: its number (from 1), where, why."""

    line: int
    offset: int
    raw: bytes  # without its newline
    reason: str
    newline: bool = True  # False: the unfinished last line

    @property
    def sha256(self) -> str:
        """Of the bytes as they were in the trail (with the newline, if the line had one)."""
        return hashlib.sha256(self.raw + (b"\n" if self.newline else b"")).hexdigest()

    @property
    def size(self) -> int:
        return len(self.raw) + (1 if self.newline else 0)

    def describe(self) -> str:
        return f"line {self.line}: {self.reason} ({self.size} bytes, sha256 {self.sha256[:16]})"


@dataclass(frozen=True)
class TailCheck:
    """The end of a trail: its last record, and what (if anything) is torn.

    `torn_at`: where in the examined bytes the torn tail starts (None: nothing torn).
    `needs_newline`: the last line is a whole record that lacks only its newline.
    """

    last: AuditRecord | None
    torn_at: int | None = None
    needs_newline: bool = False


def parse_line(raw: bytes, where: str) -> AuditRecord:
    """The record on one line; AuditError naming `where` when it is not one."""
    try:
        return AuditRecord.from_dict(json.loads(raw.decode("utf-8")))
    except UnicodeDecodeError as exc:
        raise AuditError(f"{where}: not UTF-8 text: {exc}") from exc
    except ValueError as exc:
        raise AuditError(f"{where}: not a JSON audit record: {exc}") from exc
    except (AuditError, TypeError) as exc:
        raise AuditError(f"{where}: not an audit record: {exc}") from exc


def _record(raw: bytes) -> AuditRecord | None:
    try:
        return parse_line(raw, "")
    except AuditError:
        return None


def _reason(raw: bytes) -> str:
    try:
        parse_line(raw, "line")
    except AuditError as exc:
        return str(exc).removeprefix("line: ")
    return ""


def last_line_start(data: bytes, *, whole: bool) -> int | None:
    """Where the last non-blank newline-terminated line of `data` starts.

    `data` is the end of a file (`whole`: all of it). None: that line may begin
    before `data` (read more). 0 when the whole file has no such line.
    """
    position = data.rfind(b"\n") + 1
    while position > 0:
        start = data.rfind(b"\n", 0, position - 1) + 1
        if start == 0 and not whole:
            return None
        if data[start:position].strip():
            return start
        position = start
    return 0 if whole else None


def examine(tail: bytes) -> TailCheck:
    """Judge the end of a trail, from the start of its last non-blank complete line on.

    Torn: bytes after the last newline that are not a record, and a last complete
    line that is not a record (both go, in one piece). Complete records are never torn.
    """
    end = tail.rfind(b"\n") + 1
    unfinished = tail[end:]
    line = tail[: tail.find(b"\n") + 1] if end else b""
    last = _record(line) if line.strip() else None
    bad_line = bool(line.strip()) and last is None
    if unfinished:
        whole = _record(unfinished)
        if whole is not None:
            return TailCheck(whole, needs_newline=True)
        return TailCheck(None if bad_line else last, torn_at=0 if bad_line else end)
    if bad_line:
        return TailCheck(None, torn_at=0)
    return TailCheck(last)


def tail_window(fd: int, size: int) -> tuple[int, bytes]:
    """(offset, bytes): the end of the file from the start of its last non-blank complete line.

    Read backwards in growing windows, so an append does not read the whole trail.
    """
    want = WINDOW
    while True:
        start = max(0, size - want)
        data = os.pread(fd, size - start, start)
        cut = last_line_start(data, whole=start == 0)
        if cut is not None:
            return start + cut, data[cut:]
        want *= 4


def line_number(fd: int, offset: int) -> int:
    """The number (from 1) of the line starting at byte `offset`."""
    count, position = 0, 0
    while position < offset:
        chunk = os.pread(fd, min(1 << 20, offset - position), position)
        if not chunk:
            break
        count += chunk.count(b"\n")
        position += len(chunk)
    return count + 1


def bad_lines(data: bytes) -> list[BadLine]:
    """Every line of the trail that is not an audit record (blank lines are not lines)."""
    found = []
    for number, offset, raw, newline in _lines(data):
        if not raw.strip():
            continue
        reason = _reason(raw)
        if reason and not newline:
            reason = f"{TORN}; {reason}"
        if reason:
            found.append(BadLine(number, offset, raw, reason, newline))
    return found


def _lines(data: bytes) -> Iterator[tuple[int, int, bytes, bool]]:
    """(number, offset, bytes without the newline, had a newline) for each line."""
    offset = 0
    pieces = data.split(b"\n")
    for number, raw in enumerate(pieces, 1):
        last = number == len(pieces)
        if last and not raw:
            return
        yield number, offset, raw, not last
        offset += len(raw) + 1


def without(data: bytes, bad: list[BadLine]) -> bytes:
    """The trail with the bad lines taken out, every kept line ending in a newline."""
    gone = {b.line for b in bad}
    return b"".join(raw + b"\n" for n, _, raw, _ in _lines(data) if n not in gone)


def torn_lines(tail: bytes, first: int) -> list[BadLine]:
    """The torn tail `tail` (a last line that is not a record, an unfinished line) as lines."""
    return [
        BadLine(first + n - 1, offset, raw, TORN if not newline else _reason(raw), newline)
        for n, offset, raw, newline in _lines(tail)
    ]


def side_file_text(lines: list[BadLine]) -> bytes:
    return b"".join(f"{b.line}:".encode() + b.raw + b"\n" for b in lines)


def side_name(trail: Path, kind: str, moment: datetime, attempt: int) -> Path:
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{attempt}" if attempt else ""
    return trail.with_name(f"{trail.name}.{kind}-{stamp}{suffix}")


def write_side_file(
    trail: Path, kind: str, lines: list[BadLine], moment: datetime, mode: int
) -> Path:
    """Create `<trail>.<kind>-<UTC time>` (never over another) with the lines; fsynced."""
    for attempt in range(100):
        path = side_name(trail, kind, moment, attempt)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        try:
            write_all(fd, side_file_text(lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(trail.parent)
        return path
    raise AuditError(f"cannot name a side file for {trail}: 100 of them exist for this second")


def side_files(trail: Path) -> list[Path]:
    """The side files kept next to the trail, oldest first."""
    found = [p for kind in SIDE_KINDS for p in trail.parent.glob(f"{trail.name}.{kind}-*")]
    return sorted(found, key=lambda p: p.name.split(".")[-1].split("-", 1)[-1])


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    """Make a new or renamed directory entry durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
