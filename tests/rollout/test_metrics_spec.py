"""`health.metrics`, stage `metrics:` and the failure policy, read through the package schema."""

from __future__ import annotations

from typing import Any

import pytest

from cd_checks.config import validate_raw
from cd_checks.errors import ConfigError
from cd_checks.rollout.spec import from_section, seconds

BASE: dict[str, Any] = {
    "inventory": "hosts.yml",
    "apply": {"command": ["deploy", "{hosts}"]},
    "stages": [
        {"name": "staging", "hosts": "staging", "metrics": False},
        {"name": "canary", "hosts": "production", "percent": 10},
        {"name": "production", "hosts": "production", "metrics": {"interval": "30s"}},
    ],
}
ISSUE_EXAMPLE = {
    "prometheus": "http://127.0.0.1:9090",
    "interval": "10s",
    "checks": [
        {
            "name": "error-rate",
            "query": 'sum(rate(nginx_http_requests_total{status=~"5..",instance=~"{instances}"}'
            '[1m])) / sum(rate(nginx_http_requests_total{instance=~"{instances}"}[1m]))',
            "max": 0.01,
            "failure_limit": 1,
        },
        {
            "name": "latency-vs-baseline",
            "query": "histogram_quantile(0.9, sum by (le) (rate("
            'nginx_request_duration_seconds_bucket{instance=~"{instances}"}[1m])))',
            "compare": "baseline",
            "max_ratio": 1.2,
        },
    ],
}


def spec_of(metrics: dict[str, Any], **rollout: Any) -> Any:
    raw = validate_raw(
        {"rollout": {**BASE, "health": {"metrics": metrics}, **rollout}}, "cd-checks.yml"
    )
    return from_section(raw["rollout"])


def test_the_issue_example_reads_with_its_defaults() -> None:
    spec = spec_of(ISSUE_EXAMPLE, on_failure="pause")
    metrics = spec.health.metrics
    assert metrics.prometheus == "http://127.0.0.1:9090" and metrics.interval == 10.0
    errors, latency = metrics.checks
    assert errors.max == 0.01 and errors.failure_limit == 1 and errors.on_empty == "inconclusive"
    assert latency.compare == "baseline" and latency.max_ratio == 1.2 and latency.min_samples == 5
    assert spec.on_failure == "pause" and spec.on_inconclusive == "pause"
    assert metrics.instance == "{host}:9100"


def test_stages_turn_the_gate_off_or_override_single_keys() -> None:
    spec = spec_of(ISSUE_EXAMPLE)
    assert not spec.metrics_of("staging").active
    assert spec.metrics_of("canary") == spec.health.metrics
    production = spec.metrics_of("production")
    assert production.interval == 30.0 and production.checks == spec.health.metrics.checks


@pytest.mark.parametrize(
    ("value", "expected"), [(5, 5.0), (0.5, 0.5), ("10s", 10.0), ("1m", 60.0), ("250ms", 0.25)]
)
def test_durations(value: object, expected: float) -> None:
    assert seconds(value, "x") == expected


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"checks": [{"name": "a", "query": "up"}]}, "give `max:` or `min:`"),
        (
            {"checks": [{"name": "a", "query": "up", "compare": "baseline"}]},
            "needs `max_ratio:` or `min_ratio:`",
        ),
        ({"checks": [{"name": "a", "query": "up", "max_ratio": 2, "max": 1}]}, "go with `compare"),
        ({"checks": [{"name": "a", "query": "up", "min": 2, "max": 1}]}, "is above `max: 1`"),
        (
            {
                "checks": [
                    {"name": "a", "query": "up", "max": 1},
                    {"name": "a", "query": "up", "max": 2},
                ]
            },
            "'a' is used twice",
        ),
        ({"interval": "10 parsecs"}, "interval"),
        ({"prometheus": "file:///etc/passwd"}, "prometheus"),
        ({"checks": [{"name": "a", "query": "up", "max": 1, "on_empty": "maybe"}]}, "on_empty"),
        ({"token": "s3cret"}, "unknown key 'token'"),
    ],
)
def test_mistakes_are_one_clear_error(metrics: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
        spec_of(metrics)
    assert "s3cret" not in str(info.value)


def test_an_unknown_failure_policy_is_an_error() -> None:
    with pytest.raises(ConfigError, match="on_failure"):
        spec_of({}, on_failure="retry")
