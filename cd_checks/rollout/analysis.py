"""The metric gate's analysis: Prometheus queries measured while a wave bakes.

`analyse()` measures every check of a `MetricsSpec` right away, then every
`interval` seconds, the last time when `bake` seconds are over (Argo Rollouts'
AnalysisRun, for a plain host fleet):

- **Threshold checks** (`max:`/`min:`): each measurement is ok, failed (the
  value is beyond a bound), inconclusive (an empty result or NaN, when
  `on_empty` is "inconclusive"; "fail" and "pass" make it failed or ok) or an
  error (Prometheus could not answer; it counts as failed). A check fails as
  soon as its failed measurements exceed `failure_limit`; a query Prometheus
  cannot parse, one that gives a range vector, or one that gives several series
  where one is expected fails it at once, since asking again cannot help. At
  the end it is inconclusive when its inconclusive measurements exceed
  `inconclusive_limit`, else it passes.
- **Compare checks** (`compare: baseline`): each round queries the check twice,
  `{instances}` being the canary hosts, then the unchanged (baseline) hosts;
  at the end `judge()` decides on the two series (Mann-Whitney U, see
  `cd_checks.rollout.judge`). An empty side gives no sample (the judge's
  `min_samples` decides); errors count against `failure_limit` as above; a
  `max:`/`min:` on a compare check also bounds each canary value. Without
  baseline hosts (the last wave) the check is skipped ("no unchanged hosts to
  compare with"), or judged by its `max:`/`min:` alone when it has them.
- **Alerts**: at the start and every round, any of `alerts` firing fails the
  analysis. A failed read of the alerts is tolerated as often as the most
  tolerant check's `failure_limit` allows, then fails the analysis (it never
  passes silently).

The analysis stops early once its verdict is "fail" (a check failed or an alert
fired), so a bad canary is rolled back without waiting for the bake to end;
checks still running then are "skipped" with the reason. Overall: "fail" if any
check failed or the alerts did, else "inconclusive" if any check is, else
"pass". Prometheus trouble never raises: it is a measurement. This module talks
to Prometheus only through the client it is given, and sleeps only on the
given clock.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cd_checks.rollout.health import Clock
from cd_checks.rollout.inventory import Host
from cd_checks.rollout.judge import judge
from cd_checks.rollout.prometheus import PrometheusError, Sample
from cd_checks.rollout.spec import MetricCheck, MetricsSpec

QUERY_PLACEHOLDERS = ("instances", "baseline_instances")
INSTANCE_PLACEHOLDERS = ("host", "name")
# `{word}`: PromQL has no bare `{identifier}` (a matcher needs an operator, `by (le)` uses
# parentheses, a regex repetition `{2}` starts with a digit), so one is always a placeholder.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A regex no label value matches: the empty character class. `^$` would not do, since
# Prometheus anchors it and an empty value matches series that lack the label.
NO_HOST = r"[^\\s\\S]"
ALERTS = "alerts"

Report = Callable[[str, str, str], None]


class MetricSource(Protocol):
    """What the analysis asks of Prometheus (`cd_checks.rollout.prometheus.Prometheus`)."""

    def query(self, promql: str) -> list[Sample]: ...

    def firing_alerts(self, names: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True)
class Measurement:
    at: str  # ISO 8601 UTC
    value: float | None  # the canary's value (None: empty result or an error)
    baseline: float | None  # compare checks: the baseline's value
    status: str  # "ok" | "failed" | "inconclusive" | "error"
    detail: str = ""


@dataclass(frozen=True)
class CheckVerdict:
    name: str
    verdict: str  # "pass" | "fail" | "inconclusive" | "skipped"
    detail: str
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class AnalysisResult:
    verdict: str  # "pass" | "fail" | "inconclusive"
    checks: tuple[CheckVerdict, ...]
    alerts: tuple[str, ...]  # the firing alerts seen, in the order first seen
    alert_reads: CheckVerdict | None = None  # each read of the alerts; None without alerts

    @property
    def summary(self) -> str:
        """One line on why the verdict is what it is."""
        parts = [f"alert {name} firing" for name in self.alerts]
        if self.alert_reads is not None and self.alert_reads.verdict == "fail" and not parts:
            parts.append(f"alerts: {self.alert_reads.detail}")
        wanted = "fail" if self.verdict == "fail" else "inconclusive"
        parts += [f"{c.name}: {c.detail}" for c in self.checks if c.verdict == wanted]
        return "; ".join(parts) if self.verdict != "pass" else f"{len(self.checks)} check(s) pass"


def expand(
    template: str, canary: Sequence[Host], baseline: Sequence[Host], instance_template: str
) -> str:
    """`template` with `{instances}`/`{baseline_instances}` as regexes of the hosts' labels.

    The regex goes inside a PromQL double-quoted string (`instance=~"{instances}"`);
    Prometheus anchors it, so it matches exactly the hosts' instance labels.
    """
    values = {
        "instances": instances_regex(canary, instance_template),
        "baseline_instances": instances_regex(baseline, instance_template),
    }
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def instance_label(host: Host, instance_template: str) -> str:
    """The `instance` label of `host`: {host} is its address, {name} its inventory name."""
    names = {"host": host.address, "name": host.name}
    return _PLACEHOLDER.sub(lambda m: names.get(m.group(1), m.group(0)), instance_template)


def instances_regex(hosts: Sequence[Host], instance_template: str) -> str:
    """An alternation of the hosts' labels, escaped for RE2 in a PromQL string literal."""
    labels = dict.fromkeys(instance_label(h, instance_template) for h in hosts)
    return "|".join(_literal(label) for label in labels) if labels else NO_HOST


def _literal(label: str) -> str:
    return "".join(_LITERAL.get(c) or (c if c.isprintable() else f"\\x{ord(c):02x}") for c in label)


# RE2 metacharacters as one-character classes, readable in the query; `\ ^ [ ]` cannot be
# put in a class that simply, so they get a backslash (doubled for the string literal), and
# `"` the string literal's own escape. Control characters use the literal's \xHH escape.
_LITERAL = {c: f"[{c}]" for c in ".+*?()|{}$"} | {
    "\\": "\\\\\\\\",
    "^": "\\\\^",
    "[": "\\\\[",
    "]": "\\\\]",
    '"': '\\"',
}


def template_problems(spec: MetricsSpec) -> list[str]:
    """What `validate` reports about the metrics section: placeholders and check settings."""
    problems = _instance_problems(spec.instance, "instance")
    for check in spec.checks:
        where = f"check {check.name!r}"
        problems += [f"{where}: {p}" for p in _check_problems(check)]
        if check.instance is not None:
            problems += [f"{where}: {p}" for p in _instance_problems(check.instance, "instance")]
    return problems


def _check_problems(check: MetricCheck) -> list[str]:
    problems = [
        f"query: unknown placeholder {{{word}}}{_hint(word, QUERY_PLACEHOLDERS)}"
        for word in _unknown(check.query, QUERY_PLACEHOLDERS)
    ]
    if check.compare is None and check.max is None and check.min is None:
        problems.append("give max: or min: (or compare: baseline with max_ratio:/min_ratio:)")
    if check.compare is not None:
        if check.compare != "baseline":
            problems.append(f"compare: {check.compare!r}: the only choice is baseline")
        if check.max_ratio is None and check.min_ratio is None:
            problems.append("compare: baseline needs max_ratio: or min_ratio:")
        if "{instances}" not in check.query:
            problems.append(
                "compare: baseline needs {instances} in the query"
                " (it is measured for the canary hosts and again for the baseline hosts)"
            )
    if check.max is not None and check.min is not None and check.min > check.max:
        problems.append(f"min: {check.min:g} is above max: {check.max:g}")
    if check.on_empty not in ("fail", "pass", "inconclusive"):
        problems.append(f"on_empty: {check.on_empty!r}: choose fail, pass or inconclusive")
    return problems


def _instance_problems(template: str, key: str) -> list[str]:
    problems = [
        f"{key}: unknown placeholder {{{word}}} in {template!r}{_hint(word, INSTANCE_PLACEHOLDERS)}"
        for word in _unknown(template, INSTANCE_PLACEHOLDERS)
    ]
    if not any(f"{{{word}}}" in template for word in INSTANCE_PLACEHOLDERS):
        problems.append(f"{key}: {template!r} has neither {{host}} nor {{name}}: hosts look alike")
    return problems


def _unknown(template: str, known: Sequence[str]) -> list[str]:
    found = dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(template))
    return [word for word in found if word not in known]


def _hint(word: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    choices = ", ".join(f"{{{k}}}" for k in known)
    return f" (did you mean {{{close[0]}}}?)" if close else f" (known: {choices})"


def bake_problems(spec: MetricsSpec, bake: float) -> list[str]:
    """Compare checks that can never get `min_samples` samples in `bake` seconds."""
    rounds = 1 + (math.ceil(bake / spec.interval) if spec.interval > 0 and bake > 0 else 0)
    return [
        f"check {c.name!r}: min_samples {c.min_samples} but a bake of {bake:g} s at an"
        f" interval of {spec.interval:g} s gives {rounds} sample(s): always inconclusive"
        for c in spec.checks
        if c.compare is not None and c.min_samples > rounds
    ]


def alerts_before(spec: MetricsSpec, client: MetricSource) -> list[str]:
    """What stops a stage from starting: one line per firing alert, or why none could be read.

    Empty: none of `spec.alerts` is firing (or there are none to watch).
    """
    if not spec.alerts:
        return []
    try:
        return [f"alert {name} is firing" for name in client.firing_alerts(spec.alerts)]
    except PrometheusError as exc:
        return [f"cannot tell whether alerts are firing: {exc}"]


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class _Watch:
    """What one check has measured so far (mutable while the analysis runs)."""

    check: MetricCheck
    canary_query: str
    baseline_query: str | None  # compare checks with baseline hosts
    measurements: list[Measurement] = field(default_factory=list)
    canary: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    failed: int = 0
    inconclusive: int = 0
    verdict: CheckVerdict | None = None  # set once decided

    def record(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        if measurement.status in ("failed", "error"):
            self.failed += 1
        elif measurement.status == "inconclusive" and self.baseline_query is None:
            self.inconclusive += 1

    def decide(self, verdict: str, detail: str) -> None:
        self.verdict = CheckVerdict(self.check.name, verdict, detail, tuple(self.measurements))


class _Verdict(Exception):
    """A measurement that decides its check at once (the query can never give an answer)."""


def analyse(
    spec: MetricsSpec,
    canary: Sequence[Host],
    baseline: Sequence[Host],
    *,
    bake: float,
    client: MetricSource,
    clock: Clock,
    report: Report,
    now: Callable[[], str] = _utc_now,
) -> AnalysisResult:
    """Measure `spec`'s checks and alerts while the canary bakes (rules: module docstring)."""
    watches, skipped = _watches(spec, canary, baseline)
    alerts = _Alerts(spec.alerts, _tolerance(spec), report, now)
    start = clock.monotonic()
    while watches or spec.alerts:
        alerts.read(client)
        for watch in watches:
            if watch.verdict is None and not alerts.failed:
                _measure(watch, client, report, now)
        if _stopped(watches, alerts):
            break
        if not spec.alerts and all(w.verdict is not None for w in watches):
            break  # nothing left to measure
        elapsed = clock.monotonic() - start
        if elapsed >= bake:
            break
        clock.sleep(_next_round(elapsed, spec.interval, bake) - elapsed)
    return _result(spec, watches, skipped, alerts, report)


def _next_round(elapsed: float, interval: float, bake: float) -> float:
    if interval <= 0:
        return bake
    return min(bake, (math.floor(elapsed / interval) + 1) * interval)


def _watches(
    spec: MetricsSpec, canary: Sequence[Host], baseline: Sequence[Host]
) -> tuple[list[_Watch], dict[str, CheckVerdict]]:
    watches: list[_Watch] = []
    skipped: dict[str, CheckVerdict] = {}
    for check in spec.checks:
        instance = check.instance or spec.instance
        query = expand(check.query, canary, baseline, instance)
        if check.compare is None:
            watches.append(_Watch(check, query, None))
        elif baseline:
            others = expand(check.query, baseline, baseline, instance)
            watches.append(_Watch(check, query, others))
        elif check.max is not None or check.min is not None:
            watches.append(_Watch(check, query, None))
        else:
            why = "no unchanged hosts to compare with"
            skipped[check.name] = CheckVerdict(check.name, "skipped", why, ())
    return watches, skipped


def _measure(watch: _Watch, client: MetricSource, report: Report, now: Callable[[], str]) -> None:
    """One measurement of `watch`'s check, reported; it may decide the check."""
    fatal = False
    try:
        if watch.baseline_query is None:
            measurement = _threshold(watch.check, _value(client, watch.canary_query), now())
        else:
            measurement = _pair(watch, client, now())
    except PrometheusError as exc:
        measurement, fatal = Measurement(now(), None, None, "error", str(exc)), exc.permanent
    except _Verdict as exc:
        measurement, fatal = Measurement(now(), None, None, "failed", str(exc)), True
    watch.record(measurement)
    report(watch.check.name, measurement.status, measurement.detail)
    if fatal:
        watch.decide("fail", measurement.detail)
    _limit(watch, report)


def _limit(watch: _Watch, report: Report) -> None:
    """Fail the check once its failed measurements exceed failure_limit."""
    check = watch.check
    if watch.verdict is None and watch.failed > check.failure_limit:
        last = next(
            m.detail for m in reversed(watch.measurements) if m.status in ("failed", "error")
        )
        watch.decide(
            "fail",
            f"{watch.failed} of {len(watch.measurements)} measurement(s) failed"
            f" (failure_limit {check.failure_limit}); last: {last}",
        )
    if watch.verdict is not None and watch.verdict.verdict == "fail":
        report(check.name, "fail", watch.verdict.detail)


def _value(client: MetricSource, query: str) -> float | None:
    """The one value `query` gives now; None for an empty result."""
    samples = client.query(query)
    if len(samples) > 1:
        shown = ", ".join(_labels(s) for s in samples[:3])
        raise _Verdict(
            f"the query gives {len(samples)} series where one is expected ({shown}"
            f"{', ...' if len(samples) > 3 else ''}): aggregate them, e.g. sum(...) or max(...)"
        )
    return samples[0].value if samples else None


def _labels(sample: Sample) -> str:
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(sample.labels.items())) + "}"


def _threshold(check: MetricCheck, value: float | None, at: str) -> Measurement:
    if value is None or math.isnan(value):
        status = {"fail": "failed", "pass": "ok"}.get(check.on_empty, "inconclusive")
        what = "empty result" if value is None else "NaN"
        return Measurement(at, None, None, status, f"{what} (on_empty: {check.on_empty})")
    return Measurement(at, value, None, *_bounds(check, value))


def _bounds(check: MetricCheck, value: float) -> tuple[str, str]:
    if check.max is not None and value > check.max:
        return "failed", f"{value:.4g} > max {check.max:.4g}"
    if check.min is not None and value < check.min:
        return "failed", f"{value:.4g} < min {check.min:.4g}"
    bounds = [f"max {check.max:.4g}"] if check.max is not None else []
    bounds += [f"min {check.min:.4g}"] if check.min is not None else []
    return "ok", f"{value:.4g}" + (f" ({', '.join(bounds)})" if bounds else "")


def _pair(watch: _Watch, client: MetricSource, at: str) -> Measurement:
    assert watch.baseline_query is not None
    ours = _side(client, watch.canary_query, "canary")
    theirs = _side(client, watch.baseline_query, "baseline")
    finite = [v for v in (ours, theirs) if v is not None and math.isfinite(v)]
    if ours is not None and math.isfinite(ours):
        watch.canary.append(ours)
    if theirs is not None and math.isfinite(theirs):
        watch.baseline.append(theirs)
    detail = f"canary {_shown(ours)}, baseline {_shown(theirs)}"
    if ours is not None and not math.isnan(ours):
        status, bounded = _bounds(watch.check, ours)
        if status == "failed":
            return Measurement(at, ours, theirs, "failed", f"{detail}: {bounded}")
    status = "ok" if len(finite) == 2 else "inconclusive"
    return Measurement(at, ours, theirs, status, detail)


def _side(client: MetricSource, query: str, side: str) -> float | None:
    try:
        return _value(client, query)
    except PrometheusError as exc:
        raise PrometheusError(f"{side} query: {exc}", exc.kind) from None
    except _Verdict as exc:
        raise _Verdict(f"{side} query: {exc}") from None


def _shown(value: float | None) -> str:
    return "empty" if value is None else f"{value:.4g}"


def _final(watch: _Watch) -> CheckVerdict:
    if watch.verdict is not None:
        return watch.verdict
    check, count = watch.check, len(watch.measurements)
    if watch.baseline_query is not None:
        judgement = judge(
            watch.canary,
            watch.baseline,
            max_ratio=check.max_ratio,
            min_ratio=check.min_ratio,
            min_samples=check.min_samples,
        )
        return CheckVerdict(
            check.name, judgement.verdict, judgement.detail, tuple(watch.measurements)
        )
    summary = f"{count} measurement(s): {count - watch.failed - watch.inconclusive} ok"
    summary += f", {watch.failed} failed, {watch.inconclusive} inconclusive"
    if check.compare is not None:
        summary = f"no unchanged hosts to compare with; by max/min: {summary}"
    if watch.inconclusive > check.inconclusive_limit:
        last = next(m.detail for m in reversed(watch.measurements) if m.status == "inconclusive")
        detail = f"{summary} (inconclusive_limit {check.inconclusive_limit}); last: {last}"
        return CheckVerdict(check.name, "inconclusive", detail, tuple(watch.measurements))
    return CheckVerdict(check.name, "pass", summary, tuple(watch.measurements))


@dataclass
class _Alerts:
    """The reads of the alerts that must not be firing (mutable while the analysis runs)."""

    names: tuple[str, ...]
    tolerance: int  # failed reads allowed
    report: Report
    now: Callable[[], str]
    firing: dict[str, None] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    errors: int = 0
    failed: bool = False
    why: str = ""

    def read(self, client: MetricSource) -> None:
        if not self.names or self.failed:
            return
        try:
            firing = client.firing_alerts(self.names)
        except PrometheusError as exc:
            self.errors += 1
            self._record("error", str(exc))
            if self.errors > self.tolerance:
                self._fail(f"{self.errors} failed read(s) of the alerts; last: {exc}")
            return
        if firing:
            self.firing.update(dict.fromkeys(firing))
            self._record("failed", f"firing: {', '.join(firing)}")
            self._fail(f"firing: {', '.join(firing)}")
        else:
            self._record("ok", f"none firing of {', '.join(self.names)}")

    def verdict(self) -> CheckVerdict | None:
        if not self.names:
            return None
        if self.failed:
            return CheckVerdict(ALERTS, "fail", self.why, tuple(self.measurements))
        detail = f"{len(self.measurements)} read(s), none of {', '.join(self.names)} firing"
        if self.errors:
            detail += f" ({self.errors} failed read(s) tolerated)"
        return CheckVerdict(ALERTS, "pass", detail, tuple(self.measurements))

    def _record(self, status: str, detail: str) -> None:
        self.measurements.append(Measurement(self.now(), None, None, status, detail))
        self.report(ALERTS, status, detail)

    def _fail(self, why: str) -> None:
        self.failed, self.why = True, why
        self.report(ALERTS, "fail", why)


def _tolerance(spec: MetricsSpec) -> int:
    """Failed reads of the alerts allowed: as many as the most tolerant check allows."""
    return max((c.failure_limit for c in spec.checks), default=0)


def _stopped(watches: Sequence[_Watch], alerts: _Alerts) -> str:
    """Why the analysis stops before the end of the bake ("" while it goes on)."""
    if alerts.failed:
        return f"alerts: {alerts.why}"
    failed = [
        w.check.name for w in watches if w.verdict is not None and w.verdict.verdict == "fail"
    ]
    return f"check {failed[0]!r} failed" if failed else ""


def _result(
    spec: MetricsSpec,
    watches: Sequence[_Watch],
    skipped: dict[str, CheckVerdict],
    alerts: _Alerts,
    report: Report,
) -> AnalysisResult:
    stopped = _stopped(watches, alerts)
    verdicts = dict(skipped)
    reported = {w.check.name for w in watches if w.verdict is not None}  # while measuring
    for watch in watches:
        if watch.verdict is None and stopped:
            count = len(watch.measurements)
            watch.decide("skipped", f"stopped after {count} measurement(s): {stopped}")
        verdicts[watch.check.name] = watch.verdict or _final(watch)
    for check in spec.checks:
        if check.name not in reported:
            report(check.name, verdicts[check.name].verdict, verdicts[check.name].detail)
    checks = tuple(verdicts[c.name] for c in spec.checks)
    alert_reads = alerts.verdict()
    if alert_reads is not None and not alerts.failed:
        report(ALERTS, alert_reads.verdict, alert_reads.detail)
    return AnalysisResult(
        _overall(checks, alerts.failed), checks, tuple(alerts.firing), alert_reads
    )


def _overall(checks: Sequence[CheckVerdict], alerts_failed: bool) -> str:
    verdicts = {c.verdict for c in checks}
    if alerts_failed or "fail" in verdicts:
        return "fail"
    return "inconclusive" if "inconclusive" in verdicts else "pass"
