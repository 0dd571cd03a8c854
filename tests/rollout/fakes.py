"""Fakes for the engine's parts: a fleet in a dict, an applier and a gate over it, a workspace."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from cd_checks.rollout.apply import ApplyResult
from cd_checks.rollout.engine import Base
from cd_checks.rollout.health import CheckResult, GateResult, HostHealth, verdict
from cd_checks.rollout.inventory import Host
from cd_checks.rollout.progress import Reporter
from cd_checks.rollout.spec import MetricsSpec
from cd_checks.rollout.state import RunRecord


@dataclass
class Fleet:
    """What each host runs, which revisions are broken and which hosts are down."""

    running: dict[str, str] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)
    down: set[str] = field(default_factory=set)
    fragile: set[str] | None = None  # hosts a bad revision breaks (None: every host)
    history: list[tuple[str, str]] = field(default_factory=list)

    def received(self, revision: str) -> set[str]:
        return {host for host, rev in self.history if rev == revision}


@dataclass
class FakeApplier:
    fleet: Fleet
    fail_revisions: set[str] = field(default_factory=set)
    calls: list[tuple[tuple[str, ...], str, str, int]] = field(default_factory=list)

    def apply(
        self, hosts: Sequence[Host], *, revision: str, stage: str, wave: int, workdir: Path
    ) -> ApplyResult:
        names = tuple(h.name for h in hosts)
        assert workdir.name == revision, "the applier runs in the worktree of its revision"
        self.calls.append((names, revision, stage, wave))
        for name in names:
            if name not in self.fleet.down:
                self.fleet.running[name] = revision
                self.fleet.history.append((name, revision))
        failed = tuple(n for n in names if n in self.fleet.down)
        if revision in self.fail_revisions:
            return ApplyResult(False, 2, ("fake",), names, "boom", 0.0)
        return ApplyResult(not failed, 4 if failed else 0, ("fake",), failed, "", 0.0)


@dataclass
class FakeGate:
    fleet: Fleet
    max_failed_percent: float = 0.0
    calls: list[tuple[str, ...]] = field(default_factory=list)

    unsure: set[str] = field(default_factory=set)  # revisions whose metric gate cannot tell
    blocked: str | None = None  # why no stage may start (a firing alert)
    baselines: list[tuple[str, ...]] = field(default_factory=list)
    failed_at: float | None = None  # when failing checks first failed (epoch)

    def check(
        self,
        hosts: Sequence[Host],
        *,
        workdir: Path,
        stage: str,
        wave: int,
        report: Reporter,
        baseline: Sequence[Host] = (),
        metrics: MetricsSpec | None = None,
    ) -> GateResult:
        self.calls.append(tuple(h.name for h in hosts))
        self.baselines.append(tuple(h.name for h in baseline))
        gate = verdict([self._host(h.name) for h in hosts], self.max_failed_percent)
        if metrics is not None and metrics.active and gate.passed and workdir.name in self.unsure:
            return replace(gate, passed=False, inconclusive=True)
        return gate

    def before_stage(self, stage: str, metrics: MetricsSpec) -> str | None:
        return self.blocked

    def _host(self, name: str) -> HostHealth:
        if name in self.fleet.down:
            return HostHealth(name, (CheckResult("http", False, "no answer"),))
        fragile = self.fleet.fragile is None or name in self.fleet.fragile
        ok = not fragile or self.fleet.running.get(name) not in self.fleet.bad
        failed_at = None if ok else self.failed_at
        check = CheckResult("http", ok, "" if ok else "status 500", failed_at=failed_at)
        return HostHealth(name, (check,))


@dataclass
class FakeWorkspace:
    root: Path

    def resolve(self, revision: str) -> str:
        return revision

    @contextmanager
    def checkout(self, revision: str) -> Iterator[Path]:
        path = self.root / revision
        path.mkdir(parents=True, exist_ok=True)
        yield path


@dataclass
class MemoryKnownGood:
    """The known-good store in a dict (the real one reads the audit trail)."""

    revisions: dict[str, str] = field(default_factory=dict)

    def get(self, environment: str) -> str | None:
        return self.revisions.get(environment)

    def set(self, environment: str, revision: str) -> None:
        self.revisions[environment] = revision


@dataclass
class FakeHistory:
    """A commit graph in a dict ({revision: first parent}); a trail with no failed runs."""

    parents: dict[str, str] = field(default_factory=dict)
    failed: dict[str, RunRecord] = field(default_factory=dict)

    def base(self, environment: str, revision: str) -> Base | None:
        parent = self.parents.get(revision)
        return Base(parent, f"the parent of {revision}") if parent else None

    def failed_run(self, environment: str) -> RunRecord | None:
        return self.failed.get(environment)
