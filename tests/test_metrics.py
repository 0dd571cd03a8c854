"""Metrics on a generated history whose true figures are known, and their four formats."""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cd_checks import metrics
from cd_checks.audit.identity import Identity
from cd_checks.audit.store import FileStore
from cd_checks.audit.trail import AuditTrail, Gate, Rollback
from cd_checks.incidents import open_incident, resolve

UNTIL = datetime(2026, 11, 27, tzinfo=timezone.utc)
SINCE = UNTIL - timedelta(days=90)  # 2026-08-29


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _git(root: Path, *args: str, when: str = "2026-08-01T00:00:00") -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
        "GIT_AUTHOR_DATE": f"{when}+00:00",
        "GIT_COMMITTER_DATE": f"{when}+00:00",
    }
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def _commit(root: Path, name: str, message: str, when: str) -> str:
    (root / name).write_text(f"{name} {when}\n")
    _git(root, "add", "-A", when=when)
    _git(root, "commit", "-qm", message, when=when)
    return _git(root, "rev-parse", "HEAD")


def _merge(root: Path, branch: str, message: str, when: str) -> str:
    _git(root, "checkout", "-qb", branch, when=when)
    _commit(root, f"{branch}.txt", f"work on {branch}", when)
    _git(root, "checkout", "-q", "main", when=when)
    _git(root, "merge", "-q", "--no-ff", branch, "-m", message, when=when)
    return _git(root, "rev-parse", "HEAD")


def _history(root: Path) -> dict[str, str]:
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    return {
        "c0": _commit(root, "base", "initial", "2026-08-01T00:00:00"),
        "c1": _merge(root, "f1", "Merge pull request #1 from dev/f1", "2026-09-01T00:00:00"),
        "c2": _commit(root, "hot", "hotfix pushed straight to main", "2026-09-05T00:00:00"),
        "c3": _commit(root, "alert", "Add disk alert rule (#3)", "2026-09-10T00:00:00"),
        "c4": _merge(
            root,
            "f4",
            "Merge branch 'f4' into 'main'\n\nTune\n\nSee merge request ops/repo!4",
            "2026-10-01T00:00:00",
        ),
        "c5": _commit(root, "tweak", "tweak", "2026-10-15T00:00:00"),
        "c6": _commit(root, "tls", "TLS 1.3 only (#6)", "2026-11-01T00:00:00"),
        "c7": _merge(root, "f7", "Merge pull request #7 from dev/f7", "2026-11-20T00:00:00"),
    }


class Clock:
    def __init__(self) -> None:
        self.now = SINCE

    def __call__(self) -> datetime:
        return self.now


def _deploy(
    trail: AuditTrail,
    clock: Clock,
    when: str,
    revision: str,
    outcomes: dict[str, str],
    environment: str = "production",
    rollback: Rollback | None = None,
) -> str:
    """One deploy: a stage record pair per stage (canary, production), one minute apart."""
    clock.now = _at(when)
    first = ""
    for stage, outcome in outcomes.items():
        deploy = trail.start("stage", environment, stage, None, revision, [["h1"]], Identity())
        first = first or deploy
        clock.now += timedelta(minutes=1)
        gates = [Gate(1, "h1", "http", outcome == "succeeded")]
        trail.finish(deploy, outcome, gates, rollback if outcome == "rolled_back" else None)
    return first


@pytest.fixture
def generated(tmp_path: Path) -> tuple[list, list]:  # type: ignore[type-arg]
    shas = _history(tmp_path / "repo")
    clock = Clock()
    trail = AuditTrail(FileStore(tmp_path / "audit.jsonl"), tmp_path, clock)
    both = {"canary": "succeeded", "production": "succeeded"}
    _deploy(trail, clock, "2026-08-02T10:00:00", shas["c0"], both)  # before the window
    _deploy(trail, clock, "2026-09-02T10:00:00", shas["c1"], both)
    restore = Rollback(
        shas["c1"], ("h1",), True, "gate", "2026-09-11T10:05:00Z", "2026-09-11T10:20:00Z"
    )
    _deploy(
        trail, clock, "2026-09-11T10:00:00", shas["c3"], {"canary": "rolled_back"}, rollback=restore
    )
    d3 = _deploy(trail, clock, "2026-10-02T10:00:00", shas["c4"], both)
    _deploy(trail, clock, "2026-10-16T10:00:00", shas["c5"][:12], both)
    d5 = _deploy(trail, clock, "2026-11-02T10:00:00", shas["c6"], both)
    _deploy(trail, clock, "2026-11-21T10:00:00", shas["c7"], {"staging": "succeeded"}, "staging")
    incident = open_incident(trail, d3, actor="oncall", detected_at=_at("2026-10-02T12:00:00"))
    resolve(trail, incident.id, actor="oncall", restored_at=_at("2026-10-02T14:00:00"))
    incident = open_incident(trail, d5, actor="oncall", detected_at=_at("2026-11-03T00:00:00"))
    resolve(trail, incident.id, actor="oncall", restored_at=_at("2026-11-03T01:00:00"))
    open_incident(trail, d5, actor="oncall", detected_at=_at("2026-11-04T00:00:00"))
    return trail.records(), metrics.history(tmp_path / "repo", "main")


def test_metrics_match_the_true_figures_exactly(generated: tuple[list, list]) -> None:  # type: ignore[type-arg]
    records, commits = generated
    result = metrics.compute(records, commits, since=SINCE, until=UNTIL)
    assert result.days == 90
    assert (result.deploys, result.failed_deploys) == (5, 3)
    assert result.deploys_per_day == 5 / 90
    assert result.deploys_per_week == 35 / 90
    assert result.change_failure_rate == 3 / 5
    assert (result.restores, result.open_incidents) == (3, 1)
    assert result.mttr_median_seconds == 3600.0
    assert result.mttr_p90_seconds == 7200.0
    assert (result.changes, result.changes_through_pipeline) == (7, 4)
    assert result.pipeline_share == 4 / 7
    assert sum(w.deploys for w in result.weeks) == 5
    assert len(result.weeks) == 13
    week = result.weeks[1]
    assert week.start == "2026-09-05T00:00:00Z"
    assert (week.deploys, week.failed_deploys, week.mttr_median_seconds) == (1, 1, 900.0)
    assert (week.changes, week.changes_through_pipeline) == (2, 1)
    assert result.weeks[-1].start == "2026-11-21T00:00:00Z"


def test_commit_classification_rules() -> None:
    assert metrics.change_request_of("Merge pull request #12 from a/b\n\nx") == "#12"
    assert metrics.change_request_of("Fix gzip (#34)\n\n* squashed") == "#34"
    assert (
        metrics.change_request_of("Merge branch 'x' into 'main'\n\nSee merge request g/p!5") == "!5"
    )
    assert metrics.change_request_of("Merge branch 'x' into main") is None
    assert metrics.change_request_of("mention (#34) mid-subject") is None


def test_an_empty_window_has_no_rates() -> None:
    result = metrics.compute([], [], since=SINCE, until=UNTIL)
    assert (result.change_failure_rate, result.mttr_median_seconds, result.pipeline_share) == (
        None,
        None,
        None,
    )
    assert "n/a" in metrics.render_text(result)
    assert 'cd_checks_change_failure_rate{environment="production",window_days="90"} NaN' in (
        metrics.render_prometheus(result)
    )


def test_since_parsing() -> None:
    assert metrics.parse_since("90d", UNTIL) == SINCE
    assert metrics.parse_since("2w", UNTIL) == UNTIL - timedelta(days=14)
    assert metrics.parse_since("2026-11-01", UNTIL) == _at("2026-11-01T00:00:00")
    with pytest.raises(Exception, match="use 90d, 12w, 36h or an ISO 8601 date"):
        metrics.parse_since("soon", UNTIL)


def test_the_four_formats(generated: tuple[list, list]) -> None:  # type: ignore[type-arg]
    records, commits = generated
    result = metrics.compute(records, commits, since=SINCE, until=UNTIL)
    text = metrics.render_text(result)
    assert "change failure rate   60.0 % (3 of 5)" in text
    assert "time to restore       median 60.0 min, p90 2.0 h (3 restores, 1 open)" in text
    assert "through the pipeline  57.1 % (4 of 7 changes)" in text
    data = json.loads(metrics.render_json(result))
    assert data["deploys"] == 5 and data["pipeline_share"] == 4 / 7 and len(data["weeks"]) == 13
    prometheus = metrics.render_prometheus(result).splitlines()
    labels = '{environment="production",window_days="90"}'
    assert "# TYPE cd_checks_deploy_frequency_per_day gauge" in prometheus
    assert f"cd_checks_deploys_total{labels} 5" in prometheus
    assert f"cd_checks_change_failure_rate{labels} 0.6" in prometheus
    assert f"cd_checks_time_to_restore_p90_seconds{labels} 7200.0" in prometheus
    assert all(line.startswith(("# HELP", "# TYPE", "cd_checks_")) for line in prometheus)
    page = metrics.render_html(result)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4
    assert "<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_restores_of_other_environments_do_not_count(tmp_path: Path) -> None:
    clock = Clock()
    trail = AuditTrail(FileStore(tmp_path / "audit.jsonl"), tmp_path, clock)
    restore = Rollback("r0", ("s1",), True, "gate", "2026-09-11T10:05:00Z", "2026-09-11T10:20:00Z")
    _deploy(
        trail, clock, "2026-09-11T10:00:00", "r1", {"staging": "rolled_back"}, "staging", restore
    )
    staged = _deploy(trail, clock, "2026-09-12T10:00:00", "r2", {"staging": "succeeded"}, "staging")
    incident = open_incident(trail, staged, actor="oncall", detected_at=_at("2026-09-12T12:00:00"))
    resolve(trail, incident.id, actor="oncall", restored_at=_at("2026-09-12T14:00:00"))
    open_incident(trail, staged, actor="oncall", detected_at=_at("2026-09-13T12:00:00"))
    records = trail.records()
    production = metrics.compute(records, [], since=SINCE, until=UNTIL)
    assert (production.restores, production.open_incidents) == (0, 0)
    assert production.mttr_median_seconds is None
    staging = metrics.compute(records, [], since=SINCE, until=UNTIL, environment="staging")
    assert (staging.restores, staging.open_incidents) == (2, 1)


def test_an_environment_must_be_configured_or_named_by_a_record() -> None:
    with pytest.raises(Exception, match="unknown environment 'nosuchenv': the rollout stages"):
        metrics.check_environment("nosuchenv", [], ("staging", "production"))
    metrics.check_environment("staging", [], ("staging", "production"))
    with pytest.raises(Exception, match="no audit record names it"):
        metrics.check_environment("nosuchenv", [], None)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float | str]:
    """Every sample of the exposition text, as Prometheus' own parser reads it (NaN as
    the text "NaN": one NaN never equals another)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): "NaN" if math.isnan(s.value) else s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _marker(name: str, value: float, **labels: str) -> tuple[tuple[str, tuple], float]:  # type: ignore[type-arg]
    return (f"cd_checks_{name}", tuple(sorted(labels.items()))), value


def test_prometheus_has_the_latest_run_of_each_stage_as_deploy_markers(
    generated: tuple[list, list],  # type: ignore[type-arg]
) -> None:
    records, commits = generated
    result = metrics.compute(records, commits, since=SINCE, until=UNTIL)
    text = metrics.render_prometheus(result)
    before = metrics.render_prometheus(replace(result, deploy_markers=()))
    assert text.startswith(before)  # every line of before, unchanged and first
    c6 = commits[1].sha  # "TLS 1.3 only (#6)": the newest deploy to production
    canary = {"environment": "production", "stage": "canary", "revision": c6}
    production = {**canary, "stage": "production"}
    markers = dict(
        [
            _marker(
                "stage_started_timestamp_seconds", _at("2026-11-02T10:00:00").timestamp(), **canary
            ),
            _marker(
                "stage_started_timestamp_seconds",
                _at("2026-11-02T10:01:00").timestamp(),
                **production,
            ),
            _marker(
                "stage_finished_timestamp_seconds",
                _at("2026-11-02T10:01:00").timestamp(),
                outcome="succeeded",
                **canary,
            ),
            _marker(
                "stage_finished_timestamp_seconds",
                _at("2026-11-02T10:02:00").timestamp(),
                outcome="succeeded",
                **production,
            ),
            _marker("stage_running", 0.0, **canary),
            _marker("stage_running", 0.0, **production),
        ]
    )
    assert _samples(text) == {**_samples(before), **markers}  # staging's are not production's
    assert "# TYPE cd_checks_stage_started_timestamp_seconds gauge" in text.splitlines()


def test_a_running_stage_and_an_on_demand_rollback_are_markers_too(tmp_path: Path) -> None:
    clock = Clock()
    trail = AuditTrail(FileStore(tmp_path / "audit.jsonl"), tmp_path, clock)
    _deploy(trail, clock, "2026-09-01T10:00:00", "r1", {"canary": "succeeded"})
    _deploy(trail, clock, "2026-09-02T10:00:00", "r2", {"canary": "rolled_back"})
    clock.now = _at("2026-09-03T10:00:00")
    trail.start("stage", "production", "production", "r1", "r3", [["h1"]], Identity())
    rollback = trail.start("rollback", "production", None, "r3", "r1", [["h1"]], Identity())
    clock.now = _at("2026-09-03T10:05:00")
    trail.finish(rollback, "succeeded")
    result = metrics.compute(trail.records(), [], since=SINCE, until=UNTIL)
    assert [(m.stage, m.revision, m.outcome) for m in result.deploy_markers] == [
        ("canary", "r2", "rolled_back"),
        ("production", "r3", None),
        (None, "r1", "succeeded"),
    ]
    assert json.loads(metrics.render_json(result))["deploy_markers"][1]["finished_at"] is None
    found = _samples(metrics.render_prometheus(result))
    production = {"environment": "production", "stage": "production", "revision": "r3"}
    canary = {**production, "stage": "canary", "revision": "r2"}
    rolled = {"environment": "production", "revision": "r1"}
    expected = dict(
        [
            _marker("stage_running", 1.0, **production),
            _marker("stage_running", 0.0, **canary),
            _marker(
                "stage_finished_timestamp_seconds",
                _at("2026-09-02T10:01:00").timestamp(),
                outcome="rolled_back",
                **canary,
            ),
            _marker(
                "rollback_started_timestamp_seconds",
                _at("2026-09-03T10:00:00").timestamp(),
                **rolled,
            ),
            _marker(
                "rollback_finished_timestamp_seconds",
                _at("2026-09-03T10:05:00").timestamp(),
                outcome="succeeded",
                **rolled,
            ),
        ]
    )
    assert {k: found[k] for k in expected} == expected
    assert not any(  # the running stage has no end yet
        name.endswith("finished_timestamp_seconds") and ("stage", "production") in labels
        for name, labels in found
    )
