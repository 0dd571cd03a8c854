"""Metrics per change type on a generated history whose true figures are known: a real git
repository whose commits touch nginx, patch, monitoring and unmatched files, and a trail
with runs of each type (and of the unnamed type, from before change types), failures,
rollbacks and incidents at known times."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cd_checks import changes, config, metrics
from cd_checks.audit.identity import Identity
from cd_checks.audit.store import FileStore
from cd_checks.audit.trail import AuditTrail, Gate, Rollback
from cd_checks.errors import ToolError
from cd_checks.incidents import open_incident, resolve
from tests.conftest import Run

UNTIL = datetime(2026, 11, 27, tzinfo=timezone.utc)
SINCE = UNTIL - timedelta(days=90)  # 2026-08-29

CONFIG = """\
defaults:
  inventory: inventory/hosts.yml
  apply: {ansible: {playbook: deploy/site.yml}}
  health: {testinfra: tests/health/}
  stages:
    - {name: canary, hosts: production, percent: 25}
    - {name: production, hosts: production}
changes:
  nginx:
    files: ["nginx/**"]
    hosts: web
  patches:
    files: ["patches/*.yml"]
    hosts: "all:!db"
  monitoring:
    files: ["monitoring/**"]
    hosts: monitoring
"""
INVENTORY = "all:\n  children:\n    production:\n      hosts:\n        h1: null\n"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _git(root: Path, *args: str, when: str) -> str:
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


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _commit(root: Path, files: Mapping[str, str], message: str, when: str) -> str:
    _write(root, files)
    _git(root, "add", "-A", when=when)
    _git(root, "commit", "-qm", message, when=when)
    return _git(root, "rev-parse", "HEAD", when=when)


def _merge(root: Path, number: int, files: Mapping[str, str], when: str) -> str:
    """A PR merged with a merge commit: its files changed on a branch."""
    _git(root, "checkout", "-qb", f"pr{number}", when=when)
    _commit(root, files, f"work of PR {number}", when)
    _git(root, "checkout", "-q", "main", when=when)
    message = f"Merge pull request #{number} from dev/pr{number}"
    _git(root, "merge", "-q", "--no-ff", f"pr{number}", "-m", message, when=when)
    return _git(root, "rev-parse", "HEAD", when=when)


def _history(root: Path) -> dict[str, str]:
    root.mkdir()
    _git(root, "init", "-q", "-b", "main", when="2026-08-01T00:00:00")
    first = {
        "cd-checks.yml": CONFIG,
        "inventory/hosts.yml": INVENTORY,
        "README.md": "ops\n",
        "nginx/nginx.conf": "events {}\n",
        "nginx/sites/blog.conf": "server {}\n",
        "patches/base.yml": "- base\n",
        "monitoring/rules.yml": "groups: []\n",
    }
    shas = {"c0": _commit(root, first, "initial", "2026-08-01T00:00:00")}
    shas["c1"] = _merge(root, 1, {"nginx/sites/shop.conf": "server {}\n"}, "2026-09-01T00:00:00")
    shas["c2"] = _commit(
        root, {"nginx/nginx.conf": "events {} # hot\n"}, "hotfix", "2026-09-03T00:00:00"
    )
    shas["c3"] = _commit(
        root,
        {"monitoring/alerts/disk usage.yml": "groups: []\n"},
        "Add disk alert (#3)",
        "2026-09-10T00:00:00",
    )
    shas["c4"] = _merge(root, 4, {"patches/2026-09.yml": "- a\n"}, "2026-09-20T00:00:00")
    shas["c5"] = _commit(root, {"README.md": "ops docs\n"}, "Docs (#5)", "2026-10-01T00:00:00")
    shas["c6"] = _merge(
        root,
        6,
        {"nginx/nginx.conf": "events {} # 6\n", "patches/2026-10.yml": "- b\n"},
        "2026-10-05T00:00:00",
    )
    shas["c7"] = _merge(root, 7, {"monitoring/alerts/cpu.yml": "[]\n"}, "2026-10-20T00:00:00")
    shas["c8"] = _merge(
        root,
        8,
        {"nginx/nginx.conf": "events {} # 8\n", "monitoring/alerts/mem.yml": "[]\n"},
        "2026-10-25T00:00:00",
    )
    when = "2026-11-10T00:00:00"
    _git(root, "mv", "nginx/sites/blog.conf", "blog.conf", when=when)  # out of nginx/
    shas["c9"] = _commit(root, {}, "Move the blog site out (#9)", when)
    shas["c10"] = _merge(root, 10, {"patches/2026-11.yml": "- c\n"}, "2026-11-25T00:00:00")
    return shas


class Clock:
    def __init__(self) -> None:
        self.now = SINCE

    def __call__(self) -> datetime:
        return self.now


def _stage(
    trail: AuditTrail,
    clock: Clock,
    when: str,
    stage: str,
    revision: str,
    outcome: str,
    change: str | None,
    rollback: Rollback | None = None,
) -> str:
    """One stage run of production, a minute long."""
    clock.now = _at(when)
    deploy = trail.start(
        "stage", "production", stage, None, revision, [["h1"]], Identity(), change=change
    )
    clock.now += timedelta(minutes=1)
    gates = [Gate(1, "h1", "http", outcome == "succeeded")]
    trail.finish(deploy, outcome, gates, rollback)
    return deploy


def _deploy(trail: AuditTrail, clock: Clock, when: str, revision: str, change: str | None) -> str:
    """Canary then production, both succeeded; the canary's deploy id."""
    first = _stage(trail, clock, when, "canary", revision, "succeeded", change)
    later = (_at(when) + timedelta(minutes=2)).isoformat()[:19]
    _stage(trail, clock, later, "production", revision, "succeeded", change)
    return first


def _rolled_back(
    trail: AuditTrail, clock: Clock, day: str, revision: str, change: str, minutes: int
) -> str:
    """A canary whose gate failed at 10:05 and whose rollback was verified `minutes` later."""
    restored = _at(f"{day}T10:05:00") + timedelta(minutes=minutes)
    rollback = Rollback(
        "r0", ("h1",), True, "gate", f"{day}T10:05:00Z", restored.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    return _stage(
        trail, clock, f"{day}T10:00:00", "canary", revision, "rolled_back", change, rollback
    )


def _trail(repo: Path, shas: dict[str, str]) -> AuditTrail:
    clock = Clock()
    trail = AuditTrail(FileStore(repo / ".cd-checks/audit.jsonl"), repo, clock)
    # Before change types: one unnamed pipeline deployed everything.
    _deploy(trail, clock, "2026-09-11T10:00:00", shas["c3"], None)
    _deploy(trail, clock, "2026-09-21T10:00:00", shas["c4"], "patches")
    # One merge, two types, their stages interleaved: two deploys, not one.
    c6 = shas["c6"]
    _stage(trail, clock, "2026-10-06T10:00:00", "canary", c6, "succeeded", "nginx")
    p2 = _stage(trail, clock, "2026-10-06T10:01:00", "canary", c6, "succeeded", "patches")
    _stage(trail, clock, "2026-10-06T10:02:00", "production", c6, "succeeded", "nginx")
    _stage(trail, clock, "2026-10-06T10:03:00", "production", c6, "succeeded", "patches")
    incident = open_incident(trail, p2, actor="oncall", detected_at=_at("2026-10-07T12:00:00"))
    resolve(trail, incident.id, actor="oncall", restored_at=_at("2026-10-07T14:00:00"))
    m1 = _rolled_back(trail, clock, "2026-10-21", shas["c7"], "monitoring", 30)
    open_incident(trail, m1, actor="oncall", detected_at=_at("2026-10-22T09:00:00"))
    _deploy(trail, clock, "2026-10-26T10:00:00", shas["c8"], "nginx")
    _rolled_back(trail, clock, "2026-11-11", shas["c9"], "nginx", 15)
    return trail


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    tmp_path = tmp_path_factory.mktemp("history")
    repo = tmp_path / "repo"
    shas = _history(repo)
    _trail(repo, shas)
    return repo, shas


def _computed(repo: Path, **options: object) -> metrics.Metrics:
    types = changes.change_types(config.load(repo))
    records = FileStore(repo / ".cd-checks/audit.jsonl").records()
    commits = metrics.history(repo, "main", files=True)
    return metrics.compute(
        records,
        commits,
        since=SINCE,
        until=UNTIL,
        types=types,
        **options,  # type: ignore[arg-type]
    )


def test_commits_carry_what_they_changed_on_the_line(
    generated: tuple[Path, dict[str, str]],
) -> None:
    repo, shas = generated
    files = {c.sha: c.files for c in metrics.history(repo, "main", files=True)}
    assert files[shas["c1"]] == ("nginx/sites/shop.conf",)  # a merge: its branch's files
    assert files[shas["c3"]] == ("monitoring/alerts/disk usage.yml",)
    assert files[shas["c6"]] == ("nginx/nginx.conf", "patches/2026-10.yml")
    assert files[shas["c9"]] == ("blog.conf", "nginx/sites/blog.conf")  # a rename: both names
    plain = metrics.history(repo, "main")
    assert [c.sha for c in plain] == list(files) and all(c.files == () for c in plain)
    assert [c.change_request for c in plain] == [
        c.change_request for c in metrics.history(repo, "main", files=True)
    ]


# The true figures, by hand (see _history and _trail):
# nginx       c1 c2 c6 c8 c9; deploys c6 c8 c9 (c9 rolled back, 15 min); through c1 c6 c8
# patches     c4 c6 c10;      deploys c4 c6 (c6: an incident, 2 h);     through c4 c6
# monitoring  c3 c7 c8;       deploy c7 rolled back (30 min), an open incident; through none
# unnamed     every commit;   deploy c3;                                 through c1 c3
# all: c1 c3 c4 c6 through; c2 pushed directly, c5 touches no type, c8 not deployed by
# monitoring, c7 c9 c10 not deployed.
EXPECTED = {
    "nginx": (3, 1, [900.0], 0, 5, 3),
    "patches": (2, 1, [7200.0], 0, 3, 2),
    "monitoring": (1, 1, [1800.0], 1, 3, 0),
    "": (1, 0, [], 0, 10, 2),
}


def _figures(data: Mapping[str, object]) -> tuple[object, ...]:
    return (
        data["deploys"],
        data["failed_deploys"],
        data["restores"],
        data["mttr_median_seconds"],
        data["mttr_p90_seconds"],
        data["open_incidents"],
        data["changes"],
        data["changes_through_pipeline"],
    )


def _expected(name: str) -> tuple[object, ...]:
    deploys, failed, spans, still_open, changed, through = EXPECTED[name]
    median = spans[0] if spans else None
    return (deploys, failed, len(spans), median, median, still_open, changed, through)


def test_metrics_per_change_type_match_the_true_figures_exactly(
    generated: tuple[Path, dict[str, str]],
) -> None:
    repo, _ = generated
    data = json.loads(metrics.render_json(_computed(repo)))
    assert list(data["by_change"]) == ["nginx", "patches", "monitoring", ""]
    for name in EXPECTED:
        part = data["by_change"][name]
        assert _figures(part) == _expected(name), name
        deploys, failed, _, _, changed, through = EXPECTED[name]
        assert part["deploys_per_day"] == deploys / 90
        assert part["deploys_per_week"] == deploys * 7 / 90
        assert part["change_failure_rate"] == failed / deploys
        assert part["pipeline_share"] == through / changed
        assert sum(w["deploys"] for w in part["weeks"]) == deploys
        assert sum(w["changes_through_pipeline"] for w in part["weeks"]) == through
        assert "environment" not in part and "window_start" not in part
    # Overall, where the numbers always were: the sum of the types, and the changes of
    # the line, through only when each type they touch deployed them.
    assert _figures(data) == (7, 3, 3, 1800.0, 7200.0, 1, 10, 4)
    assert data["change_failure_rate"] == 3 / 7 and data["pipeline_share"] == 4 / 10
    assert data["deploys_per_week"] == 49 / 90 and data["environment"] == "production"
    assert "change" not in data
    week = next(
        w for w in data["by_change"]["nginx"]["weeks"] if w["start"] == "2026-10-24T00:00:00Z"
    )
    assert (week["deploys"], week["changes"], week["changes_through_pipeline"]) == (1, 1, 1)


def test_one_change_type_only(generated: tuple[Path, dict[str, str]]) -> None:
    repo, _ = generated
    result = _computed(repo, change="patches")
    data = json.loads(metrics.render_json(result))
    assert data["change"] == "patches" and "by_change" not in data
    assert _figures(data) == _expected("patches")
    text = metrics.render_text(result)
    assert "change type           patches\n" in text
    assert "through the pipeline  66.7 % (2 of 3 changes)" in text
    labels = '{environment="production",window_days="90",change="patches"}'
    assert f"cd_checks_deploys_total{labels} 2" in metrics.render_prometheus(result).splitlines()
    with pytest.raises(Exception, match="unknown change type 'dns': the change types are nginx"):
        _computed(repo, change="dns")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, as Prometheus' own parser reads it."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


def test_prometheus_adds_a_change_label_and_keeps_the_overall_series(
    generated: tuple[Path, dict[str, str]],
) -> None:
    repo, _ = generated
    found = _samples(metrics.render_prometheus(_computed(repo)))
    window = (("environment", "production"), ("window_days", "90"))

    def value(name: str, change: str | None = None) -> float:
        typed = (("change", change),) if change else ()
        return found[(f"cd_checks_{name}", tuple(sorted(window + typed)))]

    assert value("deploys_total") == 7 and value("changes_through_pipeline_total") == 4
    assert value("change_failure_rate") == pytest.approx(3 / 7)
    for name in ("nginx", "patches", "monitoring"):
        deploys, failed, spans, _, changed, through = EXPECTED[name]
        assert value("deploys_total", name) == deploys
        assert value("failed_deploys_total", name) == failed
        assert value("time_to_restore_median_seconds", name) == spans[0]
        assert value("changes_total", name) == changed
        assert value("changes_through_pipeline_total", name) == through
        assert value("pipeline_share", name) == pytest.approx(through / changed)
    labelled = {dict(labels).get("change") for _, labels in found}
    assert labelled == {None, "nginx", "patches", "monitoring"}  # no change="": see docstring
    canary = {
        "environment": "production",
        "stage": "canary",
        "change": "nginx",
        "outcome": "rolled_back",
    }
    nginx_canary = [
        v
        for (n, labels), v in found.items()
        if n == "cd_checks_stage_finished_timestamp_seconds"
        and canary.items() <= dict(labels).items()
    ]
    assert nginx_canary == [_at("2026-11-11T10:01:00").timestamp()]


def test_text_and_html_show_each_type_and_all(generated: tuple[Path, dict[str, str]]) -> None:
    repo, _ = generated
    result = _computed(repo)
    text = metrics.render_text(result)
    assert "through the pipeline  40.0 % (4 of 10 changes)" in text
    assert text.split("\n\n", 1)[1] == (
        "change type  deploys  per week  failure rate      restore median, p90  restores  open"
        "  through the pipeline\n"
        "nginx        3        0.23      33.3 % (1 of 3)   15.0 min, 15.0 min   1         0"
        "     60.0 % (3 of 5)\n"
        "patches      2        0.16      50.0 % (1 of 2)   2.0 h, 2.0 h         1         0"
        "     66.7 % (2 of 3)\n"
        "monitoring   1        0.08      100.0 % (1 of 1)  30.0 min, 30.0 min   1         1"
        "     0.0 % (0 of 3)\n"
        "(unnamed)    1        0.08      0.0 % (0 of 1)    n/a, n/a             0         0"
        "     20.0 % (2 of 10)\n"
        "all          7        0.54      42.9 % (3 of 7)   30.0 min, 2.0 h      3         1"
        "     40.0 % (4 of 10)\n"
    )
    page = metrics.render_html(result)
    assert page.count("<svg") == 4 * 5
    assert "<h2>Change type nginx</h2>" in page and "<h2>Change type (unnamed)</h2>" in page
    assert 'aria-label="monitoring: Change failure rate per week"' in page


# ---- the command -----------------------------------------------------------------------


def test_the_metrics_command_per_change_type(
    generated: tuple[Path, dict[str, str]], cli: Callable[..., Run]
) -> None:
    repo, _ = generated
    result = cli("-C", repo, "metrics", "--since", "2026-08-29", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert [
        (n, d["deploys"], d["changes_through_pipeline"]) for n, d in data["by_change"].items()
    ] == [
        ("nginx", 3, 3),
        ("patches", 2, 2),
        ("monitoring", 1, 0),
        ("", 1, 2),
    ]
    assert (data["deploys"], data["changes"], data["changes_through_pipeline"]) == (7, 10, 4)
    one = cli("-C", repo, "metrics", "--since", "2026-08-29", "--change", "nginx")
    assert one.code == 0, one.err
    assert "change type           nginx\n" in one.out and "(3 of 5 changes)" in one.out
    wrong = cli("-C", repo, "metrics", "--change", "dns")
    assert (wrong.code, wrong.err) == (
        2,
        "cd-checks: error: unknown change type 'dns': cd-checks.yml names nginx, patches, "
        "monitoring\n",
    )


def test_without_change_types_there_is_no_breakdown(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    repo = tmp_path / "repo"
    shas = _history(repo)
    single = "rollout:\n" + CONFIG.split("changes:")[0].split("\n", 1)[1]
    (repo / "cd-checks.yml").write_text(single)
    clock = Clock()
    trail = AuditTrail(FileStore(repo / ".cd-checks/audit.jsonl"), repo, clock)
    _deploy(trail, clock, "2026-10-06T10:00:00", shas["c6"], None)
    result = cli("-C", repo, "metrics", "--since", "2026-08-29", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert "by_change" not in data and "change" not in data
    # As before change types: a reviewed change any deploy has is through, c5 too.
    assert (data["deploys"], data["changes"], data["changes_through_pipeline"]) == (1, 10, 5)
    prometheus = cli("-C", repo, "metrics", "--since", "2026-08-29", "--format", "prometheus")
    assert "change=" not in prometheus.out
    text = cli("-C", repo, "metrics", "--since", "2026-08-29").out
    assert "\n\n" not in text and "change type" not in text
    typed = cli("-C", repo, "metrics", "--change", "nginx")
    assert (typed.code, typed.err) == (
        2,
        "cd-checks: error: --change nginx: cd-checks.yml names no change types (`changes:`)\n",
    )


def test_history_with_files_reads_a_branch_named_like_an_option_as_a_revision(
    generated: tuple[Path, dict[str, str]],
) -> None:
    repo, _ = generated
    with pytest.raises(ToolError, match="bad revision '--output=x'"):
        metrics.history(repo, "--output=x", files=True)
    assert not (repo / "x").exists()
