"""The metric gate's analysis with a scripted Prometheus and a fake clock; placeholders."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from cd_checks.rollout.analysis import (
    NO_HOST,
    AnalysisResult,
    alerts_before,
    analyse,
    bake_problems,
    expand,
    instance_label,
    template_problems,
)
from cd_checks.rollout.health import Clock
from cd_checks.rollout.inventory import Host
from cd_checks.rollout.prometheus import PrometheusError, Sample
from cd_checks.rollout.spec import MetricCheck, MetricsSpec

CANARY = (Host("web-1", "127.0.0.1"),)
BASELINE = (Host("web-2", "127.0.0.2"), Host("web-3", "127.0.0.3"))
ERROR_RATE = 'sum(rate(http_requests_total{status=~"5..",instance=~"{instances}"}[1m]))'
PARSE_ERROR = PrometheusError(
    'Prometheus at http://127.0.0.1:9090 answered HTTP 400: bad_data: invalid parameter "query":'
    " 1:18: parse error: unclosed left parenthesis",
    "bad_data",
)
UNREACHABLE = PrometheusError(
    "Prometheus at http://127.0.0.1:9 is unreachable: connection refused", "unreachable"
)

Answer = float | None | list[Sample] | PrometheusError


@dataclass
class FakeClock:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.now, sleep=self._sleep)

    def _sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakePrometheus:
    """Answers a query from `answer(query, round)`; alerts from `alerts(round)`."""

    clock: FakeClock
    answer: Callable[[str, float], Answer]
    alerts: Callable[[float], list[str] | PrometheusError] = lambda t: []
    queries: list[tuple[float, str]] = field(default_factory=list)
    alert_reads: list[tuple[str, ...]] = field(default_factory=list)

    def query(self, promql: str) -> list[Sample]:
        self.queries.append((self.clock.now, promql))
        got = self.answer(promql, self.clock.now)
        if isinstance(got, PrometheusError):
            raise got
        if isinstance(got, list):
            return got
        return [] if got is None else [Sample({}, got)]

    def firing_alerts(self, names: Sequence[str]) -> list[str]:
        self.alert_reads.append(tuple(names))
        got = self.alerts(self.clock.now)
        if isinstance(got, PrometheusError):
            raise got
        return [n for n in names if n in got]


@dataclass
class Run:
    result: AnalysisResult
    prometheus: FakePrometheus
    clock: FakeClock
    reports: list[tuple[str, str, str]]

    @property
    def times(self) -> list[float]:
        return sorted({t for t, _ in self.prometheus.queries})

    def reported(self, check: str) -> list[str]:
        return [status for name, status, _ in self.reports if name == check]


def run(
    checks: Sequence[MetricCheck],
    answer: Callable[[str, float], Answer],
    *,
    bake: float = 30.0,
    interval: float = 10.0,
    alerts: Sequence[str] = (),
    firing: Callable[[float], list[str] | PrometheusError] = lambda t: [],
    baseline: Sequence[Host] = BASELINE,
) -> Run:
    clock = FakeClock()
    prometheus = FakePrometheus(clock, answer, firing)
    reports: list[tuple[str, str, str]] = []
    spec = MetricsSpec(interval=interval, checks=tuple(checks), alerts=tuple(alerts))
    result = analyse(
        spec,
        CANARY,
        baseline,
        bake=bake,
        client=prometheus,
        clock=clock.clock(),
        report=lambda *r: reports.append(r),
        now=lambda: f"t={clock.now:g}",
    )
    return Run(result, prometheus, clock, reports)


def by_time(values: dict[float, Answer], default: Answer = 0.001) -> Callable[[str, float], Answer]:
    return lambda query, t: values.get(t, default)


def error_rate(**options: object) -> MetricCheck:
    return MetricCheck("error-rate", ERROR_RATE, **options)  # type: ignore[arg-type]


# --- threshold checks -------------------------------------------------------------------


def test_a_healthy_check_is_measured_at_once_every_interval_and_at_the_end() -> None:
    done = run([error_rate(max=0.01)], by_time({}), bake=25.0, interval=10.0)
    assert done.result.verdict == "pass"
    assert done.times == [0.0, 10.0, 20.0, 25.0]
    check = done.result.checks[0]
    assert (check.name, check.verdict) == ("error-rate", "pass")
    assert [m.at for m in check.measurements] == ["t=0", "t=10", "t=20", "t=25"]
    assert [m.detail for m in check.measurements] == ["0.001 (max 0.01)"] * 4
    assert check.detail == "4 measurement(s): 4 ok, 0 failed, 0 inconclusive"
    assert done.reports == [("error-rate", "ok", "0.001 (max 0.01)")] * 4 + [
        ("error-rate", "pass", check.detail)
    ]


def test_the_query_gets_the_canary_hosts_instance_labels() -> None:
    done = run([error_rate(max=0.01)], by_time({}), bake=0.0)
    assert done.prometheus.queries == [
        (0.0, 'sum(rate(http_requests_total{status=~"5..",instance=~"127[.]0[.]0[.]1:9100"}[1m]))')
    ]


def test_a_bake_of_zero_still_measures_once() -> None:
    done = run([error_rate(max=0.01)], by_time({}), bake=0.0)
    assert done.times == [0.0] and done.clock.sleeps == []
    assert done.result.verdict == "pass"


def test_a_value_above_max_fails_the_check_at_once_by_default() -> None:
    done = run([error_rate(max=0.01)], by_time({10.0: 0.25}), bake=60.0)
    check = done.result.checks[0]
    assert done.result.verdict == "fail" and check.verdict == "fail"
    assert check.detail == ("1 of 2 measurement(s) failed (failure_limit 0); last: 0.25 > max 0.01")
    assert done.times == [0.0, 10.0]  # stopped: a bad canary is not left baking
    assert done.reported("error-rate") == ["ok", "failed", "fail"]


def test_below_min_fails() -> None:
    check = MetricCheck("throughput", "sum(rate(x[1m]))", min=5.0)
    done = run([check], by_time({}, default=4.5), bake=0.0)
    assert done.result.checks[0].measurements[0].detail == "4.5 < min 5"
    assert done.result.verdict == "fail"


def test_failure_limit_allows_that_many_failed_measurements() -> None:
    one_bad = run([error_rate(max=0.01, failure_limit=1)], by_time({10.0: 0.5}))
    assert one_bad.result.verdict == "pass"
    assert one_bad.result.checks[0].detail == "4 measurement(s): 3 ok, 1 failed, 0 inconclusive"
    two_bad = run([error_rate(max=0.01, failure_limit=1)], by_time({0.0: 0.5, 20.0: 0.5}))
    assert two_bad.result.verdict == "fail"
    assert two_bad.result.checks[0].detail.startswith("2 of 3 measurement(s) failed")
    assert two_bad.times == [0.0, 10.0, 20.0]


@pytest.mark.parametrize(
    ("on_empty", "verdict", "status"),
    [
        ("fail", "fail", "failed"),
        ("pass", "pass", "ok"),
        ("inconclusive", "inconclusive", "inconclusive"),
    ],
)
@pytest.mark.parametrize("empty", [None, math.nan])
def test_an_empty_result_or_nan_follows_on_empty(
    on_empty: str, verdict: str, status: str, empty: float | None
) -> None:
    done = run([error_rate(max=0.01, on_empty=on_empty)], by_time({}, default=empty), bake=0.0)
    measurement = done.result.checks[0].measurements[0]
    what = "empty result" if empty is None else "NaN"
    assert (measurement.status, measurement.detail) == (status, f"{what} (on_empty: {on_empty})")
    assert measurement.value is None
    assert done.result.verdict == verdict


def test_inconclusive_limit_allows_that_many_inconclusive_measurements() -> None:
    check = error_rate(max=0.01, inconclusive_limit=2)
    assert run([check], by_time({0.0: None, 10.0: None})).result.verdict == "pass"
    done = run([check], by_time({0.0: None, 10.0: None, 30.0: math.nan}))
    assert done.result.verdict == "inconclusive"
    assert done.times == [0.0, 10.0, 20.0, 30.0]  # inconclusive is decided at the end
    assert done.result.checks[0].detail == (
        "4 measurement(s): 1 ok, 0 failed, 3 inconclusive (inconclusive_limit 2); last: NaN"
        " (on_empty: inconclusive)"
    )


def test_infinity_is_a_value_like_any_other() -> None:
    done = run([error_rate(max=0.01)], by_time({}, default=math.inf), bake=0.0)
    assert done.result.checks[0].measurements[0].detail == "inf > max 0.01"


def test_several_series_fail_the_check_at_once_and_suggest_an_aggregation() -> None:
    series = [Sample({"instance": f"127.0.0.{i}:9100", "job": "node"}, 0.0) for i in (1, 2, 3, 4)]
    done = run([error_rate(max=0.01, failure_limit=5)], by_time({}, default=series))
    check = done.result.checks[0]
    assert check.verdict == "fail" and done.times == [0.0]
    assert check.detail == (
        'the query gives 4 series where one is expected ({instance="127.0.0.1:9100", job="node"},'
        ' {instance="127.0.0.2:9100", job="node"}, {instance="127.0.0.3:9100", job="node"}, ...):'
        " aggregate them, e.g. sum(...) or max(...)"
    )
    assert check.measurements[0].status == "failed"


def test_a_query_prometheus_cannot_parse_fails_at_once_with_its_own_text() -> None:
    done = run([error_rate(max=0.01, failure_limit=5)], by_time({}, default=PARSE_ERROR))
    check = done.result.checks[0]
    assert done.result.verdict == "fail" and done.times == [0.0]
    assert check.detail == str(PARSE_ERROR)
    assert "1:18: parse error: unclosed left parenthesis" in check.detail
    assert done.reports == [
        ("error-rate", "error", str(PARSE_ERROR)),
        ("error-rate", "fail", str(PARSE_ERROR)),
    ]


def test_prometheus_unreachable_counts_as_a_failed_measurement() -> None:
    once = run([error_rate(max=0.01, failure_limit=1)], by_time({10.0: UNREACHABLE}))
    assert once.result.verdict == "pass"
    assert [m.status for m in once.result.checks[0].measurements] == ["ok", "error", "ok", "ok"]
    always = run([error_rate(max=0.01, failure_limit=1)], by_time({}, default=UNREACHABLE))
    assert always.result.verdict == "fail"
    assert always.result.checks[0].detail == (
        "2 of 2 measurement(s) failed (failure_limit 1); last: Prometheus at"
        " http://127.0.0.1:9 is unreachable: connection refused"
    )


def test_other_checks_are_skipped_once_one_fails() -> None:
    latency = MetricCheck("latency", "histogram_quantile(0.9, x)", max=0.5)
    done = run([latency, error_rate(max=0.01)], by_time({10.0: 0.3}, default=0.001), bake=60)
    # 0.3 is fine for latency, fatal for the error rate: both are measured at 10 s, then stop
    assert [c.verdict for c in done.result.checks] == ["skipped", "fail"]
    assert (
        done.result.checks[0].detail == "stopped after 2 measurement(s): check 'error-rate' failed"
    )
    assert done.result.verdict == "fail"


def test_the_overall_verdict_is_the_worst_of_its_checks() -> None:
    unsure = MetricCheck("unsure", "absent_metric", max=1.0)
    sure = MetricCheck("sure", "present_metric", max=1.0)
    done = run([unsure, sure], lambda q, t: None if q == "absent_metric" else 0.5, bake=0.0)
    assert [c.verdict for c in done.result.checks] == ["inconclusive", "pass"]
    assert done.result.verdict == "inconclusive"
    assert done.result.summary.startswith(
        "unsure: 1 measurement(s): 0 ok, 0 failed, 1 inconclusive"
    )


def test_no_checks_and_no_alerts_pass_without_waiting() -> None:
    done = run([], by_time({}), bake=600.0)
    assert done.result == AnalysisResult("pass", (), (), None)
    assert done.clock.now == 0.0


# --- alerts ---------------------------------------------------------------------------------


def test_a_firing_alert_fails_the_analysis_and_is_recorded() -> None:
    def firing(t: float) -> list[str] | PrometheusError:
        return ["HighErrorRate", "Other"] if t >= 20.0 else []

    done = run(
        [error_rate(max=0.01)],
        by_time({}),
        alerts=["HighErrorRate", "DiskFull"],
        firing=firing,
        bake=60,
    )
    assert done.result.verdict == "fail"
    assert done.result.alerts == ("HighErrorRate",)
    assert done.prometheus.alert_reads[0] == ("HighErrorRate", "DiskFull")
    assert len(done.prometheus.alert_reads) == 3  # at 0, 10 and 20 s
    assert done.times == [0.0, 10.0]  # the checks are not measured once an alert fires
    assert done.reported("alerts") == ["ok", "ok", "failed", "fail"]
    assert done.result.checks[0].verdict == "skipped"
    assert done.result.summary == "alert HighErrorRate firing"
    assert done.result.alert_reads is not None
    assert done.result.alert_reads.detail == "firing: HighErrorRate"


def test_alerts_are_read_at_the_start_and_every_interval_without_checks() -> None:
    done = run([], by_time({}), alerts=["DiskFull"], bake=20.0)
    assert done.result.verdict == "pass"
    assert len(done.prometheus.alert_reads) == 3
    assert done.result.alert_reads is not None
    assert done.result.alert_reads.detail == "3 read(s), none of DiskFull firing"
    assert done.reports[-1] == ("alerts", "pass", "3 read(s), none of DiskFull firing")


def test_alerts_that_cannot_be_read_fail_the_analysis_never_pass_it() -> None:
    done = run([], by_time({}), alerts=["DiskFull"], firing=lambda t: UNREACHABLE)
    assert done.result.verdict == "fail" and done.result.alerts == ()
    assert done.result.summary.startswith(
        "alerts: 1 failed read(s) of the alerts; last: Prometheus"
    )
    tolerant = run(
        [error_rate(max=0.01, failure_limit=1)],
        by_time({}),
        alerts=["DiskFull"],
        firing=lambda t: UNREACHABLE if t == 10.0 else [],
    )
    assert tolerant.result.verdict == "pass"  # as tolerant as the most tolerant check


def test_alerts_before_a_stage() -> None:
    clock = FakeClock()
    spec = MetricsSpec(alerts=("HighErrorRate", "DiskFull"))
    firing = FakePrometheus(clock, by_time({}), lambda t: ["DiskFull"])
    assert alerts_before(spec, firing) == ["alert DiskFull is firing"]
    quiet = FakePrometheus(clock, by_time({}))
    assert alerts_before(spec, quiet) == []
    down = FakePrometheus(clock, by_time({}), lambda t: UNREACHABLE)
    assert alerts_before(spec, down) == [f"cannot tell whether alerts are firing: {UNREACHABLE}"]
    assert alerts_before(MetricsSpec(), down) == []


# --- compare: baseline ------------------------------------------------------------------------

LATENCY = MetricCheck(
    "latency-vs-baseline",
    'histogram_quantile(0.9, sum by (le) (rate(x_bucket{instance=~"{instances}"}[1m])))',
    compare="baseline",
    max_ratio=1.2,
)


def latencies(canary_mean: float, seed: int = 1) -> Callable[[str, float], Answer]:
    rng = random.Random(seed)

    def answer(query: str, t: float) -> Answer:
        mean = canary_mean if "127[.]0[.]0[.]1:" in query else 0.1
        return rng.gauss(mean, 0.005)

    return answer


def test_compare_queries_the_canary_and_the_baseline_each_round() -> None:
    done = run([LATENCY], latencies(0.1), bake=0.0)
    queries = [q for _, q in done.prometheus.queries]
    assert [q.split("instance=~")[1].split("}")[0] for q in queries] == [
        '"127[.]0[.]0[.]1:9100"',
        '"127[.]0[.]0[.]2:9100|127[.]0[.]0[.]3:9100"',
    ]


def test_compare_a_clear_regression_fails() -> None:
    done = run([LATENCY], latencies(0.2), bake=60.0)
    check = done.result.checks[0]
    assert done.result.verdict == "fail" and check.verdict == "fail"
    assert len(check.measurements) == 7
    assert (
        "above max_ratio 1.2" in check.detail and "7 canary and 7 baseline samples" in check.detail
    )
    first = check.measurements[0]
    assert first.value is not None and first.baseline is not None
    assert first.detail == f"canary {first.value:.4g}, baseline {first.baseline:.4g}"
    assert done.reported("latency-vs-baseline")[-1] == "fail"


def test_compare_noise_passes() -> None:
    done = run([LATENCY], latencies(0.1), bake=60.0)
    assert done.result.verdict == "pass", done.result.checks[0].detail


def test_compare_with_too_few_samples_is_inconclusive() -> None:
    done = run([LATENCY], latencies(0.2), bake=20.0)
    assert done.result.verdict == "inconclusive"
    assert done.result.checks[0].detail == "3 canary and 3 baseline samples, need 5"


def test_compare_empty_sides_give_no_sample() -> None:
    def answer(query: str, t: float) -> Answer:
        return None if "127[.]0[.]0[.]1:" in query and t < 30 else 0.1

    done = run([LATENCY], answer, bake=60.0)
    assert done.result.checks[0].detail == "4 canary and 7 baseline samples, need 5"
    assert [m.status for m in done.result.checks[0].measurements][:4] == [
        "inconclusive",
        "inconclusive",
        "inconclusive",
        "ok",
    ]


def test_compare_on_the_last_wave_is_skipped() -> None:
    done = run([LATENCY], latencies(0.2), bake=60.0, baseline=())
    assert done.result.checks[0].verdict == "skipped"
    assert done.result.checks[0].detail == "no unchanged hosts to compare with"
    assert done.result.verdict == "pass"  # skipped checks do not count
    assert done.prometheus.queries == [] and done.clock.now == 0.0
    assert done.reports == [
        ("latency-vs-baseline", "skipped", "no unchanged hosts to compare with")
    ]


def test_compare_with_max_also_bounds_the_canary_and_is_kept_on_the_last_wave() -> None:
    bounded = MetricCheck(LATENCY.name, LATENCY.query, max=0.15, compare="baseline", max_ratio=1.2)
    done = run([bounded], latencies(0.2), bake=60.0)
    assert re.search(
        r"last: canary 0[.]2\d*, baseline 0[.]1\d*: 0[.]2\d* > max 0.15$",
        (done.result.checks[0].detail),
    )
    assert done.times == [0.0]
    last_wave = run([bounded], latencies(0.1), bake=20.0, baseline=())
    assert last_wave.result.verdict == "pass"
    assert last_wave.result.checks[0].detail == (
        "no unchanged hosts to compare with; by max/min: 3 measurement(s): 3 ok, 0 failed,"
        " 0 inconclusive"
    )


def test_compare_errors_count_against_failure_limit() -> None:
    def answer(query: str, t: float) -> Answer:
        return UNREACHABLE if t == 10.0 else 0.1

    done = run([LATENCY], answer, bake=60.0)
    assert done.result.verdict == "fail" and done.times == [0.0, 10.0]


def test_bake_problems_names_compare_checks_that_cannot_get_their_samples() -> None:
    spec = MetricsSpec(interval=10.0, checks=(LATENCY, error_rate(max=0.01)))
    assert bake_problems(spec, 40.0) == []
    assert bake_problems(spec, 30.0) == [
        "check 'latency-vs-baseline': min_samples 5 but a bake of 30 s at an interval of 10 s"
        " gives 4 sample(s): always inconclusive"
    ]


# --- placeholders -----------------------------------------------------------------------------


def promql_string_to_regex(text: str) -> str:
    """What Prometheus hands RE2: the PromQL string literal's escapes undone."""
    return re.sub(
        r'\\(\\|"|x[0-9a-f]{2})',
        lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1).startswith("x") else m.group(1),
        text,
    )


def full_match(regex: str, label: str) -> bool:
    # Prometheus anchors a label regex at both ends, like fullmatch.
    return re.fullmatch(promql_string_to_regex(regex), label) is not None


TRICKY = [
    "127.0.0.1:9100",
    "web-1.example.com:9100",
    'a+b*c?(d)|e{f}$g^h[i]j\\k"l',
    "tab\there",
    "ünïcode",
]


@pytest.mark.parametrize("label", TRICKY)
def test_expand_matches_exactly_the_hosts_labels(label: str) -> None:
    host = Host("h", label)
    regex = expand("{instances}", [host], [], "{host}")
    assert full_match(regex, label)
    assert not full_match(regex, label + "1")
    assert not full_match(regex, "x" + label)


def test_expand_does_not_mistake_127_0_0_1_for_127_0_0_11() -> None:
    hosts = [Host("a", "127.0.0.1"), Host("b", "127.0.0.2")]
    regex = expand("{instances}", hosts, [], "{host}:9100")
    assert regex == "127[.]0[.]0[.]1:9100|127[.]0[.]0[.]2:9100"
    for label in ("127.0.0.1:9100", "127.0.0.2:9100"):
        assert full_match(regex, label)
    for label in ("127.0.0.11:9100", "127.0.0.1:91001", "127x0x0x1:9100", "127.0.0.1:9100|x", ""):
        assert not full_match(regex, label)


def test_expand_fills_both_placeholders_and_leaves_promql_alone() -> None:
    query = (
        'sum by (le) (rate(x_bucket{job="node",instance=~"{instances}"}[1m]))'
        ' / on() sum(rate(x_count{__name__=~"x_.+",instance=~"{baseline_instances}"}[5m]))'
    )
    expanded = expand(query, CANARY, BASELINE, "{name}.lab:{host}")
    assert expanded == (
        'sum by (le) (rate(x_bucket{job="node",instance=~"web-1[.]lab:127[.]0[.]0[.]1"}[1m]))'
        ' / on() sum(rate(x_count{__name__=~"x_.+",instance=~"web-2[.]lab:127[.]0[.]0[.]2|'
        'web-3[.]lab:127[.]0[.]0[.]3"}[5m]))'
    )


def test_an_empty_host_list_matches_no_label_not_even_the_empty_one() -> None:
    regex = expand("{baseline_instances}", CANARY, [], "{host}:9100")
    assert regex == NO_HOST
    for label in ("", "127.0.0.1:9100", "\n", "[^\\s\\S]"):
        assert not full_match(regex, label)


def test_the_same_label_twice_appears_once() -> None:
    hosts = [Host("a", "10.0.0.1"), Host("b", "10.0.0.1")]
    assert expand("{instances}", hosts, [], "{host}:9100") == "10[.]0[.]0[.]1:9100"


def test_instance_label() -> None:
    assert instance_label(Host("web-1", "10.0.0.5"), "{name}:{host}:9100") == "web-1:10.0.0.5:9100"


REAL_WORLD = [
    ERROR_RATE,
    "histogram_quantile(0.9, sum by (le) (rate("
    'nginx_request_duration_seconds_bucket{instance=~"{instances}"}[1m])))',
    'sum(rate({__name__=~"nginx_http_requests_total|lab_http_requests_total",instance=~"{instances}"}[1m]))',
    'max(node_memory_Active_bytes{job="node",instance=~"{instances}"})'
    ' / max(node_memory_MemTotal_bytes{job="node", instance=~"{instances}"})',
    'sum(rate(x{status=~"5[0-9]{2}",instance=~"{instances}"}[5m]))'
    ' / sum(rate(x{instance=~"{baseline_instances}"}[5m]))',
    'avg_over_time(up{instance=~"{instances}"}[5m:30s] offset 1m)',
    'label_replace(up{instance=~"{instances}"}, "host", "$1", "instance", "(.*):.*")',
]


@pytest.mark.parametrize("query", REAL_WORLD)
def test_real_world_queries_have_no_problems(query: str) -> None:
    spec = MetricsSpec(checks=(MetricCheck("c", query, max=1.0),))
    assert template_problems(spec) == []


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        (
            MetricCheck("c", 'up{instance=~"{instance}"}', max=1),
            "check 'c': query: unknown placeholder {instance} (did you mean {instances}?)",
        ),
        (
            MetricCheck("c", 'up{instance=~"{hosts}"}', max=1),
            "check 'c': query: unknown placeholder {hosts}"
            " (known: {instances}, {baseline_instances})",
        ),
        (
            MetricCheck("c", "sum by (le) (x{le})", max=1),
            "check 'c': query: unknown placeholder {le} (known: {instances}, {baseline_instances})",
        ),
        (
            MetricCheck("c", "up"),
            "check 'c': give max: or min: (or compare: baseline with max_ratio:/min_ratio:)",
        ),
        (
            MetricCheck("c", 'up{instance=~"{instances}"}', compare="baseline"),
            "check 'c': compare: baseline needs max_ratio: or min_ratio:",
        ),
        (
            MetricCheck("c", "sum(up)", compare="baseline", max_ratio=1.2),
            "check 'c': compare: baseline needs {instances} in the query (it is measured for the"
            " canary hosts and again for the baseline hosts)",
        ),
        (MetricCheck("c", "up", max=1, min=2), "check 'c': min: 2 is above max: 1"),
        (
            MetricCheck("c", "up", max=1, on_empty="ignore"),
            "check 'c': on_empty: 'ignore': choose fail, pass or inconclusive",
        ),
        (
            MetricCheck("c", "up", max=1, instance="{hots}:9100"),
            "check 'c': instance: unknown placeholder {hots} in '{hots}:9100'"
            " (did you mean {host}?)",
        ),
    ],
)
def test_template_problems(check: MetricCheck, problem: str) -> None:
    assert problem in template_problems(MetricsSpec(checks=(check,)))


def test_an_instance_template_without_host_or_name_is_a_problem() -> None:
    assert template_problems(MetricsSpec(instance="localhost:9100")) == [
        "instance: 'localhost:9100' has neither {host} nor {name}: hosts look alike"
    ]
    assert template_problems(MetricsSpec(instance="{name}.example.com:9100")) == []


def test_compare_names_the_side_whose_query_went_wrong() -> None:
    two = [Sample({"instance": "127.0.0.2:9100"}, 0.1), Sample({"instance": "127.0.0.3:9100"}, 0.1)]

    def answer(query: str, t: float) -> Answer:
        return 0.1 if "127[.]0[.]0[.]1:" in query else two

    done = run([LATENCY], answer, bake=60.0)
    check = done.result.checks[0]
    assert check.verdict == "fail" and done.times == [0.0]
    assert check.detail.startswith("baseline query: the query gives 2 series where one is expected")
    down = run([LATENCY], lambda q, t: UNREACHABLE, bake=0.0)
    assert down.result.checks[0].measurements[0].detail == f"canary query: {UNREACHABLE}"
