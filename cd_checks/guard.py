"""The per-file guard: whatever goes wrong while checking one file is that file's finding.

One hostile or broken file must not abort a run and leave the other files
unchecked. `finding_for` turns the exception raised while reading, parsing
or checking one file into one finding on that file: the expected kinds
(unreadable, undecodable, too deep, too big, a value that cannot be built)
in plain words, anything else as an internal error the user is asked to
report, with where it was raised. User errors of the whole run
(`CdChecksError`) are not this module's: they stay one error line.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from cd_checks.bounded import ParseProblem
from cd_checks.findings import Finding

INTERNAL = "input/error"


def finding_for(path: str, exc: Exception, *, full: Path | None = None) -> Finding:
    """The finding on `path` (repo-relative) for `exc`, raised while checking it."""
    rule, message, line, column = _describe(exc, full)
    return Finding(path, line, column, "syntax", rule, "error", message)


def _describe(exc: Exception, full: Path | None) -> tuple[str, str, int | None, int | None]:
    if isinstance(exc, ParseProblem):
        return exc.rule, exc.message, exc.line, exc.column
    if isinstance(exc, OSError):
        return "unreadable", _unreadable(exc, full), None, None
    if isinstance(exc, RecursionError):
        return "too-deep", "nested too deeply to check (Python's recursion limit)", None, None
    if isinstance(exc, MemoryError):
        return "too-large", "ran out of memory while checking this file", None, None
    if isinstance(exc, UnicodeError):
        return "encoding", f"cannot decode the text: {_one_line(exc)}", None, None
    if isinstance(exc, ValueError):
        return INTERNAL, f"a value cannot be read: {_one_line(exc)}", None, None
    return INTERNAL, _internal(exc), None, None


def _unreadable(exc: OSError, full: Path | None) -> str:
    reason = exc.strerror or _one_line(exc)
    other = exc.filename is not None and (full is None or Path(str(exc.filename)) != full)
    return f"cannot read {exc.filename}: {reason}" if other else f"cannot read: {reason}"


def _internal(exc: Exception) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return (
        "internal error while checking this file: "
        f"{type(exc).__name__}: {_one_line(exc)}{where}; please report"
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
