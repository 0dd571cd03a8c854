"""Metric gates end to end: a real Prometheus scraping real traffic to a real lab fleet.

`cd-checks lab up --monitoring` runs Debian's prometheus, an nginx exporter per host and a
traffic generator that sends requests to every host's `/` and counts the answers per status
(`lab_http_requests_total{instance, status}`). The config repository deploys the example
site with ansible over ssh; the gate runs testinfra, the HTTP probe of `/healthz` and two
metric checks: an error-rate threshold and an errors-versus-baseline comparison.

The bad change answers 500 on a third of the requests to `/`, while `/healthz` and every
testinfra test stay green: only the metric gate can see it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cd_checks.lab import Lab
from cd_checks.lab_traffic import USER_AGENT
from tests.conftest import REPO, init_repo
from tests.lab_fixture import lab_fleet
from tests.rollout.repo_files import YAMLLINT
from tests.rollout.test_e2e import World, _run_main

pytestmark = pytest.mark.lab

ERRORS = 'lab_http_requests_total{status=~"5..",instance=~"{instances}"}[3s]'
ALL_REQUESTS = 'lab_http_requests_total{instance=~"{instances}"}[3s]'
METRICS = {
    "interval": "1s",
    "instance": "{host}:80",
    "alerts": ["LabHostDown"],
    "checks": [
        {
            "name": "error-rate",
            "query": f"(sum(rate({ERRORS})) or vector(0)) / sum(rate({ALL_REQUESTS}))",
            "max": 0.05,
            "failure_limit": 1,
        },
        {
            "name": "errors-vs-baseline",
            "query": f"sum(rate({ERRORS})) or vector(0)",
            "compare": "baseline",
            "max_ratio": 2,
        },
    ],
}
STAGES = [
    {"name": "canary", "hosts": "production", "percent": 20},
    {"name": "production", "hosts": "production"},
]
# About a third of the traffic generator's requests to / fail (request ids are random hex);
# testinfra's own `curl /`, /healthz and the deployed file look as healthy as ever.
FLAKY = (
    "    location / {\n",
    "    location / {\n"
    '        set $flaky "";\n'
    '        if ($request_id ~ "^[0-4]") { set $flaky "$http_user_agent"; }\n'
    f'        if ($flaky = "{USER_AGENT}") {{ return 500 "flaky\\n"; }}\n',
)


def config(prometheus: str, **extra: Any) -> str:
    section = {
        "inventory": "inventory/hosts.yml",
        "apply": {"ansible": {"playbook": "deploy/site.yml"}},
        "stages": STAGES,
        "health": {
            "testinfra": "tests/health/",
            "http": [{"url": "http://{host}/healthz", "status": 200}],
            "bake_seconds": 4,
            "retries": 1,
            "metrics": {"prometheus": prometheus, **METRICS},
        },
        **extra,
    }
    return yaml.safe_dump({"rollout": section}, sort_keys=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=6, staging=1, monitoring=True)


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> World:
    assert lab.monitoring is not None
    root = tmp_path_factory.mktemp("metrics-repo")
    markers = tmp_path_factory.mktemp("node-exporter") / "cd-checks.prom"
    shutil.copytree(REPO / "examples/deploy", root / "deploy")
    shutil.copytree(REPO / "examples/tests/health/nginx", root / "tests/health")
    (root / "cd-checks.yml").write_text(config(lab.monitoring.prometheus_url, markers=str(markers)))
    (root / ".gitignore").write_text(".cd-checks/\n")
    (root / ".yamllint").write_text(YAMLLINT)
    init_repo(root)
    return World(lab, root, tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="module")
def known_good(world: World) -> dict[str, Any]:
    """A good change through canary and production: the revision bad ones go back to."""
    revision = world.commit("a good change")
    code, out = _run(world, "rollout", "run", "--all", "--format", "json")
    return {"code": code, "result": json.loads(out), "revision": revision}


def _run(world: World, *args: str) -> tuple[int, str]:
    return _run_main(world.args(*args))


def checks_of(wave: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in wave["gate"]["metrics"]["checks"]}


def test_a_good_change_passes_every_metric_gate(world: World, known_good: dict[str, Any]) -> None:
    assert known_good["code"] == 0, known_good["result"]
    canary, production = known_good["result"]["waves"]
    assert canary["gate"]["metrics"]["verdict"] == "pass"
    measured = checks_of(canary)["error-rate"]["measurements"]
    assert len(measured) >= 4 and all(m["status"] == "ok" for m in measured)
    assert all(m["value"] == 0 for m in measured[-3:])  # real traffic, no errors
    assert checks_of(canary)["errors-vs-baseline"]["verdict"] == "pass"
    # The last wave has no unchanged host left to compare with.
    assert checks_of(production)["errors-vs-baseline"]["verdict"] == "skipped"
    for host in world.lab.hosts[1:]:
        assert world.served(host.name)[1].endswith(f"revision {known_good['revision']}\n")
    # The deploy markers node_exporter's textfile collector would export:
    markers = yaml.safe_load((world.root / "cd-checks.yml").read_text())["rollout"]["markers"]
    finished = {
        (s.labels["stage"], s.labels["outcome"], s.labels["revision"])
        for family in text_string_to_metric_families(Path(markers).read_text())
        for s in family.samples
        if s.name == "cd_checks_stage_finished_timestamp_seconds"
    }
    revision = known_good["revision"]
    assert {("canary", "succeeded", revision), ("production", "succeeded", revision)} <= finished


def test_errors_only_real_traffic_sees_stop_the_canary_and_roll_it_back(
    world: World, known_good: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    plan = world.plan(capsys)
    canary = plan["stages"][0]["waves"][0]
    others = [h for w in plan["stages"][1]["waves"] for h in w]
    before = {h: world.site_conf(h).stat().st_mtime_ns for h in others}
    with world.change("a third of / answers 500", FLAKY):
        code, out, err = world.cli(capsys, "rollout", "run", "--all", "--format", "json")

    result = json.loads(out)
    assert code == 1, err
    assert "stage canary wave 1: metric gate failed: error-rate" in result["failure"]
    wave = result["waves"][0]
    every_host_check = [c for checks in wave["gate"]["hosts"].values() for c in checks]
    assert every_host_check and all(c["ok"] for c in every_host_check)  # testinfra + http
    error_rate = checks_of(wave)["error-rate"]
    assert error_rate["verdict"] == "fail"
    assert max(m["value"] for m in error_rate["measurements"]) > 0.05
    assert result["rollback"]["verified"] and result["rollback"]["hosts"] == canary
    assert "metric error-rate failed" in err  # the progress line of a measurement
    for host in canary:
        assert world.served(host) == (
            200,
            f"cd-checks example site on {host}, revision {known_good['revision']}\n",
        )
    assert {h: world.site_conf(h).stat().st_mtime_ns for h in others} == before


def test_with_on_failure_pause_the_canary_stays_as_it_is_until_rollback(
    world: World, known_good: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    canary = world.plan(capsys)["stages"][0]["waves"][0]
    with world.change("a third of / answers 500, again", FLAKY) as bad:
        code, out, err = world.cli(capsys, "rollout", "run", "--all", "--on-failure", "pause")
        assert code == 4, out + err
        assert "PAUSED: stage canary wave 1: metric gate failed" in out
        assert "--resume" in out and "cd-checks rollback" in out
        assert world.record("production")["status"] == "paused"
        for host in canary:
            assert f"revision {bad}" in world.site_conf(host).read_text()

        code, _, err = world.cli(capsys, "rollout", "run", "--all")
        assert code == 2 and "is paused at stage canary wave 1" in err

        code, out, err = world.cli(capsys, "rollback", "--environment", "production")
    assert code == 0, out + err
    assert "rollback verified" in out
    for host in canary:
        assert world.served(host)[1].endswith(f"revision {known_good['revision']}\n")
    trail = (world.root / ".cd-checks/audit.jsonl").read_text().splitlines()
    paused = [r for r in map(json.loads, trail) if r.get("outcome") == "paused"]
    assert len(paused) == 1 and "on_failure: pause" in paused[0]["detail"]["stopped"]
    measured = paused[0]["detail"]["waves"][0]["metrics"]["checks"][0]["measurements"]
    assert measured and all(isinstance(m["value"], float | int) for m in measured)
