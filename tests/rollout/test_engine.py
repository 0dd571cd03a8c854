"""The rollout state machine on fakes: waves, gates, rollback, known-good, locks, resume."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cd_checks.errors import AuditError, RolloutError
from cd_checks.rollout import engine, plan
from cd_checks.rollout.inventory import Host, Inventory
from cd_checks.rollout.render import render_json, render_text
from cd_checks.rollout.spec import RolloutSpec, from_section
from cd_checks.rollout.state import LockHolder, RunRecord, StateDir
from tests.rollout.fakes import (
    FakeApplier,
    FakeGate,
    FakeHistory,
    FakeWorkspace,
    Fleet,
    MemoryKnownGood,
)

STAGING = ("s1", "s2")
PRODUCTION = tuple(f"p{i}" for i in range(1, 9))
SECTION = {
    "inventory": "hosts.yml",
    "apply": {"command": ["deploy", "{hosts}"]},
    "stages": [
        {"name": "staging", "hosts": "staging"},
        {"name": "canary", "hosts": "production", "percent": 10},
        {"name": "production", "hosts": "production", "waves": ["50%", "100%"]},
    ],
}
ALL = ["staging", "canary", "production"]


def inventory() -> Inventory:
    hosts = {n: Host(n, n) for n in STAGING + PRODUCTION}
    groups = {"staging": STAGING, "production": PRODUCTION, "all": STAGING + PRODUCTION}
    return Inventory(Path("hosts.yml"), hosts, groups)


class World:
    def __init__(self, tmp_path: Path, spec: RolloutSpec | None = None) -> None:
        self.fleet = Fleet()
        self.applier = FakeApplier(self.fleet)
        self.gate = FakeGate(self.fleet)
        self.state = StateDir(tmp_path / "state", lambda: "2026-01-01T00:00:00+00:00")
        self.known_good = MemoryKnownGood()
        self.history = FakeHistory()
        self.events: list[tuple[str, int, str, str, str]] = []
        self.parts = engine.Parts(
            inventory=inventory(),
            spec=spec or from_section(SECTION),
            applier=self.applier,
            gate=self.gate,
            workspace=FakeWorkspace(tmp_path / "trees"),
            state=self.state,
            known_good=self.known_good,
            history=self.history,
            report=lambda e: self.events.append((e.stage, e.wave, e.host, e.step, e.result)),
        )

    def plan(self, revision: str) -> plan.Plan:
        return plan.build(self.parts.inventory, self.parts.spec, revision)

    def run(self, revision: str, stages: list[str], **flags: bool) -> engine.RolloutResult:
        return engine.run(self.parts, self.plan(revision), stages, holder=self.holder(), **flags)

    def holder(self) -> LockHolder:
        return self.state.me("test")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_good_rollout_applies_every_wave_in_plan_order_and_records_known_good(
    world: World,
) -> None:
    result = world.run("r1", ALL)
    expected = [list(w) for s in world.plan("r1").stages for w in s.waves]
    assert result.ok and result.exit_code == 0
    assert [list(names) for names, *_ in world.applier.calls] == expected
    assert [list(w.hosts) for w in result.waves] == expected
    assert set(world.fleet.running.values()) == {"r1"}
    assert world.known_good.get("staging") == "r1"
    assert world.known_good.get("production") == "r1"
    assert world.state.record("production") is None


def test_a_failed_canary_rolls_back_the_canary_only_and_verifies(world: World) -> None:
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)  # passes staging, breaks production hosts
    result = world.run("bad", ALL)
    canary = world.plan("bad").stage("canary").hosts
    assert result.exit_code == 1
    assert "stage canary wave 1: health gate failed" in (result.failure or "")
    assert result.rollback is not None and result.rollback.verified
    assert result.rollback.hosts == canary and result.rollback.revision == "good"
    assert world.fleet.received("bad") == set(STAGING) | set(canary)
    assert all(world.fleet.running[h] == "good" for h in PRODUCTION)
    assert world.state.record("production") is None  # rolled back and verified: closed


def test_a_failure_in_production_rolls_back_canary_and_earlier_waves_not_later_ones(
    world: World,
) -> None:
    world.run("good", ALL)
    production = world.plan("bad").stage("production")
    world.fleet.down.add(production.waves[1][0])
    result = world.run("bad", ALL)
    canary = world.plan("bad").stage("canary").hosts
    assert result.rollback is not None
    assert set(result.rollback.hosts) == set(canary) | set(production.hosts)
    assert result.failure and "apply failed" in result.failure


def test_later_waves_are_never_touched(world: World) -> None:
    world.run("good", ALL)
    first_wave = world.plan("bad").stage("production").waves[0]
    world.fleet.bad.add("bad")
    world.gate.max_failed_percent = 100.0  # let canary pass, then fail production wave 1
    world.parts = replace(world.parts, gate=world.gate)
    world.run("bad", ["staging", "canary"])
    world.gate.max_failed_percent = 0.0
    result = world.run("bad", ["production"])
    later = set(world.plan("bad").stage("production").waves[1])
    assert result.waves[-1].hosts == first_wave
    assert not later & world.fleet.received("bad")


def test_an_applier_failure_triggers_rollback(world: World) -> None:
    world.run("good", ALL)
    world.applier.fail_revisions.add("bad")
    result = world.run("bad", ["staging"])
    assert result.exit_code == 1
    assert result.failure and "apply failed (exit 2)" in result.failure
    assert result.rollback is not None and result.rollback.verified
    assert set(result.rollback.hosts) == set(STAGING)


def test_first_rollout_failing_cannot_roll_back_and_says_so(world: World) -> None:
    world.fleet.bad.add("bad")
    result = world.run("bad", ["staging"])
    assert result.exit_code == 1
    assert result.rollback is not None and not result.rollback.verified
    assert "no known-good revision" in result.rollback.reason
    record = world.state.record("staging")
    assert record is not None and record.status == "failed"
    with pytest.raises(RolloutError, match="failed and was not rolled back"):
        world.run("next", ["staging"])


def test_rollback_command_with_to_fixes_a_failed_first_rollout(world: World) -> None:
    world.fleet.bad.add("bad")
    world.run("bad", ["staging"])
    result = engine.rollback(world.parts, "staging", holder=world.holder(), to="older")
    assert result.exit_code == 0 and result.rollback is not None and result.rollback.verified
    assert {world.fleet.running[h] for h in STAGING} == {"older"}
    assert world.state.record("staging") is None


def test_rollback_command_without_an_open_rollout_needs_to(world: World) -> None:
    world.run("good", ["staging"])
    with pytest.raises(RolloutError, match="nothing to roll back"):
        engine.rollback(world.parts, "staging", holder=world.holder())
    result = engine.rollback(
        world.parts, "staging", holder=world.holder(), to="older", all_hosts=STAGING
    )
    assert result.ok and world.known_good.get("staging") == "older"


def test_rollback_command_undoes_an_open_canary(world: World) -> None:
    world.run("good", ALL)
    world.run("new", ["staging", "canary"])
    canary = world.plan("new").stage("canary").hosts
    result = engine.rollback(world.parts, "production", holder=world.holder())
    assert result.rollback is not None and result.rollback.hosts == canary
    assert all(world.fleet.running[h] == "good" for h in canary)


def test_automatic_rollback_off_leaves_hosts_and_blocks_the_next_run(tmp_path: Path) -> None:
    world = World(tmp_path, from_section({**SECTION, "rollback": {"automatic": False}}))
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    result = world.run("bad", ["staging"])
    assert result.rollback is not None
    assert result.rollback.reason.startswith("automatic rollback is off")
    assert {world.fleet.running[h] for h in STAGING} == {"bad"}
    with pytest.raises(RolloutError, match="cd-checks rollback"):
        world.run("good", ["staging"])


def test_a_stage_needs_the_earlier_stages_to_have_passed_for_the_revision(world: World) -> None:
    with pytest.raises(RolloutError, match="needs stage staging to have passed"):
        world.run("r1", ["canary"])
    world.run("r1", ["staging"])
    with pytest.raises(RolloutError, match="needs stage canary"):
        world.run("r1", ["production"])
    world.run("r1", ["canary"])
    assert world.run("r1", ["production"]).ok
    assert world.known_good.get("production") == "r1"


def test_one_job_per_stage_keeps_the_canary_in_the_rollback_set(world: World) -> None:
    world.run("good", ALL)
    world.run("bad", ["staging"])
    world.run("bad", ["canary"])
    world.fleet.bad.add("bad")
    result = world.run("bad", ["production"])
    canary = set(world.plan("bad").stage("canary").hosts)
    assert result.rollback is not None and canary <= set(result.rollback.hosts)
    assert all(world.fleet.running[h] == "good" for h in PRODUCTION)


def test_an_interrupted_run_is_detected_and_can_be_resumed(world: World) -> None:
    world.run("good", ALL)
    production = world.plan("new").stage("production")
    world.run("new", ["staging", "canary"])
    record = world.state.record("production")
    assert record is not None
    # What a run killed after applying production wave 1 leaves behind:
    killed = replace(
        record,
        status="running",
        stage="production",
        waves=production.waves,
        waves_started=1,
        waves_applied=1,
        pid=999_999,
    ).with_applied(production.waves[0])
    world.state.save(killed)
    with pytest.raises(
        RolloutError, match="interrupted .* --resume` or undo it with `cd-checks rollback"
    ):
        world.run("new", ["production"])
    world.applier.calls.clear()
    result = world.run("new", ["production"], resume=True)
    assert result.ok
    assert [w.hosts for w in result.waves] == list(production.waves)
    assert result.waves[0].apply is None  # the applied wave is gated again, not re-applied
    assert [c[0] for c in world.applier.calls] == [production.waves[1]]
    assert world.known_good.get("production") == "new"


def test_a_wave_killed_while_applying_is_applied_again_on_resume(world: World) -> None:
    staging = world.plan("r1").stage("staging")
    world.state.save(
        RunRecord(
            "staging",
            "r1",
            "running",
            "staging",
            staging.waves,
            waves_started=1,
            applied=staging.waves[0],
            pid=999_999,
        )
    )
    result = world.run("r1", ["staging"], resume=True)
    assert result.ok and result.waves[0].apply is not None


def test_a_run_killed_mid_apply_counts_changed_hosts_apart_from_maybe_changed_ones(
    world: World,
) -> None:
    # It used to say "left 3 host(s) changed": every host of every started wave.
    production = world.plan("r1").stage("production")
    first, second = production.waves[0], production.waves[1]
    world.state.save(
        RunRecord(
            "production",
            "r1",
            "running",
            "production",
            production.waves,
            waves_started=2,
            waves_applied=1,
            applied=first + second,
            pid=999_999,
        )
    )
    with pytest.raises(RolloutError) as refused:
        world.run("r2", ["production"])
    message = str(refused.value)
    assert f"left {len(first)} host(s) changed and {len(second)} more may have been" in message
    assert f"(the apply of wave 2 was interrupted: {', '.join(second)})" in message


def test_resume_without_an_interrupted_run_is_an_error(world: World) -> None:
    with pytest.raises(RolloutError, match="nothing to resume"):
        world.run("r1", ["staging"], resume=True)


def test_a_live_lock_refuses_a_second_run(world: World) -> None:
    other = LockHolder(1, world.holder().hostname, "earlier", "cd-checks rollout run", None)
    world.state.acquire("staging", other, break_lock=False)  # pid 1 is alive
    with pytest.raises(RolloutError, match="locked by pid 1 .*--break-lock"):
        world.run("r1", ["staging"])
    assert world.run("r1", ["staging"], break_lock=True).ok
    assert world.state.holder("staging") is None


def test_progress_is_reported_per_host_and_step(world: World) -> None:
    world.run("r1", ["staging"])
    assert ("staging", 1, "s1", "apply", "ok") in world.events
    assert ("staging", 1, "*", "gate", "start") in world.events


def test_a_host_gone_from_the_inventory_is_never_reported_as_rolled_back(world: World) -> None:
    world.run("good", ALL)
    world.run("new", ["staging", "canary"])
    canary = world.plan("new").stage("canary").hosts
    record = world.state.record("production")
    assert record is not None
    world.state.save(record.with_applied(("retired-host",)))
    result = engine.rollback(world.parts, "production", holder=world.holder())
    assert result.exit_code == 1 and result.rollback is not None
    assert not result.rollback.verified
    assert result.rollback.reason == "not in the inventory any more: retired-host"
    assert all(world.fleet.running[h] == "good" for h in canary)


class Recorder(engine.NoObserver):
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.calls: list[tuple[str, ...]] = []
        self.stopped: list[str | None] = []

    def stage_started(
        self, stage: plan.StagePlan, revision: str, known_good: str | None, base: str | None
    ) -> None:
        if self.refuse:
            raise AuditError("cannot write the audit record")
        self.calls.append(("started", stage.name, revision, str(known_good)))

    def stage_finished(
        self,
        stage: plan.StagePlan,
        revision: str,
        waves: tuple[engine.WaveResult, ...],
        failure: str | None,
        rollback: engine.RollbackResult | None,
        stopped: str | None = None,
    ) -> None:
        verified = "none" if rollback is None else str(rollback.verified)
        self.calls.append(("finished", stage.name, str(failure is None), verified))
        self.stopped.append(stopped)


def test_the_observer_hears_every_stage_with_its_outcome_and_rollback(world: World) -> None:
    world.run("good", ALL)
    recorder = Recorder()
    world.parts = replace(world.parts, observer=recorder)
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)
    world.run("bad", ALL)
    assert recorder.calls == [
        ("started", "staging", "bad", "good"),
        ("finished", "staging", "True", "none"),
        ("started", "canary", "bad", "good"),
        ("finished", "canary", "False", "True"),
    ]


def test_an_observer_that_refuses_stops_the_stage_before_any_host_is_touched(
    world: World,
) -> None:
    world.parts = replace(world.parts, observer=Recorder(refuse=True))
    with pytest.raises(AuditError):
        world.run("r1", ALL)
    assert world.applier.calls == []
    assert world.state.record("staging") is None
    assert world.state.holder("staging") is None


def test_break_glass_goes_past_a_failed_gate_without_rollback(world: World) -> None:
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)
    result = world.run("bad", ALL, override_gates=True)
    assert result.ok and result.rollback is None
    assert not all(w.ok for w in result.waves)
    assert {w.stage for w in result.waves} == {"staging", "canary", "production"}
    assert set(world.fleet.running.values()) == {"bad"}
    assert any("break-glass: the health gate of stage canary wave 1" in n for n in result.notes)
    assert world.state.record("production") is None


def test_break_glass_past_a_failed_gate_is_forced_exit_5_and_never_known_good(
    world: World,
) -> None:
    world.run("good", ALL)
    recorder = Recorder()
    world.parts = replace(world.parts, observer=recorder)
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)
    result = world.run("bad", ALL, override_gates=True)
    assert result.exit_code == engine.EXIT_FORCED == 5
    assert set(result.forced) == set(PRODUCTION)
    # staging's gate passed: it finished as it does without break-glass
    assert recorder.stopped == [None, "forced", "forced"]
    assert world.known_good.get("production") == "good"
    assert "rollout completed under BREAK-GLASS with FAILED health gates" in render_text(result)
    assert json.loads(render_json(result))["exit_code"] == 5


def test_hosts_failing_within_max_failed_percent_are_named_not_hidden(world: World) -> None:
    world.run("good", ALL)
    world.gate.max_failed_percent = 50.0
    world.fleet.bad.add("bad")
    world.fleet.fragile = {PRODUCTION[-1]}
    result = world.run("bad", ALL)
    assert result.ok and result.exit_code == 0
    assert result.unhealthy == (PRODUCTION[-1],) and result.forced == ()
    text = render_text(result)
    left = f"rollout succeeded with 1 unhealthy host(s) left on the new revision: {PRODUCTION[-1]}"
    assert left in text
    assert json.loads(render_json(result))["unhealthy_hosts"] == [PRODUCTION[-1]]


def test_break_glass_still_stops_and_rolls_back_when_the_applier_fails(world: World) -> None:
    world.run("good", ALL)
    world.applier.fail_revisions.add("bad")
    result = world.run("bad", ALL, override_gates=True)
    assert not result.ok and "apply failed" in (result.failure or "")
    assert result.rollback is not None and result.rollback.verified
    assert [w.stage for w in result.waves] == ["staging"]


class Killed(BaseException):
    """What SIGKILL does to a run: it stops mid-step, without any cleanup."""


def test_a_run_killed_during_its_automatic_rollback_cannot_be_resumed_into_known_good(
    world: World,
) -> None:
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    apply = world.applier.apply

    def killed_after_rollback_apply(hosts, *, revision, stage, wave, workdir):  # type: ignore[no-untyped-def]
        result = apply(hosts, revision=revision, stage=stage, wave=wave, workdir=workdir)
        if revision == "good":
            raise Killed
        return result

    world.applier.apply = killed_after_rollback_apply  # type: ignore[method-assign]
    with pytest.raises(Killed):
        world.run("bad", ALL)
    record = world.state.record("staging")
    assert record is not None and record.status == "rolling_back"
    assert record.target == "good" and "stage staging wave 1" in (record.failure or "")
    world.applier.apply = apply  # type: ignore[method-assign]
    world.state.release("staging", world.holder())
    with pytest.raises(RolloutError, match="cannot be resumed: .*`cd-checks rollback`"):
        world.run("bad", ALL, resume=True)
    with pytest.raises(RolloutError, match="killed while rolling back"):
        world.run("bad", ALL)
    assert world.known_good.get("staging") == "good"
    assert not world.fleet.received("bad") & set(PRODUCTION)
    result = engine.rollback(world.parts, "staging", holder=world.holder())
    assert result.ok and result.rollback is not None and result.rollback.revision == "good"
    assert world.state.record("staging") is None
    assert world.known_good.get("staging") == "good"


def test_a_finished_or_rolled_back_environment_leaves_a_closed_marker_not_no_file(
    world: World, tmp_path: Path
) -> None:
    world.run("good", ALL)
    assert world.state.closed("staging") == "done" and world.state.closed("production") == "done"
    world.run("bad", ["staging", "canary"])
    assert world.state.record("production") is not None  # open between the CI jobs
    world.fleet.bad.add("bad")
    result = world.run("bad", ["production"])
    assert result.rollback is not None and result.rollback.verified
    marker = tmp_path / "state" / "production" / "rollout.json"
    assert marker.is_file() and world.state.closed("production") == "rolled_back"
    assert world.state.record("production") is None
    with pytest.raises(
        RolloutError, match=r"nothing to roll back: .*\(its last rollout is rolled back\)"
    ):
        engine.rollback(world.parts, "production", holder=world.holder())


def test_a_failed_first_rollout_rolls_back_to_the_deploys_base_revision(world: World) -> None:
    world.history.parents["bad"] = "before"
    world.fleet.running.update({h: "before" for h in STAGING})
    world.fleet.bad.add("bad")
    result = world.run("bad", ["staging"])
    assert result.exit_code == 1 and "stage staging wave 1: health gate failed" in (
        result.failure or ""
    )
    assert result.rollback is not None and result.rollback.verified
    assert result.rollback.revision == "before" and set(result.rollback.hosts) == set(STAGING)
    said = "no known-good revision yet: rolling back to the deploy's base revision before"
    assert result.notes == (f"{said} (the parent of bad)",)
    assert ("staging", 0, "*", "rollback", "info") in world.events
    assert {world.fleet.running[h] for h in STAGING} == {"before"}
    assert world.state.closed("staging") == "rolled_back"
    assert world.known_good.get("staging") is None  # only a verified rollout makes known-good


def test_the_base_revision_is_recorded_before_any_host_is_touched(world: World) -> None:
    world.history.parents["r1"] = "r0"
    seen: list[str | None] = []
    apply = world.applier.apply

    def recording(hosts, *, revision, stage, wave, workdir):  # type: ignore[no-untyped-def]
        record = world.state.record("staging")
        seen.append(record.base if record is not None else "no record")
        return apply(hosts, revision=revision, stage=stage, wave=wave, workdir=workdir)

    world.applier.apply = recording  # type: ignore[method-assign]
    heard: list[str | None] = []

    class Observer(engine.NoObserver):
        def stage_started(
            self, stage: plan.StagePlan, revision: str, known_good: str | None, base: str | None
        ) -> None:
            heard.append(base)

    world.parts = replace(world.parts, observer=Observer())
    assert world.run("r1", ["staging"]).ok
    assert seen == ["r0"] and heard == ["r0"]


def test_a_root_commit_without_known_good_is_not_rolled_back_and_needs_to(world: World) -> None:
    world.fleet.bad.add("bad")
    result = world.run("bad", ["staging"])
    assert result.rollback is not None and result.rollback.apply is None
    assert "no base revision: bad is a root commit (it has no parent)" in result.rollback.reason
    assert "`cd-checks rollback --to REV`" in result.rollback.reason
    with pytest.raises(
        RolloutError,
        match="no known-good revision yet and the rollout of bad has no base revision to go back "
        r"to: bad is a root commit \(it has no parent\); pass --to REV",
    ):
        engine.rollback(world.parts, "staging", holder=world.holder())
    assert {world.fleet.running[h] for h in STAGING} == {"bad"}


def test_rollback_command_after_a_failed_first_rollout_uses_the_base_revision(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, from_section({**SECTION, "rollback": {"automatic": False}}))
    world.history.parents["bad"] = "before"
    world.fleet.bad.add("bad")
    failed = world.run("bad", ["staging"])
    assert failed.rollback is not None and failed.rollback.apply is None
    assert failed.rollback.revision == "before"  # what `cd-checks rollback` will use
    result = engine.rollback(world.parts, "staging", holder=world.holder())
    assert result.exit_code == 0 and result.rollback is not None and result.rollback.verified
    assert result.rollback.revision == "before"
    assert result.notes == (
        "no known-good revision yet: rolling back to the deploy's base revision before "
        "(the parent of bad)",
    )
    assert {world.fleet.running[h] for h in STAGING} == {"before"}


def test_an_open_rollouts_base_carries_over_to_the_next_revision(world: World) -> None:
    world.history.parents.update({"r1": "r0", "r2": "r1"})
    world.run("r1", ["staging", "canary"])  # production is open: canary hosts run r1
    world.run("r2", ["staging", "canary"])
    record = world.state.record("production")
    assert record is not None and record.revision == "r2"
    assert (record.base, record.base_reason) == ("r0", "the parent of r1")
    world.fleet.bad.add("r2")
    result = world.run("r2", ["production"])
    assert result.rollback is not None and result.rollback.revision == "r0"


def test_without_a_state_directory_the_rollback_undoes_the_failed_run_of_the_trail(
    world: World,
) -> None:
    world.fleet.running.update({h: "bad" for h in STAGING})
    world.history.failed["staging"] = RunRecord(
        "staging",
        "bad",
        "failed",
        "staging",
        (STAGING,),
        applied=STAGING,
        base="before",
        base_reason="the parent of bad",
    )
    result = engine.rollback(world.parts, "staging", holder=world.holder())
    assert result.ok and result.rollback is not None and set(result.rollback.hosts) == set(STAGING)
    assert "rolling back to the deploy's base revision before" in result.notes[0]
    assert {world.fleet.running[h] for h in STAGING} == {"before"}
    assert world.state.closed("staging") == "rolled_back"


def test_known_good_wins_over_the_base_revision_and_says_so(world: World) -> None:
    world.history.parents["bad"] = "parent-of-bad"
    world.run("good", ["staging"])
    world.fleet.bad.add("bad")
    result = world.run("bad", ["staging"])
    assert result.rollback is not None and result.rollback.revision == "good"
    assert result.notes == (
        "rolling back to the last known-good revision good of environment staging",
    )


def test_time_to_restore_counts_from_the_first_failed_check_and_exposure_from_the_apply(
    world: World,
) -> None:
    # detected_at used to be stamped after the failing gate had finished retrying.
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)
    first_failure = datetime(2025, 12, 31, 23, 59, 30, tzinfo=timezone.utc)
    world.gate.failed_at = first_failure.timestamp()
    result = world.run("bad", ALL)
    assert result.rollback is not None and result.rollback.verified
    assert result.rollback.detected_at == "2025-12-31T23:59:30Z"
    assert result.rollback.exposed_at == "2026-01-01T00:00:00+00:00"  # the canary's apply


def test_a_production_failure_leaves_staging_known_good_on_what_staging_passed(
    world: World,
) -> None:
    # Known-good is per environment: staging passed "bad", production rejected it.
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)
    result = world.run("bad", ALL)
    assert not result.ok and result.environment == "production"
    assert world.known_good.get("staging") == "bad"
    assert world.known_good.get("production") == "good"
