"""Health gates: decide whether the hosts of a wave are healthy after an apply.

Two kinds of check, both per host:

- HTTP probes (urllib, no proxy), all hosts at once: each probe is watched for `bake_seconds`
  after the apply; a failed attempt is retried with exponential back-off.
  The host fails once more than `retries` attempts in a row have failed (as
  Argo Rollouts' consecutiveErrorLimit: a host that is down is caught within
  a few seconds), or when the bake ends with more than `max_failure_rate` of
  its attempts failed. Both are independent of the bake's length: a probe
  that flaps one time in three gets the same verdict after 2 s and after 60 s
  (a count of failures that never resets would not). A probe that never
  answers fails like any other: an unreachable host is never skipped.
- testinfra: the health test files of the deployed revision, run by pytest
  against the wave's hosts (ssh or ansible backend) in parallel with
  pytest-xdist; per-host results come from the JUnit XML. Hosts that fail
  are run again, up to `retries` times, with back-off. testinfra runs while
  the probes bake, so a wave's gate takes the longer of the two, not the sum.

A third kind is per wave, not per host: the metric gate (`health.metrics`,
`cd_checks.rollout.analysis`) asks Prometheus every `interval` while the
probes bake, about the wave's hosts and, for `compare: baseline`, about the
hosts of the group that did not get the change. Its verdict can be
inconclusive: the gate then neither passes nor fails, and the engine applies
the `on_inconclusive` policy. Rollback gates run without it (the metrics of
the bad revision are still in every rate window).

The verdict: the wave fails when the share of failed hosts exceeds
`max_failed_percent`, or the metric gate fails. Processes, sockets and the clock are the only side
effects; the environment for pytest is passed in (without secrets, see
`cd_checks.rollout.scrub`).
"""

from __future__ import annotations

import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cd_checks import processes
from cd_checks.rollout.inventory import Host
from cd_checks.rollout.progress import Event, Reporter
from cd_checks.rollout.spec import DEFAULT_TESTINFRA_TIMEOUT, HealthSpec, HttpProbe, MetricsSpec

if TYPE_CHECKING:
    from cd_checks.rollout.analysis import AnalysisResult

MAX_BACKOFF = 8.0
MAX_THREADS = 64


@dataclass(frozen=True)
class CheckResult:
    check: str
    ok: bool
    detail: str = ""
    attempts: int = 1
    failed_at: float | None = None  # wall clock (epoch) of its first failed attempt


@dataclass(frozen=True)
class HostHealth:
    host: str
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.ok)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    hosts: tuple[HostHealth, ...]
    max_failed_percent: float
    notes: tuple[str, ...] = ()
    analysis: AnalysisResult | None = None  # the metric gate's, when it ran
    inconclusive: bool = False  # not passed, not failed: the metric gate could not tell
    metrics_failed_at: float | None = None  # wall clock when the metric gate failed

    @property
    def first_failure_at(self) -> float | None:
        """When the first failure that made this gate fail was seen (epoch), if known."""
        seen = [c.failed_at for h in self.hosts if not h.ok for c in h.failed if c.failed_at]
        if self.metrics_failed_at is not None:
            seen.append(self.metrics_failed_at)
        return min(seen, default=None)

    @property
    def failed_hosts(self) -> tuple[str, ...]:
        return tuple(h.host for h in self.hosts if not h.ok)

    @property
    def hosts_ok(self) -> bool:
        failed = len(self.failed_hosts)
        return 100.0 * failed / len(self.hosts) <= self.max_failed_percent if self.hosts else True


class Gate(Protocol):
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
    ) -> GateResult: ...

    def before_stage(self, stage: str, metrics: MetricsSpec) -> str | None:
        """Why the stage may not start now (a firing alert, no Prometheus), else None."""


@dataclass(frozen=True)
class Clock:
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wall: Callable[[], float] = time.time  # when something was seen, for the audit trail


Fetch = Callable[[str, float], tuple[int | None, str]]


def fetch(url: str, timeout: float) -> tuple[int | None, str]:
    """GET `url` directly (never through a proxy): (status, body) or (None, error)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), response.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(65536).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"no answer: {reason}"


def verdict(
    results: Iterable[HostHealth], max_failed_percent: float, notes: Sequence[str] = ()
) -> GateResult:
    hosts = tuple(results)
    failed = sum(1 for h in hosts if not h.ok)
    percent = 100.0 * failed / len(hosts) if hosts else 0.0
    return GateResult(percent <= max_failed_percent, hosts, max_failed_percent, tuple(notes))


def with_analysis(gate: GateResult, analysis: AnalysisResult | None) -> GateResult:
    """The gate's verdict with the metric gate's folded in (fail wins over inconclusive)."""
    if analysis is None:
        return gate
    failed = analysis.verdict == "fail"
    unsure = analysis.verdict == "inconclusive" and gate.passed
    passed = gate.passed and not failed and not unsure
    return replace(gate, passed=passed, analysis=analysis, inconclusive=unsure and not failed)


def backoff(failures: int) -> float:
    return float(min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1)))


def probe_url(probe: HttpProbe, host: Host) -> str:
    return probe.url.replace("{host}", host.address).replace("{name}", host.name)


def watch_probe(
    probe: HttpProbe,
    host: Host,
    *,
    bake: float,
    retries: int,
    clock: Clock,
    get: Fetch,
    max_failure_rate: float = 0.5,
) -> CheckResult:
    """Probe until `bake` seconds have passed with the last attempt good; fail on more than
    `retries` failures in a row, or a bake that ends with more than `max_failure_rate` failed."""
    url = probe_url(probe, host)
    name = f"http {url}"
    start, failures, in_a_row, attempts = clock.monotonic(), 0, 0, 0
    up: list[bool] = []  # the attempts since the first good answer: a restart is not a flap
    first: float | None = None  # when the first failed attempt was seen (wall clock)
    interval = max(0.5, min(5.0, bake / 5))
    while True:
        attempts += 1
        problem = _probe_problem(probe, *get(url, probe.timeout))
        if up or not problem:
            up.append(not problem)
        if problem:
            first = first if first is not None else clock.wall()
            failures, in_a_row = failures + 1, in_a_row + 1
            if in_a_row > retries:
                detail = f"{problem} ({in_a_row} failures)"
                return CheckResult(name, False, detail, attempts, failed_at=first)
            clock.sleep(backoff(in_a_row))
            continue
        in_a_row = 0
        left = bake - (clock.monotonic() - start)
        if left <= 0:
            return _baked(name, failures, attempts, up, max_failure_rate, first)
        clock.sleep(min(interval, left))


def _baked(
    name: str,
    failures: int,
    attempts: int,
    up: list[bool],
    max_failure_rate: float,
    first: float | None,
) -> CheckResult:
    """The verdict at the end of the bake: the share of failed attempts once up decides."""
    flaps = up.count(False)
    if flaps / len(up) > max_failure_rate:
        share = f"{flaps} of {len(up)} attempts failed after the first good answer"
        limit = f"max_failure_rate {max_failure_rate:g}"
        detail = f"flapping: {share} (more than {limit})"
        return CheckResult(name, False, detail, attempts, failed_at=first)
    detail = f"ok after {failures} failed attempt(s) of {attempts}" if failures else ""
    return CheckResult(name, True, detail, attempts)


def _probe_problem(probe: HttpProbe, status: int | None, body: str) -> str:
    if status is None:
        return body
    if status != probe.status:
        return f"status {status}, expected {probe.status}"
    if probe.contains is not None and probe.contains not in body:
        return f"body does not contain {probe.contains!r}"
    return ""


@dataclass(frozen=True)
class Testinfra:
    """Runs the testinfra files of the deployed revision through pytest."""

    tests: str
    backend: str
    inventory: Path
    ssh_config: Path | None
    env: Mapping[str, str]
    python: str
    workers: int = 2
    timeout: float = DEFAULT_TESTINFRA_TIMEOUT  # one run; then stopped with its workers, all failed

    def spec(self, host: Host) -> str:
        if self.backend == "ansible" or self.ssh_config is not None:
            return f"{self.backend}://{host.name}"
        user = host.vars.get("ansible_user")
        port = host.vars.get("ansible_port")
        return f"ssh://{user + '@' if user else ''}{host.address}{f':{port}' if port else ''}"

    def command(self, hosts: Sequence[Host], workdir: Path, xml: Path) -> list[str]:
        path = workdir / self.tests
        folder = path if path.is_dir() else path.parent
        argv = [self.python, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
        # A real, empty config of our own: the repository's pytest.ini/pyproject.toml must not
        # change how the gate runs, and pytest >= 9.2 refuses a `-c` file that does not exist.
        argv += [f"--config-file={xml.parent / 'pytest.ini'}", f"--rootdir={folder}"]
        argv += [f"--confcutdir={folder}", f"--junitxml={xml}"]
        argv += ["--hosts=" + ",".join(self.spec(h) for h in hosts)]
        workers = min(self.workers, len(hosts))
        if workers > 1:  # pytest-xdist (the rollout extra) spreads hosts over processes
            argv += [f"--numprocesses={workers}"]
        if self.backend == "ansible":
            argv += [f"--ansible-inventory={self.inventory}", "--force-ansible"]
        elif self.ssh_config is not None:
            argv += [f"--ssh-config={self.ssh_config}"]
        # Values inside their options and the tests after `--`, as an absolute path: pytest
        # reads a test directory named `--x` as an option even after `--`, never `/.../--x`.
        return [*argv, "--", str(path.absolute())]

    def run(self, hosts: Sequence[Host], workdir: Path) -> dict[str, list[CheckResult]]:
        with tempfile.TemporaryDirectory(prefix="cd-checks-testinfra-") as scratch:
            xml = Path(scratch) / "junit.xml"
            (Path(scratch) / "pytest.ini").write_text("[pytest]\n", "utf-8")
            argv = self.command(hosts, workdir, xml)
            try:
                done = processes.run_bounded(argv, cwd=workdir, env=self.env, timeout=self.timeout)
            except OSError as exc:
                return _everyone(hosts, f"testinfra did not start: {exc}")
            if done.returncode is None:
                said = f"did not finish within health.testinfra_timeout ({self.timeout:g} s)"
                return _everyone(hosts, f"testinfra {said}: stopped")
            if done.returncode not in (0, 1) or not xml.is_file():
                lines = (done.stdout + done.stderr).strip().splitlines()[-3:]
                why = f"pytest exit {done.returncode}: {' | '.join(lines)}"
                return _everyone(hosts, why)
            return junit_results(xml.read_text("utf-8"), {self._id(h): h.name for h in hosts})

    def _id(self, host: Host) -> str:
        spec = self.spec(host)
        scheme, _, rest = spec.partition("://")
        rest = rest.rsplit("@", 1)[-1]
        if host.vars.get("ansible_port") and scheme == "ssh" and self.ssh_config is None:
            rest = rest.rsplit(":", 1)[0]
        return f"{scheme}://{rest}"


def _everyone(hosts: Sequence[Host], detail: str) -> dict[str, list[CheckResult]]:
    return {h.name: [CheckResult("testinfra", False, detail)] for h in hosts}


def junit_results(xml: str, ids: Mapping[str, str]) -> dict[str, list[CheckResult]]:
    """Per-host results from pytest's JUnit XML; `ids` maps testinfra ids to host names."""
    results: dict[str, list[CheckResult]] = {name: [] for name in ids.values()}
    for case in ET.fromstring(xml).iter("testcase"):
        name = case.get("name", "")
        check = f"testinfra {case.get('classname', '')}::{name.split('[', 1)[0]}"
        problem = next((c for c in case if c.tag in ("failure", "error")), None)
        if case.find("skipped") is not None and problem is None:
            continue
        detail = "" if problem is None else _first_line(problem)
        host = _host_of(name, ids)
        for target in [host] if host else list(results):
            results[target].append(CheckResult(check, problem is None, detail))
    return results


def _host_of(test_name: str, ids: Mapping[str, str]) -> str | None:
    params = test_name.partition("[")[2].rstrip("]")
    matches = [
        i
        for i in ids
        if params == i
        or params.startswith(i + "-")
        or params.endswith("-" + i)
        or f"-{i}-" in params
    ]
    return ids[max(matches, key=len)] if matches else None


def _first_line(element: ET.Element) -> str:
    message = element.get("message") or (element.text or "")
    return " ".join(message.split())[:300]


@dataclass(frozen=True)
class HealthGate:
    """The gate of the `health:` section: HTTP probes, testinfra and metrics, then the verdict."""

    spec: HealthSpec
    testinfra: Testinfra | None
    clock: Clock = field(default_factory=Clock)
    get: Fetch = fetch
    # CD_CHECKS_PROMETHEUS_URL/_TOKEN of the caller: the token is a secret no child gets.
    prometheus_env: Mapping[str, str] = field(default_factory=dict)

    def before_stage(self, stage: str, metrics: MetricsSpec) -> str | None:
        """A stage with a metric gate starts only with Prometheus answering and no alert firing."""
        if not metrics.active:
            return None
        from cd_checks.rollout import analysis, prometheus

        client = prometheus.client_from(metrics, self.prometheus_env)
        try:
            client.query("vector(1)")  # answers at all: a gate that cannot measure never starts
        except prometheus.PrometheusError as exc:
            return f"stage {stage} not started: {exc}"
        firing = analysis.alerts_before(metrics, client)
        return f"stage {stage} not started: {'; '.join(firing)}" if firing else None

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
        """Watch every probe of every host for the bake time while testinfra and metrics run."""
        workers = min(MAX_THREADS, 2 + len(hosts) * len(self.spec.http))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            tests = None
            if self.testinfra is not None:
                tests = pool.submit(self._testinfra, hosts, workdir, stage, wave, report)
            measured = None
            if metrics is not None and metrics.active:
                measured = pool.submit(self._timed, metrics, hosts, baseline, stage, wave, report)
            probes = {
                h.name: [
                    pool.submit(self._watch, p, h, stage, wave, report) for p in self.spec.http
                ]
                for h in hosts
            }
            results = {name: [f.result() for f in futures] for name, futures in probes.items()}
            for name, checks in (tests.result() if tests is not None else {}).items():
                results[name].extend(checks)
        notes = () if self.spec.has_checks else ("no health checks configured",)
        health = [HostHealth(h.name, tuple(results[h.name])) for h in hosts]
        for host in health:
            report(Event(stage, wave, host.host, "gate", "ok" if host.ok else "failed", _why(host)))
        gate = verdict(health, self.spec.max_failed_percent, notes)
        if measured is None:
            return gate
        analysed, finished = measured.result()
        failed_at = finished if analysed.verdict == "fail" else None
        return replace(with_analysis(gate, analysed), metrics_failed_at=failed_at)

    def _timed(
        self,
        metrics: MetricsSpec,
        hosts: Sequence[Host],
        baseline: Sequence[Host],
        stage: str,
        wave: int,
        report: Reporter,
    ) -> tuple[AnalysisResult, float]:
        """The metric gate's result and when it came (it stops at its first failure)."""
        result = self._analyse(metrics, hosts, baseline, stage, wave, report)
        return result, self.clock.wall()

    def _analyse(
        self,
        metrics: MetricsSpec,
        hosts: Sequence[Host],
        baseline: Sequence[Host],
        stage: str,
        wave: int,
        report: Reporter,
    ) -> AnalysisResult:
        from cd_checks.rollout import analysis, prometheus

        def said(check: str, status: str, detail: str) -> None:
            report(Event(stage, wave, "*", f"metric {check}", status, detail))

        try:
            client = prometheus.client_from(metrics, self.prometheus_env)
        except prometheus.PrometheusError as exc:
            said("prometheus", "failed", str(exc))
            checks = tuple(
                analysis.CheckVerdict(c.name, "fail", str(exc), ()) for c in metrics.checks
            )
            return analysis.AnalysisResult("fail", checks, ())
        return analysis.analyse(
            metrics,
            hosts,
            baseline,
            bake=self.spec.bake_seconds,
            client=client,
            clock=self.clock,
            report=said,
        )

    def _watch(
        self, probe: HttpProbe, host: Host, stage: str, wave: int, report: Reporter
    ) -> CheckResult:
        result = watch_probe(
            probe,
            host,
            bake=self.spec.bake_seconds,
            retries=self.spec.retries,
            clock=self.clock,
            get=self.get,
            max_failure_rate=self.spec.max_failure_rate,
        )
        report(
            Event(
                stage, wave, host.name, result.check, "ok" if result.ok else "failed", result.detail
            )
        )
        return result

    def _testinfra(
        self, hosts: Sequence[Host], workdir: Path, stage: str, wave: int, report: Reporter
    ) -> dict[str, list[CheckResult]]:
        """Run testinfra; hosts that fail run again, up to `retries` times, with back-off."""
        assert self.testinfra is not None
        results: dict[str, list[CheckResult]] = {}
        first: dict[str, float] = {}  # when each host's tests first failed (wall clock)
        pending = list(hosts)
        for attempt in range(self.spec.retries + 1):
            if attempt:
                self.clock.sleep(backoff(attempt))
            found = self.testinfra.run(pending, workdir)
            seen, last = self.clock.wall(), attempt == self.spec.retries
            for host in pending:
                checks = found.get(host.name) or [CheckResult("testinfra", False, "no results")]
                ok = all(c.ok for c in checks)
                if not ok:
                    first.setdefault(host.name, seen)
                    at = first[host.name]
                    checks = [c if c.ok else replace(c, failed_at=at) for c in checks]
                if ok or last:
                    results[host.name] = checks
                    report(Event(stage, wave, host.name, "testinfra", "ok" if ok else "failed"))
            pending = [h for h in pending if h.name not in results]
            if not pending:
                break
        return results


def _why(host: HostHealth) -> str:
    return "; ".join(f"{c.check}: {c.detail}" for c in host.failed)
