"""Deploy markers on the real engine (fake fleet): the textfile node_exporter reads, parsed
back with prometheus_client's own parser, and every way the file can fail to be written."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cd_checks.audit.store import FileStore
from cd_checks.errors import AuditError
from cd_checks.rollout import engine
from cd_checks.rollout.markers import Markers, Observers
from cd_checks.rollout.recorder import AuditRecorder
from cd_checks.rollout.spec import from_section
from tests.rollout.fakes import FakeApplier
from tests.rollout.test_engine import ALL, PRODUCTION, SECTION, Killed, Recorder, World
from tests.rollout.test_recorder import IDENTITY, FailingStore, _kill_when, trail

STARTED = "cd_checks_stage_started_timestamp_seconds"
FINISHED = "cd_checks_stage_finished_timestamp_seconds"
RUNNING = "cd_checks_stage_running"


class Clock:
    """Unix time that moves on 10 s every time it is read."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        self.now += 10
        return self.now


def samples(path: Path, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """{sorted labels: value} of metric `name` in the file, as Prometheus reads it."""
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def series(environment: str, stage: str, revision: str, **more: str) -> tuple[tuple[str, str], ...]:
    labels = {"environment": environment, "stage": stage, "revision": revision, **more}
    return tuple(sorted(labels.items()))


def marked(tmp_path: Path, world: World) -> Markers:
    markers = Markers(tmp_path / "textfile" / "cd-checks.prom", now=Clock())
    markers.path.parent.mkdir(exist_ok=True)
    world.parts = replace(world.parts, observer=markers)
    return markers


def test_every_stage_gets_a_start_an_end_and_a_running_series(tmp_path: Path) -> None:
    world = World(tmp_path)
    markers = marked(tmp_path, world)
    assert world.run("good", ALL).ok
    assert markers.problems == []
    t0 = 1_800_000_000.0
    assert samples(markers.path, STARTED) == {
        series("staging", "staging", "good"): t0 + 10,
        series("production", "canary", "good"): t0 + 30,
        series("production", "production", "good"): t0 + 50,
    }
    assert samples(markers.path, FINISHED) == {
        series("staging", "staging", "good", outcome="succeeded"): t0 + 20,
        series("production", "canary", "good", outcome="succeeded"): t0 + 40,
        series("production", "production", "good", outcome="succeeded"): t0 + 60,
    }
    assert set(samples(markers.path, RUNNING).values()) == {0.0}
    text = markers.path.read_text()
    assert f"# TYPE {STARTED} gauge" in text and f"# TYPE {RUNNING} gauge" in text


def test_a_stage_shows_running_while_it_runs(tmp_path: Path) -> None:
    world = World(tmp_path)
    markers = marked(tmp_path, world)
    seen: list[dict[tuple[tuple[str, str], ...], float]] = []
    apply = world.applier.apply

    def looking(hosts, **where):  # type: ignore[no-untyped-def]
        seen.append(samples(markers.path, RUNNING))
        return apply(hosts, **where)

    world.applier.apply = looking  # type: ignore[method-assign]
    assert world.run("r1", ["staging"]).ok
    assert seen[0] == {series("staging", "staging", "r1"): 1.0}
    assert samples(markers.path, RUNNING) == {series("staging", "staging", "r1"): 0.0}
    assert samples(markers.path, FINISHED) == {
        series("staging", "staging", "r1", outcome="succeeded"): 1_800_000_020.0
    }


def test_a_new_revision_replaces_its_stages_series_and_keeps_the_others(tmp_path: Path) -> None:
    world = World(tmp_path)
    markers = marked(tmp_path, world)
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)  # passes staging, breaks the canary
    assert not world.run("bad", ALL).ok
    finished = samples(markers.path, FINISHED)
    assert set(finished) == {
        series("staging", "staging", "bad", outcome="succeeded"),
        series("production", "canary", "bad", outcome="rolled_back"),
        series("production", "production", "good", outcome="succeeded"),  # never started
    }
    assert [k for k in samples(markers.path, STARTED) if ("revision", "good") in k] == [
        series("production", "production", "good")
    ]


def test_other_environments_series_and_foreign_metrics_in_the_file_are_kept(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    markers = marked(tmp_path, world)
    markers.path.write_text(
        f"# HELP {STARTED} old\n# TYPE {STARTED} gauge\n"
        f'{STARTED}{{environment="eu",revision="r0",stage="eu"}} 1.7e+09\n'
        "# HELP backup_ok Set by another job.\n# TYPE backup_ok gauge\nbackup_ok 1.0\n"
    )
    assert world.run("r1", ["staging"]).ok
    assert samples(markers.path, STARTED) == {
        series("eu", "eu", "r0"): 1.7e9,
        series("staging", "staging", "r1"): 1_800_000_010.0,
    }
    assert samples(markers.path, "backup_ok") == {(): 1.0}


def test_each_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    world = World(tmp_path)
    markers = marked(tmp_path, world)
    inodes = []
    apply = world.applier.apply

    def looking(hosts, **where):  # type: ignore[no-untyped-def]
        inodes.append(markers.path.stat().st_ino)
        return apply(hosts, **where)

    world.applier.apply = looking  # type: ignore[method-assign]
    world.run("r1", ["staging"])
    assert markers.path.stat().st_ino != inodes[0]  # renamed over, not written in place
    assert os.listdir(markers.path.parent) == ["cd-checks.prom"]
    assert oct(markers.path.stat().st_mode & 0o777) == "0o644"  # node_exporter's user reads it


@pytest.mark.parametrize("where", ["missing/cd-checks.prom", "a-file/cd-checks.prom"])
def test_a_file_that_cannot_be_written_is_a_problem_not_a_failed_rollout(
    tmp_path: Path, where: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    world = World(tmp_path)
    markers = Markers(tmp_path / where, now=Clock())
    world.parts = replace(world.parts, observer=markers)
    result = world.run("r1", ALL)
    assert result.ok and set(world.fleet.running.values()) == {"r1"}
    assert len(markers.problems) == 6  # every start and end said so
    assert markers.problems[0].startswith(f"deploy markers not written to {tmp_path / where}: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_a_read_only_directory_is_a_problem(tmp_path: Path) -> None:
    world = World(tmp_path)
    markers = marked(tmp_path, world)
    markers.path.parent.chmod(0o555)
    try:
        assert world.run("r1", ["staging"]).ok
    finally:
        markers.path.parent.chmod(0o755)
    assert "Permission denied" in markers.problems[0] and not markers.path.exists()


def test_a_symlink_at_the_path_is_neither_followed_nor_replaced(tmp_path: Path) -> None:
    world = World(tmp_path)
    markers = marked(tmp_path, world)
    precious = tmp_path / "elsewhere.txt"
    precious.write_text("precious\n")
    markers.path.symlink_to(precious)
    assert world.run("r1", ["staging"]).ok
    assert precious.read_text() == "precious\n"
    assert markers.path.is_symlink() and markers.path.resolve() == precious
    assert markers.problems[0].endswith("cd-checks.prom: it is a symbolic link; not following it")
    assert os.listdir(markers.path.parent) == ["cd-checks.prom"]


def test_a_file_that_does_not_parse_is_left_as_it_is(tmp_path: Path) -> None:
    world = World(tmp_path)
    markers = marked(tmp_path, world)
    markers.path.write_text("this is { not exposition format\n")
    assert world.run("r1", ["staging"]).ok
    assert markers.path.read_text() == "this is { not exposition format\n"
    assert len(markers.problems) == 2


def test_a_paused_stage_ends_paused(tmp_path: Path) -> None:
    world = World(tmp_path, from_section({**SECTION, "on_failure": "pause"}))
    markers = marked(tmp_path, world)
    world.fleet.bad.add("bad")
    assert world.run("bad", ["staging"]).exit_code == engine.EXIT_PAUSED
    assert list(samples(markers.path, FINISHED)) == [
        series("staging", "staging", "bad", outcome="paused")
    ]


def test_a_killed_stage_ends_interrupted_when_a_rollback_takes_over(tmp_path: Path) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    path = tmp_path / "cd-checks.prom"

    def observe() -> None:  # one process: its audit recorder and its markers
        recorder = AuditRecorder(trail(store, tmp_path), IDENTITY)
        observers = Observers((recorder, Markers(path, now=Clock())))
        world.parts = replace(world.parts, observer=observers)

    observe()
    world.run("good", ALL)
    world.fleet.bad.add("bad")
    _kill_when(world, "bad", "staging")
    with pytest.raises(Killed):
        world.run("bad", ALL)
    assert samples(path, RUNNING)[series("staging", "staging", "bad")] == 1.0
    observe()
    assert engine.rollback(world.parts, "staging", holder=world.holder()).ok
    assert samples(path, RUNNING)[series("staging", "staging", "bad")] == 0.0
    finished = samples(path, FINISHED)
    assert finished[series("staging", "staging", "bad", outcome="interrupted")] == 1_800_000_020.0
    rollback = {"environment": "staging", "revision": "good"}
    assert samples(path, "cd_checks_rollback_started_timestamp_seconds") == {
        tuple(sorted(rollback.items())): 1_800_000_010.0
    }
    assert samples(path, "cd_checks_rollback_finished_timestamp_seconds") == {
        tuple(sorted({**rollback, "outcome": "succeeded"}.items())): 1_800_000_030.0
    }


def test_a_resumed_stage_shows_running_not_interrupted(tmp_path: Path) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    path = tmp_path / "cd-checks.prom"

    def observe() -> None:  # one process: its audit recorder and its markers
        recorder = AuditRecorder(trail(store, tmp_path), IDENTITY)
        observers = Observers((recorder, Markers(path, now=Clock())))
        world.parts = replace(world.parts, observer=observers)

    observe()
    world.run("good", ALL)
    _kill_when(world, "new", "production")
    with pytest.raises(Killed):
        world.run("new", ALL)
    world.applier.apply = FakeApplier.apply.__get__(world.applier)  # type: ignore[method-assign]
    seen = []
    apply = world.applier.apply

    def looking(hosts, **where):  # type: ignore[no-untyped-def]
        seen.append((samples(path, RUNNING), samples(path, FINISHED)))
        return apply(hosts, **where)

    world.applier.apply = looking  # type: ignore[method-assign]
    observe()
    assert world.run("new", ["production"], resume=True).ok
    running, finished = seen[0]
    assert running[series("production", "production", "new")] == 1.0
    assert not [k for k in finished if ("stage", "production") in k]
    assert (
        samples(path, FINISHED)[series("production", "production", "new", outcome="succeeded")]
        == 1_800_000_030.0
    )  # after the start and the takeover


def test_observers_return_the_audit_deploy_id_and_tell_markers_too(tmp_path: Path) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    markers = Markers(tmp_path / "cd-checks.prom", now=Clock())
    recorder = AuditRecorder(trail(store, tmp_path), IDENTITY)
    observers = Observers((recorder, markers))
    staging = world.plan("r1").stage("staging")
    assert observers.stage_started(staging, "r1", None, None) == store.records()[0].id
    world.parts = replace(world.parts, observer=observers)
    world.fleet.bad.add("bad")
    world.run("bad", ["staging"])
    assert store.records()[-1].outcome == "failed"
    assert list(samples(markers.path, FINISHED)) == [
        series("staging", "staging", "bad", outcome="failed")
    ]


def test_an_audit_refusal_propagates_and_writes_no_marker(tmp_path: Path) -> None:
    world = World(tmp_path)
    markers = Markers(tmp_path / "cd-checks.prom", now=Clock())
    failing = trail(FailingStore(FileStore(tmp_path / "a.jsonl"), 1), tmp_path)
    recorder = AuditRecorder(failing, IDENTITY)
    world.parts = replace(world.parts, observer=Observers((recorder, markers)))
    with pytest.raises(AuditError, match="disk full"):
        world.run("r1", ALL)
    assert world.applier.calls == [] and not markers.path.exists()


def test_observers_tell_each_observer_in_order_with_the_stop(tmp_path: Path) -> None:
    first, second = Recorder(), Recorder()
    staging = World(tmp_path).plan("r1").stage("staging")
    observers = Observers((first, second))
    assert observers.stage_started(staging, "r1", None, None) is None
    observers.stage_finished(staging, "r1", (), "gate failed", None, "halted")
    assert (
        first.calls
        == second.calls
        == [
            ("started", "staging", "r1", "None"),
            ("finished", "staging", "False", "none"),
        ]
    )
