"""Deploy markers for dashboards: an engine `Observer` that writes a node_exporter textfile.

`Markers` writes, at every stage start and end and at every on-demand rollback,
the deploy-marker gauges of `cd_checks.metrics.MARKERS` (the names and labels
`cd-checks metrics --format prometheus` reads from the audit trail) to the file
`rollout.markers` names, for node_exporter's textfile collector. The file holds
one series per environment and stage (the latest revision) and one rollback per
environment; every other series in it is read back and kept. Each write goes to
a new file in the same directory, renamed over the old one, since the collector
may read at any moment. A symbolic link at the path is never followed nor
replaced, and nothing is written outside the path's directory. A marker that
cannot be written never stops or fails a rollout: the reason is kept in
`problems`, which the CLI prints as a warning. This module does no printing.

`Observers` tells several observers the same thing, in order: the audit recorder
goes first, so its deploy id and its refusal to start (AuditError) stay what the
engine sees.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from cd_checks.metrics import (
    MARKERS,
    ROLLBACK_FINISHED,
    ROLLBACK_STARTED,
    STAGE_FINISHED,
    STAGE_RUNNING,
    STAGE_STARTED,
)
from cd_checks.rollout.engine import Observer, RollbackResult, WaveResult
from cd_checks.rollout.plan import StagePlan
from cd_checks.rollout.recorder import stage_outcome

# A marker file is a few lines per stage; anything this big is not ours to rewrite.
MAX_BYTES = 1 << 20
STAGE_METRICS = (STAGE_STARTED, STAGE_FINISHED, STAGE_RUNNING)
ROLLBACK_METRICS = (ROLLBACK_STARTED, ROLLBACK_FINISHED)
Series = dict[str, list[tuple[dict[str, str], float]]]  # metric name -> (labels, value)


class MarkerError(Exception):
    """Why the marker file was left as it is (kept in `Markers.problems`, never raised out)."""


@dataclass
class Markers:
    """The deploy-marker `Observer`: one textfile, updated at every start and end."""

    path: Path
    now: Callable[[], float] = time.time
    problems: list[str] = field(default_factory=list)
    _running: set[tuple[str, str]] = field(default_factory=set)  # (environment, stage)
    _rollback: str | None = None  # the target of the on-demand rollback under way

    def stage_started(
        self, stage: StagePlan, revision: str, known_good: str | None, base: str | None
    ) -> None:
        self._running.add((stage.environment, stage.name))
        labels = {"environment": stage.environment, "stage": stage.name, "revision": revision}
        moment = self.now()

        def edit(series: Series) -> None:
            _drop(series, STAGE_METRICS, environment=stage.environment, stage=stage.name)
            series[STAGE_STARTED].append((labels, moment))
            series[STAGE_RUNNING].append((labels, 1.0))

        self._update(edit)

    def stage_finished(
        self,
        stage: StagePlan,
        revision: str,
        waves: tuple[WaveResult, ...],
        failure: str | None,
        rollback: RollbackResult | None,
        stopped: str | None = None,
    ) -> None:
        self._running.discard((stage.environment, stage.name))
        outcome = stopped or stage_outcome(failure, rollback)
        labels = {"environment": stage.environment, "stage": stage.name, "revision": revision}
        moment = self.now()
        self._update(lambda series: _finish(series, labels, outcome, moment))

    def rollback_started(
        self, environment: str, hosts: tuple[str, ...], target: str, current: str | None
    ) -> None:
        self._rollback = target
        labels = {"environment": environment, "revision": target}
        moment = self.now()

        def edit(series: Series) -> None:
            _drop(series, ROLLBACK_METRICS, environment=environment)
            series[ROLLBACK_STARTED].append((labels, moment))

        self._update(edit)

    def rollback_finished(self, environment: str, result: RollbackResult) -> None:
        revision = result.revision or self._rollback or ""
        outcome = "succeeded" if result.verified else "rollback_failed"
        labels = {"environment": environment, "revision": revision, "outcome": outcome}
        moment = self.now()

        def edit(series: Series) -> None:
            _drop(series, (ROLLBACK_FINISHED,), environment=environment)
            series[ROLLBACK_FINISHED].append((labels, moment))

        self._update(edit)

    def run_interrupted(self, environment: str, deploy_id: str, by: str | None) -> None:
        """A killed run's stage still shows running: it ended `interrupted` (as in the trail)."""
        moment = self.now()
        ours = {stage for env, stage in self._running if env == environment}

        def edit(series: Series) -> None:
            for labels, value in list(series[STAGE_RUNNING]):
                mine = labels.get("environment") == environment and labels.get("stage") not in ours
                if mine and value == 1.0:
                    _finish(series, labels, "interrupted", moment)

        self._update(edit)

    def _update(self, edit: Callable[[Series], None]) -> None:
        try:
            with _locked(self.path.parent):
                series, others = _read(self.path)
                edit(series)
                _write(self.path, series, others)
        # Deploy markers serve dashboards: no failure of theirs may stop or fail a rollout
        # half-way (the engine does not expect an observer to raise after a stage started).
        except Exception as exc:  # noqa: BLE001 - see above
            self.problems.append(f"deploy markers not written to {self.path}: {_text(exc)}")


def _finish(series: Series, labels: dict[str, str], outcome: str, moment: float) -> None:
    where = {"environment": labels["environment"], "stage": labels["stage"]}
    _drop(series, (STAGE_FINISHED, STAGE_RUNNING), **where)
    series[STAGE_FINISHED].append(({**labels, "outcome": outcome}, moment))
    series[STAGE_RUNNING].append((dict(labels), 0.0))


def _drop(series: Series, names: Sequence[str], **match: str) -> None:
    """Remove the series of `names` whose labels have all the values of `match`."""
    for name in names:
        series[name] = [
            (labels, value)
            for labels, value in series[name]
            if any(labels.get(key) != want for key, want in match.items())
        ]


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the directory's lock: two rollouts (two environments) must not lose each
    other's series between read and rename. A lock on the directory leaves no file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> tuple[Series, list[Metric]]:
    """The file's deploy-marker series, and its other families as they are."""
    series: Series = {name: [] for name in MARKERS}
    others: list[Metric] = []
    for family in text_string_to_metric_families(_read_text(path)):
        if family.name not in series:
            others.append(family)
            continue
        series[family.name] += [
            (dict(s.labels), float(s.value)) for s in family.samples if s.name == family.name
        ]
    return series, others


def _read_text(path: Path) -> str:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MarkerError("it is a symbolic link; not following it") from exc
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise MarkerError("it is not a regular file")
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise MarkerError(f"it is over {MAX_BYTES} bytes: not a marker file")
    return data.decode("utf-8")


def _write(path: Path, series: Series, others: Sequence[Metric]) -> None:
    """Write a new file beside `path` and rename it over `path` (node_exporter reads
    whole files only). mkstemp, not write_to_textfile: its temporary name is
    predictable, and a link planted there would be followed."""
    text = generate_latest(_Families((*_families(series), *others)))
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(text)
            os.fchmod(file.fileno(), 0o644)  # node_exporter reads it as its own user
            file.flush()
            os.fsync(file.fileno())
        if path.is_symlink():
            raise MarkerError("it is a symbolic link; not replacing it")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _families(series: Series) -> Iterator[Metric]:
    for name, text in MARKERS.items():
        if not series[name]:
            continue
        family = GaugeMetricFamily(name, text)
        for labels, value in sorted(series[name], key=lambda s: sorted(s[0].items())):
            family.add_sample(name, labels, value)
        yield family


@dataclass(frozen=True)
class _Families:
    """The collector `generate_latest` reads: the families to write."""

    families: tuple[Metric, ...]

    def collect(self) -> Iterable[Metric]:
        return self.families


def _text(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class Observers:
    """Several observers told the same thing in order; the first one's deploy id counts.

    An exception from one (the audit recorder's AuditError at a start) propagates
    before the next is told: no marker for a stage that did not start."""

    observers: tuple[Observer, ...]

    def stage_started(
        self, stage: StagePlan, revision: str, known_good: str | None, base: str | None
    ) -> str | None:
        ids = [o.stage_started(stage, revision, known_good, base) for o in self.observers]
        return ids[0] if ids else None

    def stage_finished(
        self,
        stage: StagePlan,
        revision: str,
        waves: tuple[WaveResult, ...],
        failure: str | None,
        rollback: RollbackResult | None,
        stopped: str | None = None,
    ) -> None:
        # Called as the engine calls: `stopped` only when the failure policy stopped the stage.
        for observer in self.observers:
            if stopped is None:
                observer.stage_finished(stage, revision, waves, failure, rollback)
            else:
                observer.stage_finished(stage, revision, waves, failure, rollback, stopped)

    def rollback_started(
        self, environment: str, hosts: tuple[str, ...], target: str, current: str | None
    ) -> str | None:
        ids = [o.rollback_started(environment, hosts, target, current) for o in self.observers]
        return ids[0] if ids else None

    def rollback_finished(self, environment: str, result: RollbackResult) -> None:
        for observer in self.observers:
            observer.rollback_finished(environment, result)

    def run_interrupted(self, environment: str, deploy_id: str, by: str | None) -> None:
        for observer in self.observers:
            observer.run_interrupted(environment, deploy_id, by)
