"""The `rollout:` section of cd-checks.yml as typed, frozen objects.

The section was validated against the package schema by `cd_checks.config`;
this module only adds the checks a schema cannot express (unique stage
names, increasing wave percentages, at least one way to apply) and turns the
raw dict into values. It may not read files, run tools or touch hosts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from cd_checks.errors import ConfigError

DEFAULT_STATE_DIR = ".cd-checks/rollout"
DEFAULT_WAVES = (100,)
# How long one apply (one wave's ansible-playbook or command) may run before it is stopped
# and counted as failed: CodeDeploy's default for a lifecycle event.
DEFAULT_APPLY_TIMEOUT = 3600.0
# How long one run of the health tests may take (each retry is a run).
DEFAULT_TESTINFRA_TIMEOUT = 600.0


@dataclass(frozen=True)
class AnsibleApply:
    """Run `ansible-playbook -i INVENTORY PLAYBOOK --limit HOSTS [--tags TAGS]`."""

    playbook: str
    extra_args: tuple[str, ...] = ()
    forks: int | None = None
    tags: tuple[str, ...] = ()  # only the tasks with these tags (a change type's part)
    timeout: float = DEFAULT_APPLY_TIMEOUT  # seconds; then stopped, and the wave failed


@dataclass(frozen=True)
class CommandApply:
    """Run a command; `{hosts}`, `{revision}`, `{stage}`, `{wave}` are substituted per argument."""

    argv: tuple[str, ...]
    timeout: float = DEFAULT_APPLY_TIMEOUT  # seconds; then stopped, and the wave failed


Apply = AnsibleApply | CommandApply


@dataclass(frozen=True)
class Stage:
    """One stage: a group, an optional share of it (`percent`) and its waves (cumulative %)."""

    name: str
    group: str
    environment: str
    percent: float | None = None
    waves: tuple[int, ...] = DEFAULT_WAVES
    metrics: MetricsSpec | None = None  # the stage's own metric gate; None: the pipeline's
    # A cap on `percent`'s rounding up (floor(max_percent x hosts)), or an exact host count.
    max_percent: float | None = None
    count: int | None = None


@dataclass(frozen=True)
class HttpProbe:
    url: str
    status: int = 200
    contains: str | None = None
    timeout: float = 5.0


@dataclass(frozen=True)
class MetricCheck:
    """One Prometheus query of a metric gate, judged per measurement or against the baseline."""

    name: str
    query: str  # PromQL with the placeholders {instances} and {baseline_instances}
    max: float | None = None  # a measurement fails when the value is above
    min: float | None = None  # ... or below
    on_empty: str = "inconclusive"  # "fail" | "pass" | "inconclusive": empty result or NaN
    failure_limit: int = 0  # failed measurements allowed (Argo Rollouts' failureLimit)
    inconclusive_limit: int = 0  # inconclusive measurements allowed (inconclusiveLimit)
    compare: str | None = None  # "baseline": the canary against the unchanged hosts
    max_ratio: float | None = None  # compare: fails when canary/baseline is above, significantly
    min_ratio: float | None = None  # compare: ... or below
    min_samples: int = 5  # compare: fewer samples on either side is inconclusive
    instance: str | None = None  # instance-label template; None: MetricsSpec.instance


@dataclass(frozen=True)
class MetricsSpec:
    """The `health.metrics` section: where Prometheus is and what to ask it while baking."""

    prometheus: str | None = None  # base URL; None: env CD_CHECKS_PROMETHEUS_URL
    interval: float = 10.0  # seconds between measurements while baking
    timeout: float = 10.0  # seconds per request to Prometheus
    instance: str = "{host}:9100"  # {host}: inventory address, {name}: inventory name
    checks: tuple[MetricCheck, ...] = ()
    alerts: tuple[str, ...] = ()  # alert names that must not be firing

    @property
    def active(self) -> bool:
        return bool(self.checks or self.alerts)


@dataclass(frozen=True)
class HealthSpec:
    testinfra: str | None = None
    testinfra_backend: str = "ssh"
    # One run of the health tests; then stopped with its workers, and every host failed.
    testinfra_timeout: float = DEFAULT_TESTINFRA_TIMEOUT
    http: tuple[HttpProbe, ...] = ()
    bake_seconds: float = 30.0
    retries: int = 3
    max_failed_percent: float = 0.0
    metrics: MetricsSpec = MetricsSpec()
    # An HTTP probe fails when more than this share of its attempts over the bake failed.
    max_failure_rate: float = 0.5

    @property
    def has_checks(self) -> bool:
        return self.testinfra is not None or bool(self.http) or self.metrics.active


@dataclass(frozen=True)
class RolloutSpec:
    inventory: str
    apply: Apply
    stages: tuple[Stage, ...]
    health: HealthSpec = HealthSpec()
    automatic_rollback: bool = True
    state_dir: str = DEFAULT_STATE_DIR
    pass_env: tuple[str, ...] = ()  # secret-looking variables the applier and tests still get
    on_failure: str = "rollback"  # a failed gate: "rollback" | "pause" | "halt"
    on_inconclusive: str = "pause"  # an inconclusive metric gate: the same choices
    markers: str | None = None  # a node_exporter textfile (.prom) for deploy markers

    def metrics_of(self, stage: str) -> MetricsSpec:
        """The metric gate of `stage`: its own section, else the pipeline's."""
        own = self.stage(stage).metrics
        return own if own is not None else self.health.metrics

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        known = ", ".join(s.name for s in self.stages)
        raise ConfigError(f"rollout: unknown stage {name!r} (stages: {known})")

    def environments(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.environment for s in self.stages))

    def stages_of(self, environment: str) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.environment == environment)


def from_section(raw: Mapping[str, Any]) -> RolloutSpec:
    """Build the spec from the validated `rollout:` section; a missing section is an error."""
    if not raw:
        raise ConfigError("cd-checks.yml has no rollout: section (see the README, 'Rollouts')")
    with _at("health"):
        health = _health(raw.get("health") or {})
    stages = []
    for index, stage in enumerate(raw["stages"]):
        with _at("stages", index):
            stages.append(_stage(stage, health.metrics))
    _unique_names(tuple(stages))
    rollback = raw.get("rollback") or {}
    return RolloutSpec(
        inventory=raw["inventory"],
        apply=_apply(raw["apply"]),
        stages=tuple(stages),
        health=health,
        automatic_rollback=bool(rollback.get("automatic", True)),
        state_dir=raw.get("state_dir", DEFAULT_STATE_DIR),
        pass_env=tuple(raw.get("pass_env", ())),
        on_failure=raw.get("on_failure", "rollback"),
        on_inconclusive=raw.get("on_inconclusive", "pause"),
        markers=raw.get("markers"),
    )


def _positive(value: Any, key: str) -> float:
    """A duration that must be more than zero (a timeout)."""
    duration = seconds(value, key)
    if duration <= 0:
        raise ConfigError(f"rollout: {key}: must be more than 0, got {value!r}")
    return duration


def _apply(raw: Mapping[str, Any]) -> Apply:
    timeout = _positive(raw.get("timeout", DEFAULT_APPLY_TIMEOUT), "apply.timeout")
    if "ansible" in raw:
        ansible = raw["ansible"]
        return AnsibleApply(
            playbook=ansible["playbook"],
            extra_args=tuple(ansible.get("extra_args", ())),
            forks=ansible.get("forks"),
            tags=tuple(ansible.get("tags", ())),
            timeout=timeout,
        )
    return CommandApply(argv=tuple(raw["command"]), timeout=timeout)


def _stage(raw: Mapping[str, Any], pipeline: MetricsSpec) -> Stage:
    waves = tuple(int(w.rstrip("%")) for w in raw.get("waves", ("100%",)))
    if any(b <= a for a, b in zip(waves, waves[1:], strict=False)):
        raise ConfigError(
            f"rollout: stage {raw['name']!r}: waves must increase (they are cumulative), "
            f"got {list(raw['waves'])}"
        )
    environment = raw.get("environment", raw["hosts"])
    _directory_name(raw["name"], environment)
    if raw.get("count") is not None and raw.get("percent") is not None:
        raise ConfigError(
            f"rollout: stage {raw['name']!r}: give `percent` (and `max_percent`) or `count`, "
            "not both"
        )
    return Stage(
        name=raw["name"],
        group=raw["hosts"],
        environment=environment,
        percent=raw.get("percent"),
        waves=waves,
        metrics=_stage_metrics(raw.get("metrics"), pipeline),
        max_percent=raw.get("max_percent"),
        count=raw.get("count"),
    )


def _stage_metrics(
    raw: Mapping[str, Any] | bool | None, pipeline: MetricsSpec
) -> MetricsSpec | None:
    """A stage's `metrics:`: false turns the gate off, a mapping overrides the pipeline's keys."""
    if raw is None or raw is True:
        return None
    if raw is False:
        return MetricsSpec()
    with _at("metrics"):
        own = _metrics(raw)
    keys = ("prometheus", "interval", "timeout", "instance", "checks", "alerts")
    return replace(pipeline, **{key: getattr(own, key) for key in keys if key in raw})


def _directory_name(stage: str, environment: str) -> None:
    # An environment names its directory under the state directory (lock, run record):
    # it may not lead anywhere else.
    if environment in ("", ".", "..") or any(c in environment for c in "/\\\0"):
        raise ConfigError(
            f"rollout: stage {stage!r}: environment {environment!r} is not a plain name "
            "(it names a directory of rollout.state_dir); set `environment:` to one"
        )


def _unique_names(stages: tuple[Stage, ...]) -> None:
    seen: set[str] = set()
    for stage in stages:
        if stage.name in seen:
            raise ConfigError(f"rollout: stage name {stage.name!r} is used twice")
        seen.add(stage.name)


def _health(raw: Mapping[str, Any]) -> HealthSpec:
    with _at("metrics"):
        metrics = _metrics(raw.get("metrics") or {})
    return HealthSpec(
        testinfra=raw.get("testinfra"),
        testinfra_backend=raw.get("testinfra_backend", "ssh"),
        testinfra_timeout=_positive(
            raw.get("testinfra_timeout", DEFAULT_TESTINFRA_TIMEOUT), "health.testinfra_timeout"
        ),
        http=tuple(
            HttpProbe(
                url=p["url"],
                status=int(p.get("status", 200)),
                contains=p.get("contains"),
                timeout=float(p.get("timeout", 5.0)),
            )
            for p in raw.get("http", ())
        ),
        bake_seconds=float(raw.get("bake_seconds", 30.0)),
        retries=int(raw.get("retries", 3)),
        max_failed_percent=float(raw.get("max_failed_percent", 0.0)),
        metrics=metrics,
        max_failure_rate=float(raw.get("max_failure_rate", 0.5)),
    )


@contextmanager
def _at(*keys: str | int) -> Iterator[None]:
    """Prefix the `ConfigError.at` of a mistake raised inside with `keys`."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError(str(exc), at=(*keys, *exc.at)) from exc


def _metrics(raw: Mapping[str, Any]) -> MetricsSpec:
    checks = []
    for index, check in enumerate(raw.get("checks", ())):
        with _at("checks", index):
            checks.append(_metric_check(check))
    names = [c.name for c in checks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"rollout: metric check name {twice[0]!r} is used twice")
    return MetricsSpec(
        prometheus=raw.get("prometheus"),
        interval=seconds(raw.get("interval", 10.0), "health.metrics.interval"),
        timeout=seconds(raw.get("timeout", 10.0), "health.metrics.timeout"),
        instance=raw.get("instance", "{host}:9100"),
        checks=tuple(checks),
        alerts=tuple(raw.get("alerts", ())),
    )


def _metric_check(raw: Mapping[str, Any]) -> MetricCheck:
    where = f"rollout: metric check {raw['name']!r}"
    check = MetricCheck(
        name=raw["name"],
        query=raw["query"],
        max=_number(raw.get("max")),
        min=_number(raw.get("min")),
        on_empty=raw.get("on_empty", "inconclusive"),
        failure_limit=int(raw.get("failure_limit", 0)),
        inconclusive_limit=int(raw.get("inconclusive_limit", 0)),
        compare=raw.get("compare"),
        max_ratio=_number(raw.get("max_ratio")),
        min_ratio=_number(raw.get("min_ratio")),
        min_samples=int(raw.get("min_samples", 5)),
        instance=raw.get("instance"),
    )
    if check.compare is None and check.max is None and check.min is None:
        raise ConfigError(f"{where}: give `max:` or `min:` (or `compare: baseline`)")
    if check.compare is not None and check.max_ratio is None and check.min_ratio is None:
        raise ConfigError(f"{where}: `compare: baseline` needs `max_ratio:` or `min_ratio:`")
    if check.compare is None and (check.max_ratio is not None or check.min_ratio is not None):
        raise ConfigError(f"{where}: `max_ratio`/`min_ratio` go with `compare: baseline`")
    if check.max is not None and check.min is not None and check.min > check.max:
        raise ConfigError(f"{where}: `min: {check.min:g}` is above `max: {check.max:g}`")
    return check


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(value: Any, key: str) -> float:
    """A duration: a number of seconds or Prometheus-style text ("500ms", "10s", "1m", "1h")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        number = text.removesuffix(unit)
        if number != text:
            try:
                return float(number) * _UNITS[unit]
            except ValueError:
                break
    raise ConfigError(f"rollout: {key}: {value!r} is not a duration (e.g. 10s, 1m, 500ms)")
