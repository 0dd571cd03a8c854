"""Pre-flight of `rollout run`: the revision being deployed must pass `validate`.

Validate runs in the PR pipeline; the rollout checks again on exactly what it
ships (a git worktree of the revision, not the working tree), so a change
pushed past the PR checks is not deployed. A failure refuses the rollout
unless it is a break-glass run, whose audit record then carries `summary`.
Returns values; never prints.
"""

from __future__ import annotations

from pathlib import Path

from cd_checks.audit.record import Json
from cd_checks.findings import Report
from cd_checks.rollout.workspace import Workspace

SHOWN_FINDINGS = 20


def validate_revision(
    workspace: Workspace, revision: str, *, config_path: Path | None, inventory: Path | None = None
) -> Report:
    """`cd-checks validate` on a worktree of `revision` (no cache: it is thrown away).

    `inventory` is the one the rollout uses; its stages' groups are checked against it.
    """
    from cd_checks.validate import ValidateOptions, run

    with workspace.checkout(revision) as tree:
        options = ValidateOptions(
            root=tree, config_path=config_path, use_cache=False, inventory=inventory
        )
        return run(options)


def summary(report: Report, revision: str) -> dict[str, Json]:
    """What the audit record keeps of a failed validate: counts and the first findings."""
    errors = [f for f in report.findings if f.severity == "error"]
    return {
        "revision": revision,
        "errors": report.errors,
        "warnings": report.warnings,
        "findings": [f"{f.path}:{f.line}: {f.rule}: {f.message}" for f in errors[:SHOWN_FINDINGS]],
    }
