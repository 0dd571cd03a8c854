"""Break-glass: the post-mortem obligation's lifecycle and the post-mortem's required sections."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cd_checks.audit.identity import Identity
from cd_checks.audit.store import FileStore
from cd_checks.audit.trail import AuditTrail, BreakGlass
from cd_checks.breakglass import enforce, hours_from, obligations, validate_postmortem
from cd_checks.errors import InputError, RolloutError
from cd_checks.incidents import record_postmortem

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)

POSTMORTEM = """# Post-mortem: DNS outage

## Summary
Resolver config pushed with break-glass to restore DNS.

## Timeline
- 09:00 alert
- 09:05 break-glass deploy

## Root cause
A typo in the upstream list.

## Actions
- add a resolver policy check
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _trail(tmp_path: Path, clock: Clock) -> AuditTrail:
    return AuditTrail(FileStore(tmp_path / "audit.jsonl"), tmp_path, clock)


def _break_glass(trail: AuditTrail, environment: str = "production") -> str:
    return trail.start(
        "rollout",
        environment,
        None,
        None,
        "abc123",
        [["dns1"]],
        Identity("oncall", "git"),
        BreakGlass("DNS down for everyone", "INC-4711"),
    )


def test_obligation_lifecycle_warn_then_fail_then_cleared(tmp_path: Path) -> None:
    clock = Clock()
    trail = _trail(tmp_path, clock)
    deploy = _break_glass(trail)
    hours = 72.0

    clock.now = T0 + timedelta(hours=71)
    [warning] = enforce(trail.records(), "production", clock.now, hours, break_glass=False)
    assert warning == (
        f"warning: break-glass deploy {deploy} to production by oncall "
        "(ticket INC-4711: DNS down for everyone) needs a post-mortem; it is due "
        f"2026-11-05T09:00:00Z: cd-checks postmortem record {deploy} --file FILE"
    )
    assert enforce(trail.records(), "staging", clock.now, hours, break_glass=False) == []

    clock.now = T0 + timedelta(hours=72, minutes=1)
    with pytest.raises(
        RolloutError, match="post-mortem overdue, rollouts to production are blocked"
    ):
        enforce(trail.records(), "production", clock.now, hours, break_glass=False)
    [still] = enforce(trail.records(), "production", clock.now, hours, break_glass=True)
    assert "it was due 2026-11-05T09:00:00Z" in still

    path = tmp_path / "pm.md"
    record = record_postmortem(trail, deploy, actor="oncall", text=POSTMORTEM, source=str(path))
    assert record.kind == "postmortem" and record.refs[0] == deploy
    assert record.detail["text"] == POSTMORTEM and len(record.detail["sha256"]) == 64
    assert enforce(trail.records(), "production", clock.now, hours, break_glass=False) == []
    assert obligations(trail.records(), clock.now, hours) == []


def test_each_break_glass_use_owes_its_own_post_mortem(tmp_path: Path) -> None:
    clock = Clock()
    trail = _trail(tmp_path, clock)
    first = _break_glass(trail)
    clock.now = T0 + timedelta(hours=10)
    second = _break_glass(trail)
    record_postmortem(trail, first, actor="a", text=POSTMORTEM, source="pm.md")
    owed = obligations(trail.records(), T0 + timedelta(hours=80), 72.0)
    assert [(o.deploy_id, o.state) for o in owed] == [(second, "due")]


def test_a_post_mortem_for_a_normal_deploy_is_refused(tmp_path: Path) -> None:
    trail = _trail(tmp_path, Clock())
    deploy = trail.start("rollout", "production", None, None, "abc", [], Identity())
    with pytest.raises(InputError, match="did not use break-glass"):
        record_postmortem(trail, deploy, actor="a", text=POSTMORTEM, source="pm.md")


def test_missing_sections_are_named_in_one_line() -> None:
    text = "# Summary\nWe broke DNS.\n\n## Timeline\n\n## Notes\nnone\n"
    with pytest.raises(InputError) as caught:
        validate_postmortem(text, "pm.md")
    assert str(caught.value) == (
        "pm.md: missing section(s): root cause, actions; empty section(s): timeline "
        "(required Markdown headings: summary, timeline, root cause, actions)"
    )


def test_heading_styles_and_synonyms_are_accepted() -> None:
    text = (
        "Summary\n=======\nshort\n\n### 2. Timeline ###\n- t0\n\n"
        "## Root Cause Analysis\nthe cause\n\n## Action items\n- fix\n"
    )
    validate_postmortem(text, "pm.md")


def test_a_rejected_post_mortem_writes_nothing(tmp_path: Path) -> None:
    clock = Clock()
    trail = _trail(tmp_path, clock)
    deploy = _break_glass(trail)
    before = trail.records()
    with pytest.raises(InputError, match="missing section"):
        record_postmortem(trail, deploy, actor="a", text="# Summary\nx\n", source="pm.md")
    assert trail.records() == before


def test_deadline_hours_come_from_the_config_section() -> None:
    assert hours_from({}) == 72.0
    assert hours_from({"postmortem_hours": 24}) == 24.0
