"""Health gates: probe retries and bake time on a fake clock, JUnit parsing, the verdict."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cd_checks.rollout import health
from cd_checks.rollout.health import (
    CheckResult,
    Clock,
    HealthGate,
    HostHealth,
    fetch,
    junit_results,
    verdict,
    watch_probe,
)
from cd_checks.rollout.inventory import Host
from cd_checks.rollout.progress import silent
from cd_checks.rollout.spec import HealthSpec, HttpProbe

HOST = Host("lab-03", "127.0.0.13")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.now, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flapping(bad_answers: int):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def get(url: str, timeout: float) -> tuple[int | None, str]:
        calls.append(url)
        return (500, "down") if len(calls) <= bad_answers else (200, "ok")

    return get, calls


@pytest.mark.parametrize(
    ("bad", "retries", "ok"),
    [(0, 0, True), (2, 3, True), (3, 3, True), (4, 3, False), (1, 0, False)],
)
def test_a_flapping_probe_passes_within_its_retries_and_fails_past_them(
    bad: int, retries: int, ok: bool
) -> None:
    get, calls = flapping(bad)
    result = watch_probe(
        HttpProbe("http://{host}/healthz"),
        HOST,
        bake=0,
        retries=retries,
        clock=FakeClock().clock(),
        get=get,
    )
    assert result.ok is ok
    assert calls[0] == "http://127.0.0.13/healthz"
    assert result.attempts == (bad + 1 if ok else retries + 1)


def test_back_off_is_exponential() -> None:
    fake = FakeClock()
    get, _ = flapping(3)
    watch_probe(HttpProbe("http://x/"), HOST, bake=0, retries=3, clock=fake.clock(), get=get)
    assert fake.sleeps == [0.5, 1.0, 2.0]


def test_a_probe_is_watched_for_the_whole_bake_time() -> None:
    fake = FakeClock()
    answers = iter([(200, "ok"), (200, "ok"), (500, "x"), (200, "ok")] + [(200, "ok")] * 50)
    result = watch_probe(
        HttpProbe("http://x/"),
        HOST,
        bake=10,
        retries=1,
        clock=fake.clock(),
        get=lambda url, timeout: next(answers),
    )
    assert result.ok and fake.now >= 10 and result.attempts > 3
    assert "1 failed attempt" in result.detail


def test_a_probe_that_breaks_during_the_bake_fails() -> None:
    answers = iter([(200, "ok")] * 2 + [(None, "no answer: refused")] * 50)
    result = watch_probe(
        HttpProbe("http://x/"),
        HOST,
        bake=30,
        retries=2,
        clock=FakeClock().clock(),
        get=lambda url, timeout: next(answers),
    )
    assert not result.ok and "refused (3 failures)" in result.detail


def every(period: int, bad: int):  # type: ignore[no-untyped-def]
    """Answers that flap forever: `bad` failures in every `period` attempts, good first."""
    calls: list[str] = []

    def get(url: str, timeout: float) -> tuple[int | None, str]:
        calls.append(url)
        return (503, "flap") if (len(calls) - 1) % period >= period - bad else (200, "ok")

    return get, calls


@pytest.mark.parametrize(
    ("period", "bad", "ok", "bake"),
    [(3, 1, True, 2.0), (3, 1, True, 60.0), (3, 1, True, 600.0)]
    + [(3, 2, False, 10.0), (3, 2, False, 60.0), (3, 2, False, 600.0)],
)
def test_a_flapping_probe_gets_the_same_verdict_however_long_the_bake(
    period: int, bad: int, ok: bool, bake: float
) -> None:
    # A count of failures that never reset passed a 1-in-3 flap with a 2 s bake and
    # rolled it back with the shipped 60 s bake: the verdict must not depend on the bake.
    get, calls = every(period, bad)
    result = watch_probe(
        HttpProbe("http://x/"), HOST, bake=bake, retries=3, clock=FakeClock().clock(), get=get
    )
    assert result.ok is ok, result.detail
    if not ok:
        assert "flapping: " in result.detail and "max_failure_rate 0.5" in result.detail


def test_a_host_that_goes_down_for_good_is_caught_within_its_retries_not_at_the_bake_end() -> None:
    fake = FakeClock()
    answers = iter([(200, "ok")] * 5 + [(None, "no answer: refused")] * 500)
    result = watch_probe(
        HttpProbe("http://x/"),
        HOST,
        bake=600,
        retries=3,
        clock=fake.clock(),
        get=lambda url, timeout: next(answers),
    )
    assert not result.ok and "refused (4 failures)" in result.detail
    assert fake.now < 30  # five good answers, then 0.5 + 1 + 2 s of back-off


def test_status_and_body_are_checked() -> None:
    probe = HttpProbe("http://x/", status=200, contains="revision abc")
    result = watch_probe(
        probe,
        HOST,
        bake=0,
        retries=0,
        clock=FakeClock().clock(),
        get=lambda url, timeout: (200, "revision old"),
    )
    assert not result.ok and "does not contain 'revision abc'" in result.detail


def test_the_verdict_allows_max_failed_percent() -> None:
    good = HostHealth("a", (CheckResult("c", True),))
    bad = HostHealth("b", (CheckResult("c", False, "x"),))
    assert not verdict([good, bad], 0).passed
    assert verdict([good, bad], 50).passed
    assert verdict([good, good, good, bad], 25).passed
    assert verdict([bad, bad], 50).failed_hosts == ("b", "b")


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
<testcase classname="test_nginx" name="test_listening[ssh://lab-1]" time="0.1"/>
<testcase classname="test_nginx" name="test_listening[ssh://lab-10]" time="0.1">
  <failure message="AssertionError: assert False">long text</failure></testcase>
<testcase classname="test_nginx" name="test_port[ssh://lab-1-80]" time="0.1"/>
<testcase classname="test_nginx" name="test_port[ssh://lab-10-80]" time="0.1">
  <error message="ConnectionError: ssh: connect to host lab-10 port 22: refused"/></testcase>
<testcase classname="test_nginx" name="test_skipped[ssh://lab-1]" time="0.1">
  <skipped message="no"/></testcase>
</testsuite></testsuites>
"""


def test_junit_results_are_per_host() -> None:
    results = junit_results(JUNIT, {"ssh://lab-1": "lab-1", "ssh://lab-10": "lab-10"})
    assert [c.ok for c in results["lab-1"]] == [True, True]
    assert [c.ok for c in results["lab-10"]] == [False, False]
    assert results["lab-10"][0].check == "testinfra test_nginx::test_listening"
    assert "connect to host lab-10" in results["lab-10"][1].detail


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            code = 200 if self.path == "/healthz" else 503
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"ok\n" if code == 200 else b"sick\n")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_a_real_server(server: str) -> None:
    assert fetch(f"http://{server}/healthz", 2) == (200, "ok\n")
    assert fetch(f"http://{server}/other", 2) == (503, "sick\n")
    status, detail = fetch("http://127.0.0.1:1/", 2)
    assert status is None and detail.startswith("no answer")


def test_the_http_gate_fails_an_unreachable_host(server: str, tmp_path: Path) -> None:
    spec = HealthSpec(http=(HttpProbe("http://{host}/healthz"),), bake_seconds=0, retries=1)
    gate = HealthGate(spec, None, FakeClock().clock())
    hosts = [Host("up", server), Host("down", "127.0.0.1:1")]
    result = gate.check(hosts, workdir=tmp_path, stage="s", wave=1, report=silent)
    assert not result.passed and result.failed_hosts == ("down",)
    assert "no answer" in result.hosts[1].checks[0].detail


def test_a_stage_with_a_metric_gate_does_not_start_without_prometheus() -> None:
    from cd_checks.errors import ConfigError
    from cd_checks.rollout.spec import MetricCheck, MetricsSpec

    check = MetricCheck("errors", 'sum(up{instance=~"{instances}"})', max=1)
    closed = MetricsSpec(prometheus="http://127.0.0.1:1", checks=(check,))
    gate = HealthGate(HealthSpec(), None)
    assert gate.before_stage("canary", closed) == (
        "stage canary not started: Prometheus at http://127.0.0.1:1 is unreachable: "
        "connection refused"
    )
    assert gate.before_stage("canary", MetricsSpec()) is None  # no metric gate, no question
    with pytest.raises(ConfigError, match="CD_CHECKS_PROMETHEUS_URL"):
        gate.before_stage("canary", MetricsSpec(checks=(check,)))
    moved = HealthGate(
        HealthSpec(), None, prometheus_env={"CD_CHECKS_PROMETHEUS_URL": "http://127.0.0.1:2"}
    )
    assert "http://127.0.0.1:2 is unreachable" in (moved.before_stage("canary", closed) or "")


def test_a_failed_probe_says_when_it_first_failed_not_when_it_gave_up() -> None:
    fake = FakeClock()
    clock = Clock(monotonic=lambda: fake.now, sleep=fake._sleep, wall=lambda: 1000 + fake.now)
    answers = iter([(200, "ok")] * 3 + [(503, "down")] * 50)
    result = watch_probe(
        HttpProbe("http://x/"),
        HOST,
        bake=60,
        retries=3,
        clock=clock,
        get=lambda url, timeout: next(answers),
    )
    assert not result.ok and result.failed_at is not None
    gave_up = 1000 + fake.now
    assert gave_up - result.failed_at == 0.5 + 1.0 + 2.0  # the back-off before giving up


def test_a_testinfra_run_past_its_timeout_is_stopped_with_its_workers(tmp_path: Path) -> None:
    # Stands in for pytest: starts a worker (as pytest-xdist does), then both hang, as tests
    # of a host whose service stopped answering do. The worker writes its pid.
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nsleep 300 &\necho $! > worker.pid\nsleep 300\n")
    fake.chmod(0o755)
    testinfra = health.Testinfra(
        "tests/", "ssh", tmp_path / "hosts.yml", None, {}, str(fake), workers=2, timeout=1.0
    )
    hosts = [Host("web-1", "127.0.0.1"), Host("web-2", "127.0.0.2")]
    results = testinfra.run(hosts, tmp_path)
    said = "testinfra did not finish within health.testinfra_timeout (1 s): stopped"
    assert results == {h.name: [CheckResult("testinfra", False, said)] for h in hosts}
    worker = int((tmp_path / "worker.pid").read_text())
    stat = Path(f"/proc/{worker}/stat")
    assert not stat.exists() or ") Z " in stat.read_text()
