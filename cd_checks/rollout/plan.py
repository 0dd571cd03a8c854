"""The rollout plan: inventory + spec + revision -> stages -> waves of host names.

Pure and deterministic, so a pull request can show the exact plan before
merge and every pipeline job of one revision computes the same one. Rules:
a stage takes the hosts of its group not already taken by an earlier stage
(staging hosts are never counted again in production; canary hosts are not
in later production waves); `percent` takes ceil(percent x those hosts), at
least one (10 % of 18 hosts is 2, 11.1 %), never more than floor(max_percent x
those hosts) when `max_percent` is set (a plan that would need more is an
error, not a silently bigger canary); `count` takes exactly that many;
`waves` are cumulative percentages of the stage's hosts, like Ansible's
`serial`, with an implicit last wave for whatever is left (as Argo Rollouts
promotes to 100 % after its last step). A host is in exactly
one wave. A change type's plan takes only the hosts eligible for the change
(`cd_checks.changes.eligible`); the rules are the same over those.
Rendering to text, Markdown and JSON lives here too: it is a pure function
of the plan.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cd_checks.errors import RolloutError
from cd_checks.rollout.inventory import Inventory
from cd_checks.rollout.spec import RolloutSpec, Stage

Wave = tuple[str, ...]


@dataclass(frozen=True)
class StagePlan:
    name: str
    environment: str
    group: str
    waves: tuple[Wave, ...]

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(h for wave in self.waves for h in wave)


@dataclass(frozen=True)
class Plan:
    revision: str
    stages: tuple[StagePlan, ...]

    def stage(self, name: str) -> StagePlan:
        return next(s for s in self.stages if s.name == name)

    def environment_hosts(self, environment: str) -> tuple[str, ...]:
        return tuple(h for s in self.stages if s.environment == environment for h in s.hosts)


def canary_order(hosts: Sequence[str]) -> list[str]:
    """Hosts in the order stages take them from a group.

    The order is sha256(host name) alone, not sha256(revision + host): the
    canary hosts are then the same for every revision, a fixed canary ring
    like the ones AWS and Google run. On-call knows which hosts take changes
    first, their dashboards carry the "canary" baseline, and a plan shown on
    a pull request does not move when the branch is rebased. The name breaks
    ties so the order is total.
    """
    return sorted(hosts, key=lambda h: (hashlib.sha256(h.encode("utf-8")).hexdigest(), h))


def build(
    inventory: Inventory,
    spec: RolloutSpec,
    revision: str,
    eligible: Collection[str] | None = None,
) -> Plan:
    """The plan; with `eligible` (a change type's hosts for this change) stages take only
    those hosts, and a stage's `percent` is a share of its group's eligible hosts."""
    allowed = None if eligible is None else frozenset(eligible)
    taken: set[str] = set()
    stages: list[StagePlan] = []
    for stage in spec.stages:
        free = [
            h
            for h in inventory.group(stage.group)
            if h not in taken and (allowed is None or h in allowed)
        ]
        chosen = _share(canary_order(free), stage)
        taken.update(chosen)
        waves = split_waves(chosen, stage.waves)
        stages.append(StagePlan(stage.name, stage.environment, stage.group, waves))
    return Plan(revision=revision, stages=tuple(stages))


def _share(hosts: list[str], stage: Stage) -> list[str]:
    if not hosts:
        return hosts
    if stage.count is not None:
        return hosts[: stage.count]
    size = len(hosts)
    if stage.percent is not None:
        size = max(1, math.ceil(stage.percent * len(hosts) / 100 - 1e-9))
    if stage.max_percent is not None:
        cap = math.floor(stage.max_percent * len(hosts) / 100 + 1e-9)
        if cap < 1:
            raise RolloutError(
                f"stage {stage.name}: max_percent {stage.max_percent:g}% of {len(hosts)} "
                "host(s) allows no host; raise max_percent or use `count: 1`"
            )
        size = min(size, cap)
    return hosts[:size]


def split_waves(hosts: Sequence[str], percents: Sequence[int]) -> tuple[Wave, ...]:
    """Cut `hosts` at cumulative ceil(p x n); empty waves are dropped, the rest is a last wave."""
    waves: list[Wave] = []
    done = 0
    for percent in (*percents, 100):
        end = min(len(hosts), max(done + 1, math.ceil(percent * len(hosts) / 100)))
        if end > done:
            waves.append(tuple(hosts[done:end]))
            done = end
    return tuple(waves)


def to_dict(plan: Plan) -> dict[str, object]:
    return {
        "revision": plan.revision,
        "stages": [
            {
                "name": s.name,
                "environment": s.environment,
                "group": s.group,
                "waves": [list(w) for w in s.waves],
            }
            for s in plan.stages
        ],
    }


def render_json(plan: Plan) -> str:
    return json.dumps(to_dict(plan), indent=2) + "\n"


def render_text(plan: Plan) -> str:
    lines = [f"rollout plan for {plan.revision}"]
    for stage in plan.stages:
        count = len(stage.hosts)
        lines.append(
            f"stage {stage.name} (environment {stage.environment}, group {stage.group}, "
            f"{count} host{'s' if count != 1 else ''})"
        )
        if not stage.waves:
            lines.append("  no hosts left for this stage")
        for number, wave in enumerate(stage.waves, start=1):
            lines.append(f"  wave {number}: {', '.join(wave)}")
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan) -> str:
    lines = [
        f"### Rollout plan for `{plan.revision}`",
        "",
        "| stage | environment | wave | hosts |",
        "|---|---|---|---|",
    ]
    for stage in plan.stages:
        if not stage.waves:
            lines.append(f"| {stage.name} | {stage.environment} | — | no hosts left |")
        for number, wave in enumerate(stage.waves, start=1):
            hosts = ", ".join(f"`{h}`" for h in wave)
            lines.append(f"| {stage.name} | {stage.environment} | {number} | {hosts} |")
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
