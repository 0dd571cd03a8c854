"""The failure policy on fakes: rollback, pause (exit 4, resume or roll back), halt, and an
inconclusive metric gate (pause by default); a stage a firing alert blocks never starts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cd_checks.errors import RolloutError
from cd_checks.rollout import engine
from cd_checks.rollout.spec import from_section
from tests.rollout.test_engine import ALL, PRODUCTION, SECTION, STAGING, World

METRICS = {"checks": [{"name": "errors", "query": "sum(up)", "max": 1}]}


def world_with(tmp_path: Path, **section: object) -> World:
    raw = {**SECTION, "health": {"metrics": METRICS}, **section}
    return World(tmp_path, from_section(raw))


def canary_breaks(world: World) -> None:
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)  # passes staging, breaks production hosts


def test_pause_leaves_the_canary_as_it_is_and_exits_4(tmp_path: Path) -> None:
    world = world_with(tmp_path, on_failure="pause")
    canary_breaks(world)
    result = world.run("bad", ALL)
    canary = world.plan("bad").stage("canary").hosts
    assert result.exit_code == engine.EXIT_PAUSED == 4
    assert result.stopped == "paused" and result.rollback is None
    assert all(world.fleet.running[h] == "bad" for h in canary)  # not rolled back
    record = world.state.record("production")
    assert record is not None and record.status == "paused"
    assert "--resume" in result.notes[-1] and "cd-checks rollback" in result.notes[-1]
    with pytest.raises(RolloutError, match="is paused at stage canary wave 1 .*--resume"):
        world.run("bad", ["canary"])


def test_a_paused_rollout_resumes_with_the_next_wave(tmp_path: Path) -> None:
    world = world_with(tmp_path, on_failure="pause")
    world.run("good", ALL)
    world.fleet.down.add("never")  # no-op: every host healthy
    world.gate.unsure.add("new")
    paused = world.run("new", ["staging"])
    assert paused.exit_code == 4 and paused.waves[-1].gate is not None
    assert paused.waves[-1].gate.inconclusive
    world.gate.unsure.clear()
    world.applier.calls.clear()
    result = world.run("new", ["staging", "canary"], resume=True)
    assert result.ok, result.failure
    assert result.notes and "accepted by" in result.notes[0]
    # staging's only wave was accepted, not applied again; canary went on
    assert [c[2] for c in world.applier.calls] == ["canary"]
    assert world.state.record("production") is not None


def test_a_paused_rollout_can_be_rolled_back(tmp_path: Path) -> None:
    world = world_with(tmp_path, on_failure="pause")
    canary_breaks(world)
    world.run("bad", ALL)
    result = engine.rollback(world.parts, "production", holder=world.holder())
    canary = world.plan("bad").stage("canary").hosts
    assert result.ok and result.rollback is not None and result.rollback.verified
    assert all(world.fleet.running[h] == "good" for h in canary)
    assert world.state.record("production") is None


def test_an_inconclusive_metric_gate_pauses_by_default_even_with_on_failure_rollback(
    tmp_path: Path,
) -> None:
    world = world_with(tmp_path)
    world.run("good", ALL)
    world.gate.unsure.add("new")
    result = world.run("new", ALL)
    assert result.exit_code == 4 and result.stopped == "paused"
    assert result.waves[-1].stage == "staging"
    assert world.fleet.running["s1"] == "new"


def test_on_inconclusive_rollback_rolls_back(tmp_path: Path) -> None:
    world = world_with(tmp_path, on_inconclusive="rollback")
    world.run("good", ALL)
    world.gate.unsure.add("new")
    result = world.run("new", ALL)
    assert result.exit_code == 1 and result.rollback is not None and result.rollback.verified
    assert all(world.fleet.running[h] == "good" for h in STAGING)


def test_halt_attempts_no_rollback_and_a_new_revision_rolls_forward(tmp_path: Path) -> None:
    world = world_with(tmp_path, on_failure="halt")
    canary_breaks(world)
    result = world.run("bad", ALL)
    canary = world.plan("bad").stage("canary").hosts
    assert result.exit_code == 1 and result.stopped == "halted" and result.rollback is None
    assert world.fleet.received("good") == set(STAGING) | set(PRODUCTION)  # nothing re-applied
    assert all(world.fleet.running[h] == "bad" for h in canary)
    with pytest.raises(RolloutError, match="halted .*roll forward"):
        world.run("bad", ["canary"])
    fixed = world.run("fixed", ALL)
    assert fixed.ok and set(world.fleet.running.values()) == {"fixed"}


def test_the_run_policy_overrides_the_pipeline(tmp_path: Path) -> None:
    world = world_with(tmp_path, on_failure="rollback")
    canary_breaks(world)
    result = engine.run(
        world.parts, world.plan("bad"), ALL, holder=world.holder(), on_failure="halt"
    )
    assert result.stopped == "halted" and result.rollback is None


def test_a_firing_alert_keeps_a_stage_from_starting(tmp_path: Path) -> None:
    world = world_with(tmp_path)
    world.gate.blocked = "stage staging not started: alert(s) firing: HostDown"
    result = world.run("r1", ALL)
    assert result.exit_code == 1 and result.failure and "HostDown" in result.failure
    assert world.applier.calls == [] and world.state.record("staging") is None


def test_the_canary_baseline_is_the_unchanged_hosts_of_its_group(tmp_path: Path) -> None:
    world = world_with(tmp_path)
    world.run("r1", ALL)
    stages = world.plan("r1").stages
    canary = stages[1].hosts
    production = stages[2]
    baselines = dict(zip(world.gate.calls, world.gate.baselines, strict=True))
    assert set(baselines[canary]) == set(PRODUCTION) - set(canary)
    assert set(baselines[production.waves[0]]) == set(production.waves[1])
    assert baselines[production.waves[1]] == ()


def test_a_stage_can_turn_the_metric_gate_off(tmp_path: Path) -> None:
    stages = [dict(s) for s in SECTION["stages"]]  # type: ignore[call-overload]
    stages[0] = {**stages[0], "metrics": False}
    spec = from_section({**SECTION, "stages": stages, "health": {"metrics": METRICS}})
    assert not spec.metrics_of("staging").active
    assert spec.metrics_of("canary").checks[0].name == "errors"
    world = World(tmp_path, replace(spec))
    world.gate.unsure.add("new")
    result = world.run("new", ALL)
    assert result.waves[-1].stage == "canary"  # staging had no metric gate to be unsure
