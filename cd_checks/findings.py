"""Finding and Report: the one model every check produces.

Checks yield `Finding`s; report formats render a `Report`. Nothing here
knows about files on disk, click or any output format. A finding of level
`exception` is no problem: it records that a conftest `exception` rule
excepted a rule for a document (conftest's EXCP result), so a report can show
and count what was excepted; it never fails a run. Nor does one of level `trace`:
a line of a Rego evaluation trace (`--trace`), which the text format shows, or of
level `success`: a rule that passed for a document (conftest's successes), which
only conftest's formats count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Check = Literal["syntax", "schema", "policy", "rollout"]
Severity = Literal["error", "warning"]
# What a Finding can carry: a problem's severity, "exception" (an applied exception),
# "trace" (a line of --trace's evaluation trace) or "success" (a rule that passed).
Level = Literal["error", "warning", "exception", "trace", "success"]
FailOn = Literal["error", "warning", "never"]

CHECKS: tuple[Check, ...] = ("syntax", "schema", "policy", "rollout")
SEVERITIES: tuple[Severity, ...] = ("error", "warning")
FAIL_ON: tuple[FailOn, ...] = ("error", "warning", "never")
EXCEPTION: Level = "exception"
TRACE: Level = "trace"
SUCCESS: Level = "success"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem at one place. `line`/`column` are 1-based, None when unknown."""

    path: str
    line: int | None
    column: int | None
    check: Check
    rule: str
    severity: Level
    message: str
    # A policy result's own keys besides `msg` (conftest's metadata, `_loc` among them),
    # for the formats that show them (conftest-json); not part of a finding's identity.
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line or 0, self.column or 0, self.check, self.rule)

    def to_dict(self) -> dict[str, Any]:
        shown = {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "check": self.check,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }
        return {**shown, "metadata": dict(self.metadata)} if self.metadata else shown

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Finding:
        return cls(
            path=raw["path"],
            line=raw["line"],
            column=raw["column"],
            check=raw["check"],
            rule=raw["rule"],
            severity=raw["severity"],
            message=raw["message"],
            metadata=raw.get("metadata") or {},
        )


def namespace_of(finding: Finding) -> str:
    """The Rego package a policy finding came from (`main` of `main.deny_x`); else its check."""
    if finding.check == "policy" and "." in finding.rule:
        return finding.rule.rsplit(".", 1)[0]
    return finding.check


@dataclass(frozen=True)
class Report:
    """All findings of one run, sorted by file and position, plus the file count.

    `exceptions`: the applied conftest exceptions (level `exception`), apart from the
    problems; `suppressed` (`--suppress-exceptions`): formats count them but do not
    list them, as conftest. `paths` and `namespaces`: the files checked and the Rego
    namespaces evaluated, when known (conftest's formats list clean files under each).
    """

    findings: tuple[Finding, ...]
    files: int
    exceptions: tuple[Finding, ...] = ()
    suppressed: bool = False
    paths: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    traces: tuple[Finding, ...] = ()  # --trace's lines, in the order they came
    # Rules that passed, counted by (path, namespace): conftest's successes.
    successes: tuple[tuple[str, str, int], ...] = ()

    @classmethod
    def build(cls, findings: Iterable[Finding], files: int, paths: Iterable[str] = ()) -> Report:
        # No de-duplication: two documents of one file may earn the same finding
        # (same message, no line), and each counts, as in conftest.
        listed = list(findings)
        traces = tuple(f for f in listed if f.severity == TRACE)  # in evaluation order
        passed: dict[tuple[str, str], int] = {}
        for finding in listed:
            if finding.severity == SUCCESS:
                key = (finding.path, namespace_of(finding))
                passed[key] = passed.get(key, 0) + 1
        records = (TRACE, SUCCESS)
        ordered = sorted((f for f in listed if f.severity not in records), key=Finding.sort_key)
        problems = tuple(f for f in ordered if f.severity != EXCEPTION)
        excepted = tuple(f for f in ordered if f.severity == EXCEPTION)
        successes = tuple((path, ns, n) for (path, ns), n in sorted(passed.items()))
        return cls(
            problems, files, excepted, paths=tuple(paths), traces=traces, successes=successes
        )

    @property
    def shown_exceptions(self) -> tuple[Finding, ...]:
        """The exceptions a format lists: none when suppressed."""
        return () if self.suppressed else self.exceptions

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    def failed(self, fail_on: FailOn) -> bool:
        """True when a finding is at or above the `fail_on` threshold."""
        if fail_on == "never":
            return False
        if fail_on == "warning":
            return bool(self.findings)
        return self.errors > 0

    def by_path(self) -> dict[str, list[Finding]]:
        grouped: dict[str, list[Finding]] = {}
        for finding in self.findings:
            grouped.setdefault(finding.path, []).append(finding)
        return grouped
