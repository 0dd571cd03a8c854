"""The audit recorder on the real engine and a real file trail (fake fleet): what it writes,
and what happens when the trail cannot be written."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cd_checks.audit.identity import Git, Identity, git_runner
from cd_checks.audit.record import AuditRecord
from cd_checks.audit.store import FileStore
from cd_checks.audit.trail import AuditKnownGood, AuditTrail, BreakGlass
from cd_checks.errors import AuditError
from cd_checks.rollout import engine
from cd_checks.rollout.recorder import AuditRecorder, TrailHistory, first_parent
from cd_checks.rollout.render import render_markdown
from cd_checks.rollout.spec import from_section
from tests.conftest import git, init_repo
from tests.rollout.fakes import FakeApplier
from tests.rollout.test_engine import ALL, PRODUCTION, SECTION, STAGING, Killed, World

IDENTITY = Identity(actor="ci-bot", source="github")


@dataclass
class FailingStore:
    """A file store whose appends fail from the `fail_from`-th one on."""

    inner: FileStore
    fail_from: int
    appended: int = 0

    def append(self, record: AuditRecord) -> AuditRecord:
        self.appended += 1
        if self.appended >= self.fail_from:
            raise AuditError(f"{self.inner.path}: disk full")
        return self.inner.append(record)

    def records(self) -> list[AuditRecord]:
        return self.inner.records()

    def describe(self) -> str:
        return self.inner.describe()


def trail(store: FileStore | FailingStore, tmp_path: Path) -> AuditTrail:
    def now() -> datetime:
        return datetime(2026, 1, 1, tzinfo=timezone.utc)

    return AuditTrail(store, tmp_path, now, git=lambda args: None)  # type: ignore[arg-type]


def audited(
    world: World, audit: AuditTrail, break_glass: BreakGlass | None = None
) -> AuditRecorder:
    recorder = AuditRecorder(audit, IDENTITY, break_glass)
    final = {"staging": "staging", "production": "production"}
    world.parts = replace(
        world.parts, observer=recorder, known_good=AuditKnownGood(audit.store, final)
    )
    return recorder


def test_each_stage_gets_a_start_and_a_final_record_and_known_good_comes_from_them(
    tmp_path: Path,
) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    audited(world, trail(store, tmp_path))
    assert world.run("good", ALL).ok
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)
    result = world.run("bad", ALL)
    records = store.records()
    assert [(r.stage, r.outcome) for r in records] == [
        ("staging", "started"),
        ("staging", "succeeded"),
        ("canary", "started"),
        ("canary", "succeeded"),
        ("production", "started"),
        ("production", "succeeded"),
        ("staging", "started"),
        ("staging", "succeeded"),
        ("canary", "started"),
        ("canary", "rolled_back"),
    ]
    canary = records[-1]
    assert canary.refs == (records[-2].id,) and canary.revision_from == "good"
    assert canary.rollback["target"] == "good" and canary.rollback["verified"] is True
    assert [(g["wave"], g["passed"]) for g in canary.gates] == [(1, False), (0, True)]
    assert canary.detail["failure"] == result.failure
    assert canary.actor == "ci-bot"
    assert world.parts.known_good.get("production") == "good"


def test_a_start_record_that_cannot_be_written_touches_no_host(tmp_path: Path) -> None:
    world = World(tmp_path)
    audited(world, trail(FailingStore(FileStore(tmp_path / "a.jsonl"), 1), tmp_path))
    with pytest.raises(AuditError, match="disk full"):
        world.run("r1", ALL)
    assert world.applier.calls == [] and world.state.holder("staging") is None


def test_a_lost_final_record_is_kept_and_stops_the_next_stage(tmp_path: Path) -> None:
    world = World(tmp_path)
    recorder = audited(world, trail(FailingStore(FileStore(tmp_path / "a.jsonl"), 2), tmp_path))
    with pytest.raises(AuditError, match="not starting stage canary"):
        world.run("r1", ALL)
    assert len(recorder.final_errors) == 1 and "started only" in recorder.final_errors[0]
    assert {h for names, *_ in world.applier.calls for h in names} == set(STAGING)
    assert recorder.runs[0].outcome == "final record NOT written"


def test_break_glass_marks_every_stage_and_owes_one_post_mortem_per_environment(
    tmp_path: Path,
) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    audited(world, trail(store, tmp_path))
    world.run("good", ALL)
    audited(world, trail(store, tmp_path), BreakGlass("outage", "INC-1"))
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(PRODUCTION)
    result = world.run("bad", ALL, override_gates=True)
    assert result.ok
    records = store.records()[6:]
    starts = [r for r in records if r.kind == "stage" and r.outcome == "started"]
    assert all(r.break_glass and r.break_glass["ticket"] == "INC-1" for r in starts)
    uses = [r for r in records if r.kind == "break_glass"]
    assert [u.environment for u in uses] == ["staging", "production"]
    assert starts[1].break_glass["run"] == starts[0].id
    assert world.parts.known_good.get("production") == "good"  # gates failed: not known-good
    summary = render_markdown(result, [(starts[0].id, "staging", "succeeded")])
    assert summary.startswith("### Rollout of `bad`: succeeded")
    assert "| canary | 1 |" in summary and "gate FAILED" in summary
    assert f"`{starts[0].id}` (staging: succeeded)" in summary


def test_no_observer_is_the_default(tmp_path: Path) -> None:
    assert isinstance(World(tmp_path).parts.observer, engine.NoObserver)


def _kill_when(world: World, revision: str, stage: str) -> None:
    apply = world.applier.apply

    def killed(hosts, *, revision: str, stage: str, wave: int, workdir: Path):  # type: ignore[no-untyped-def]
        result = apply(hosts, revision=revision, stage=stage, wave=wave, workdir=workdir)
        if (revision, stage) == (revision_killed, stage_killed):
            raise Killed
        return result

    revision_killed, stage_killed = revision, stage
    world.applier.apply = killed  # type: ignore[method-assign]


def test_a_killed_stage_is_closed_as_interrupted_by_the_run_that_resumes_it(
    tmp_path: Path,
) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    audited(world, trail(store, tmp_path))
    assert world.run("good", ALL).ok
    _kill_when(world, "new", "production")
    with pytest.raises(Killed):
        world.run("new", ALL)
    killed = store.records()[-1]
    assert (killed.stage, killed.outcome) == ("production", "started")
    record = world.state.record("production")
    assert record is not None and record.audit_id == killed.id
    world.applier.apply = FakeApplier.apply.__get__(world.applier)  # type: ignore[method-assign]
    recorder = audited(world, trail(store, tmp_path))
    assert world.run("new", ["production"], resume=True).ok
    records = store.records()
    later = records[records.index(killed) + 1 :]
    resumed = next(r for r in later if r.outcome == "started")
    closed = [r for r in records if r.refs[:1] == (killed.id,)]
    assert [(r.outcome, r.refs) for r in closed] == [("interrupted", (killed.id, resumed.id))]
    assert [w.outcome for w in recorder.runs] == ["succeeded", "interrupted"]
    assert world.state.record("production") is None


def test_a_run_killed_while_rolling_back_is_closed_by_the_rollback_command(
    tmp_path: Path,
) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    audited(world, trail(store, tmp_path))
    assert world.run("good", ALL).ok
    world.fleet.bad.add("bad")
    _kill_when(world, "good", "staging")
    with pytest.raises(Killed):
        world.run("bad", ALL)
    killed = store.records()[-1]
    assert (killed.stage, killed.outcome) == ("staging", "started")
    world.applier.apply = FakeApplier.apply.__get__(world.applier)  # type: ignore[method-assign]
    audited(world, trail(store, tmp_path))
    result = engine.rollback(world.parts, "staging", holder=world.holder())
    assert result.ok
    records = store.records()
    rollback_start = next(r for r in records if r.kind == "rollback" and r.outcome == "started")
    closed = next(r for r in records if r.refs[:1] == (killed.id,))
    assert (closed.outcome, closed.refs) == ("interrupted", (killed.id, rollback_start.id))
    assert records[-1].kind == "rollback" and records[-1].outcome == "succeeded"


def test_a_failed_stage_is_not_closed_twice_by_a_later_rollback(tmp_path: Path) -> None:
    spec = from_section({**SECTION, "rollback": {"automatic": False}})
    world, store = World(tmp_path, spec), FileStore(tmp_path / "audit.jsonl")
    audited(world, trail(store, tmp_path))
    assert world.run("good", ALL).ok
    world.fleet.bad.add("bad")
    assert not world.run("bad", ALL).ok
    record = world.state.record("staging")
    assert record is not None and record.status == "failed" and record.audit_id is None
    assert engine.rollback(world.parts, "staging", holder=world.holder()).ok
    assert not [r for r in store.records() if r.outcome == "interrupted"]


def test_a_break_glass_run_that_failed_a_gate_in_any_stage_is_never_known_good(
    tmp_path: Path,
) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    audited(world, trail(store, tmp_path))
    assert world.run("good", ALL).ok
    audited(world, trail(store, tmp_path), BreakGlass("outage", "INC-1"))
    world.fleet.bad.add("bad")
    world.fleet.fragile = set(STAGING)  # fails staging's gate only; production passes
    assert world.run("bad", ALL, override_gates=True).ok
    production = [r for r in store.records() if r.stage == "production" and r.finished]
    assert production[-1].outcome == "succeeded" and production[-1].revision_to == "bad"
    assert all(g["passed"] for g in production[-1].gates)
    assert world.parts.known_good.get("production") == "good"
    assert world.parts.known_good.get("staging") == "good"


def commits(parents: dict[str, str]) -> Git:
    """`git cat-file` over a commit graph in a dict ({revision: first parent})."""

    def git(args: list[str]) -> str | None:
        if args[:2] == ["cat-file", "commit"]:
            parent = parents.get(args[-1])
            head = f"tree 4b825dc\n{f'parent {parent}' + chr(10) if parent else ''}author A"
            return f"{head}\n\nsubject\n\nparent of nothing: the body is not the header"
        return "" if args[:2] == ["cat-file", "-e"] else None

    return git


def remembered(world: World, audit: AuditTrail, parents: dict[str, str]) -> AuditRecorder:
    recorder = audited(world, audit)
    world.parts = replace(world.parts, history=TrailHistory(audit, commits(parents)))
    return recorder


def test_a_fresh_job_rolls_a_failed_first_rollout_back_to_the_base_its_start_record_names(
    tmp_path: Path,
) -> None:
    spec = from_section({**SECTION, "rollback": {"automatic": False}})
    world, store = World(tmp_path, spec), FileStore(tmp_path / "audit.jsonl")
    remembered(world, trail(store, tmp_path), {"bad": "before"})
    world.fleet.bad.add("bad")
    assert not world.run("bad", ["staging"]).ok
    start, final = store.records()
    assert (start.outcome, start.base_revision) == ("started", "before")
    assert (final.outcome, final.base_revision) == ("failed", "before")
    # A rollback job in a fresh checkout: no state directory, the same trail.
    fresh = World(tmp_path / "fresh", spec)
    remembered(fresh, trail(store, tmp_path), {"bad": "before"})
    result = engine.rollback(fresh.parts, "staging", holder=fresh.holder())
    assert result.ok and result.rollback is not None and result.rollback.revision == "before"
    assert set(result.rollback.hosts) == set(STAGING)
    said = "no known-good revision yet: rolling back to the deploy's base revision before"
    assert result.notes == (f"{said} (the parent of bad)",)
    assert {fresh.fleet.running[h] for h in STAGING} == {"before"}
    rollback = store.records()[-1]
    assert (rollback.kind, rollback.outcome, rollback.revision_to) == (
        "rollback",
        "succeeded",
        "before",
    )
    assert rollback.rollback["reason"] == f"{said} (the parent of bad)"


def test_after_a_first_rollout_went_back_to_its_base_the_next_one_falls_back_there_too(
    tmp_path: Path,
) -> None:
    world, store = World(tmp_path), FileStore(tmp_path / "audit.jsonl")
    remembered(world, trail(store, tmp_path), {"r1": "r0", "r2": "r1"})
    world.fleet.bad.update({"r1", "r2"})
    first = world.run("r1", ["staging"])
    assert first.rollback is not None and first.rollback.revision == "r0"
    assert first.rollback.verified
    second = world.run("r2", ["staging"])  # r2's parent r1 is the broken one: not that
    assert second.rollback is not None and second.rollback.revision == "r0"
    assert second.rollback.verified
    assert store.records()[-2].base_revision == "r0"
    first_id = store.records()[0].id
    assert second.notes == (
        "no known-good revision yet: rolling back to the deploy's base revision r0 "
        f"(environment staging was rolled back to it by deploy {first_id})",
    )


def test_the_first_parent_comes_from_git_and_a_shallow_clone_is_told_to_fetch_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "source").mkdir()
    source = init_repo(tmp_path / "source")
    root = git(source, "rev-parse", "HEAD").strip()
    git(source, "commit", "-q", "--allow-empty", "-m", "change")
    head = git(source, "rev-parse", "HEAD").strip()
    assert first_parent(git_runner(source), head) == engine.Base(root, f"the parent of {head[:12]}")
    assert first_parent(git_runner(source), root) is None  # a root commit
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{source}", str(shallow))
    base = first_parent(git_runner(shallow), head)
    assert base is not None and base.revision == root
    assert base.reason.endswith("not in this clone: fetch the full history (fetch-depth: 0)")
