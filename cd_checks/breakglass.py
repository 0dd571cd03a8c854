"""Break-glass: the post-mortem obligation it leaves, and what a post-mortem must contain.

A break-glass run (gates and validate overridden, never the audit) appends a
`break_glass` record. Until a `postmortem` record references it (or its
deploy), the environment has an open obligation: every later rollout there
warns before the deadline (`break_glass.postmortem_hours`, default 72) and
fails after it, unless it is itself a break-glass run. Everything here is a
pure function of the records and the clock it is given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cd_checks.audit.record import AuditRecord, parse_time
from cd_checks.errors import InputError, RolloutError

DEFAULT_HOURS = 72.0
REQUIRED_SECTIONS = ("summary", "timeline", "root cause", "actions")
# Headings that also satisfy a required section.
SYNONYMS = {"actions": ("action items", "follow-up", "follow up", "actions")}
State = Literal["due", "overdue"]


@dataclass(frozen=True)
class Obligation:
    """A post-mortem owed for one break-glass use."""

    break_glass_id: str
    deploy_id: str
    environment: str
    actor: str
    reason: str
    ticket: str
    used_at: datetime
    deadline: datetime
    state: State

    def describe(self) -> str:
        when = "was due" if self.state == "overdue" else "is due"
        return (
            f"break-glass deploy {self.deploy_id} to {self.environment} by {self.actor} "
            f"(ticket {self.ticket}: {self.reason}) needs a post-mortem; it {when} "
            f"{self.deadline.strftime('%Y-%m-%dT%H:%M:%SZ')}: "
            f"cd-checks postmortem record {self.deploy_id} --file FILE"
        )


def hours_from(section: dict[str, object]) -> float:
    value = section.get("postmortem_hours", DEFAULT_HOURS)
    return float(value) if isinstance(value, (int, float)) else DEFAULT_HOURS


def _cleared(records: Sequence[AuditRecord]) -> set[str]:
    return {ref for r in records if r.kind == "postmortem" for ref in r.refs}


def obligations(
    records: Sequence[AuditRecord], now: datetime, hours: float, environment: str | None = None
) -> list[Obligation]:
    """Open post-mortem obligations (of one environment, or all), oldest first."""
    cleared = _cleared(records)
    found = []
    for record in records:
        if record.kind != "break_glass" or (environment and record.environment != environment):
            continue
        deploy_id = record.refs[0] if record.refs else record.id
        if record.id in cleared or deploy_id in cleared:
            continue
        found.append(_obligation(record, deploy_id, now, hours))
    return found


def check_obligations(
    records: Sequence[AuditRecord], environment: str, now: datetime, hours: float
) -> list[Obligation]:
    return obligations(records, now, hours, environment)


def _obligation(record: AuditRecord, deploy_id: str, now: datetime, hours: float) -> Obligation:
    used = parse_time(record.started_at or "")
    deadline = used + timedelta(hours=hours)
    bg = record.break_glass or {}
    return Obligation(
        break_glass_id=record.id,
        deploy_id=deploy_id,
        environment=record.environment or "unknown",
        actor=record.actor or "unknown",
        reason=str(bg.get("reason", "unknown")),
        ticket=str(bg.get("ticket", "unknown")),
        used_at=used,
        deadline=deadline,
        state="overdue" if now > deadline else "due",
    )


def enforce(
    records: Sequence[AuditRecord],
    environment: str,
    now: datetime,
    hours: float,
    *,
    break_glass: bool,
) -> list[str]:
    """Warnings for a rollout about to start; RolloutError when a post-mortem is overdue.

    A break-glass run proceeds past an overdue obligation (the warning stays).
    """
    found = check_obligations(records, environment, now, hours)
    overdue = [o for o in found if o.state == "overdue"]
    if overdue and not break_glass:
        raise RolloutError(
            f"post-mortem overdue, rollouts to {environment} are blocked: {overdue[0].describe()}"
            + (f" (and {len(overdue) - 1} more)" if len(overdue) > 1 else "")
        )
    return [f"warning: {o.describe()}" for o in found]


HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def _sections(text: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current: str | None = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        heading = _heading(line, lines[i + 1] if i + 1 < len(lines) else "")
        if heading is not None:
            current = heading
            sections.setdefault(current, [])
        elif current is not None and not re.fullmatch(r"\s*(=+|-+)\s*", line):
            sections[current].append(line)
    return {name: "\n".join(body).strip() for name, body in sections.items()}


def _heading(line: str, following: str) -> str | None:
    match = HEADING.match(line)
    if match:
        return _normal(match.group(1))
    if line.strip() and re.fullmatch(r"\s*(=+|-+)\s*", following):
        return _normal(line)
    return None


def _normal(text: str) -> str:
    """Lower case, punctuation and a leading section number ("2.", "III.") dropped."""
    words = re.sub(r"[^a-z0-9 -]+", " ", text.lower()).split()
    while words and re.fullmatch(r"[0-9]+|[ivx]+", words[0]):
        words = words[1:]
    return " ".join(words)


def _matches(heading: str, section: str) -> bool:
    return any(heading.startswith(word) for word in SYNONYMS.get(section, (section,)))


def validate_postmortem(text: str, source: str = "post-mortem") -> None:
    """Raise one InputError naming every required section that is missing or empty."""
    sections = _sections(text)
    missing, empty = [], []
    for required in REQUIRED_SECTIONS:
        bodies = [body for heading, body in sections.items() if _matches(heading, required)]
        if not bodies:
            missing.append(required)
        elif not any(bodies):
            empty.append(required)
    problems = []
    if missing:
        problems.append(f"missing section(s): {', '.join(missing)}")
    if empty:
        problems.append(f"empty section(s): {', '.join(empty)}")
    if problems:
        raise InputError(
            f"{source}: {'; '.join(problems)} "
            f"(required Markdown headings: {', '.join(REQUIRED_SECTIONS)})"
        )
