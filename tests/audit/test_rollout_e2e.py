"""The audit trail of real rollouts on a lab fleet: records, approvers, break-glass, metrics.

A 4-host fleet (1 staging, 3 production in two waves), ansible-playbook over ssh and HTTP
health probes; identity from GitHub and GitLab CI variables with their APIs served by a
small HTTP server on 127.0.0.1. The tests run in order on one repository and one trail.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from cd_checks.lab import Lab
from tests.conftest import REPO, git, init_repo
from tests.lab_fixture import lab_fleet
from tests.rollout.cli_boot import main
from tests.rollout.repo_files import YAMLLINT
from tests.rollout.test_e2e import BREAK_HEALTHZ, get

pytestmark = pytest.mark.lab

STAGES = [
    {"name": "staging", "hosts": "staging"},
    {"name": "production", "hosts": "production", "waves": ["34%", "100%"]},
]
HEALTH = {"http": [{"url": "http://{host}/healthz", "status": 200}], "bake_seconds": 0}
CI_VARIABLES = [
    "GITHUB_ACTIONS",
    "GITHUB_ACTOR",
    "GITHUB_EVENT_PATH",
    "GITHUB_REPOSITORY",
    "GITHUB_TOKEN",
    "GITHUB_API_URL",
    "GITHUB_STEP_SUMMARY",
    "GITLAB_CI",
    "GITLAB_USER_LOGIN",
    "CI_MERGE_REQUEST_IID",
    "CI_MERGE_REQUEST_APPROVED",
    "CI_MERGE_REQUEST_PROJECT_ID",
    "CI_PROJECT_ID",
    "CI_API_V4_URL",
    "CI_PROJECT_URL",
    "CI_MERGE_REQUEST_PROJECT_URL",
    "CD_CHECKS_GITLAB_TOKEN",
    "GITLAB_TOKEN",
]
POSTMORTEM = """\
# Post-mortem
## Summary
healthz answered 500 in production.
## Timeline
01:00 deployed with break-glass.
## Root cause
a template condition.
## Actions
- test the template in staging with production variables.
"""


def config(**extra: Any) -> str:
    section = {
        "inventory": "inventory/hosts.yml",
        "apply": {"ansible": {"playbook": "deploy/site.yml"}},
        "stages": STAGES,
        "health": HEALTH,
        "rollback": {"automatic": True},
    }
    return yaml.safe_dump({"rollout": section, **extra}, sort_keys=False)


@dataclass
class World:
    lab: Lab
    root: Path
    scratch: Path
    capsys: pytest.CaptureFixture[str] | None = None
    seen: list[str] = field(default_factory=list)

    def cli(self, *args: str | Path) -> tuple[int, str, str]:
        argv = [str(a) for a in args]
        if argv[0] in ("rollout", "rollback"):
            argv += ["--inventory", str(self.lab.inventory)]
        code = main(["-C", str(self.root), *argv])
        assert self.capsys is not None
        out, err = self.capsys.readouterr()
        return code, out, err

    def commit(self, message: str, *, edit: tuple[str, str] | None = None, **opts: str) -> str:
        if edit is not None:
            template = self.root / "deploy/templates/site.conf.j2"
            text = template.read_text()
            assert edit[0] in text
            template.write_text(text.replace(edit[0], edit[1]))
        for name, content in opts.items():
            if name != "author":
                (self.root / name.replace("__", "/")).write_text(content)
        git(self.root, "add", "-A")
        author = ["--author", opts["author"]] if "author" in opts else []
        git(self.root, "commit", "-q", "--allow-empty", *author, "-m", message)
        return git(self.root, "rev-parse", "HEAD").strip()

    def records(self) -> list[dict[str, Any]]:
        path = self.root / ".cd-checks/audit.jsonl"
        if not path.exists():  # nothing deployed yet: xdist may run any test of this module first
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def runs_since(self, count: int) -> list[dict[str, Any]]:
        return self.records()[count:]

    def config(self, name: str, text: str) -> Path:
        path = self.scratch / name
        path.write_text(text)
        return path

    def healthz(self, host: str) -> int:
        return get(f"http://{self.lab.host(host).address}/healthz")[0]

    def mtimes(self) -> dict[str, int]:
        return {h.name: (h.nginx_conf_dir / "site.conf").stat().st_mtime_ns for h in self.lab.hosts}


class Api:
    """A tiny GitHub/GitLab API on 127.0.0.1: fixed JSON per path, the headers it was sent."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.headers: list[dict[str, str]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                api.headers.append({k.lower(): v for k, v in self.headers.items()})
                path = self.path.split("?")[0]
                body = json.dumps(routes.get(path, {"message": "Not Found"})).encode()
                self.send_response(200 if path in routes else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *args: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=4, staging=1)


@pytest.fixture(scope="module")
def shared(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("audited-repo")
    shutil.copytree(REPO / "examples/deploy", root / "deploy")
    (root / "cd-checks.yml").write_text(config())
    (root / ".gitignore").write_text(".cd-checks/\n")
    (root / ".yamllint").write_text(YAMLLINT)
    init_repo(root)
    return World(lab, root, tmp_path_factory.mktemp("scratch"))


@pytest.fixture
def world(
    shared: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> World:
    for name in CI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    shared.capsys = capsys
    return shared


def _stage_pairs(runs: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    starts = {r["id"]: r for r in runs if r["kind"] == "stage" and r["outcome"] == "started"}
    finals = [r for r in runs if r["kind"] == "stage" and r["outcome"] != "started"]
    return {f["stage"]: (starts[f["refs"][0]], f) for f in finals}


def test_a_rollout_records_each_stage_with_gates_changes_and_github_approvers(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert world.cli("rollout", "run", "--all")[0] == 0  # the first deploy: known-good
    before = len(world.records())
    first = git(world.root, "rev-parse", "HEAD").strip()
    new = world.commit(
        "Say hello (#42)",
        edit=("default_type text/plain;", "default_type text/plain;\n    # hello"),
        author="Alice Ops <alice@example.com>",
    )
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42, "merged_by": {"login": "mo"}}}))
    reviews = [
        {"user": {"login": "bob"}, "state": "APPROVED"},
        {"user": {"login": "carol"}, "state": "CHANGES_REQUESTED"},
        {"user": {"login": "carol"}, "state": "APPROVED"},
        {"user": {"login": "dave"}, "state": "COMMENTED"},
    ]
    summary = tmp_path / "summary.md"
    with Api({"/repos/acme/ops/pulls/42/reviews": reviews}) as api:
        for name, value in {
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTOR": "octo-deployer",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": "acme/ops",
            "GITHUB_TOKEN": "ghs-fake-token",
            "GITHUB_API_URL": api.url,
            "GITHUB_STEP_SUMMARY": str(summary),
        }.items():
            monkeypatch.setenv(name, value)
        code, out, err = world.cli("rollout", "run", "--all", "--format", "json")
    assert code == 0, out + err
    assert api.headers and api.headers[0]["authorization"] == "Bearer ghs-fake-token"
    result = json.loads(out)
    pairs = _stage_pairs(world.runs_since(before))
    assert set(pairs) == {"staging", "production"}
    for stage, (start, final) in pairs.items():
        planned = [w["hosts"] for w in result["waves"] if w["stage"] == stage]
        assert start["waves"] == final["waves"] == planned
        assert (start["revision_from"], start["revision_to"]) == (first, new)
        assert final["outcome"] == "succeeded" and final["refs"] == [start["id"]]
        assert start["started_at"] <= final["ended_at"]
        assert final["changed_files"] == [
            {"path": "deploy/templates/site.conf.j2", "added": 1, "deleted": 0}
        ]
        assert final["diffstat"] == {"files": 1, "added": 1, "deleted": 0}
        assert final["authors"] == ["Alice Ops <alice@example.com>"]
        assert (final["actor"], final["actor_source"]) == ("octo-deployer", "github")
        request = final["change_request"]
        assert (request["number"], request["approvers"], request["approved"]) == (
            "42",
            ["bob", "carol"],
            True,
        )
        assert request["merged_by"] == "mo"
        hosts = {h for w in planned for h in w}
        assert {(g["host"], g["passed"]) for g in final["gates"]} == {(h, True) for h in hosts}
        assert {g["wave"] for g in final["gates"]} == set(range(1, len(planned) + 1))
        assert f"deploy {start['id']} (succeeded)" in err
    assert "### Rollout of" in summary.read_text() and "succeeded" in summary.read_text()
    assert world.cli("audit", "verify")[0] == 0


def test_approvers_come_from_gitlab_variables_and_the_approvals_api(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(world.records())
    world.commit("Tweak\n\nSee merge request acme/ops!7", **{"deploy__NOTES": "gitlab\n"})
    approvals = {"approved_by": [{"user": {"username": "erin"}}, {"user": {"username": "fay"}}]}
    with Api({"/api/v4/projects/99/merge_requests/7/approvals": approvals}) as api:
        for name, value in {
            "GITLAB_CI": "true",
            "GITLAB_USER_LOGIN": "gl-deployer",
            "CI_MERGE_REQUEST_IID": "7",
            "CI_MERGE_REQUEST_APPROVED": "true",
            "CI_PROJECT_ID": "99",
            "CI_PROJECT_URL": "https://gitlab.example/acme/ops",
            "CI_API_V4_URL": f"{api.url}/api/v4",
            "CD_CHECKS_GITLAB_TOKEN": "glpat-fake",
        }.items():
            monkeypatch.setenv(name, value)
        code, out, err = world.cli("rollout", "run", "--stage", "staging")
        assert code == 0, out + err
        assert world.cli("rollout", "run", "--stage", "production")[0] == 0
    assert api.headers[0]["private-token"] == "glpat-fake"
    start, final = _stage_pairs(world.runs_since(before))["staging"]
    assert (final["actor"], final["actor_source"]) == ("gl-deployer", "gitlab")
    assert final["change_request"]["approvers"] == ["erin", "fay"]
    assert final["change_request"]["url"] == "https://gitlab.example/acme/ops/-/merge_requests/7"
    assert start["outcome"] == "started" and final["outcome"] == "succeeded"


def test_an_unwritable_trail_stops_the_rollout_before_any_host_is_touched(world: World) -> None:
    world.commit("a change that must not ship unaudited", **{"deploy__NOTES": "unaudited\n"})
    lock = world.root / ".cd-checks/audit.jsonl.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.unlink(missing_ok=True)
    lock.mkdir()  # a directory where the trail's lock file must be: every write fails
    before = world.mtimes()
    record = world.root / ".cd-checks/rollout/staging/rollout.json"
    closed = record.read_text() if record.exists() else None  # a finished run's marker
    try:
        code, out, err = world.cli("rollout", "run", "--all")
    finally:
        lock.rmdir()
    assert code == 2
    assert "cd-checks: error: cannot write the audit record (stage)" in err
    assert world.mtimes() == before
    assert (record.read_text() if record.exists() else None) == closed
    assert not (world.root / ".cd-checks/rollout/staging/lock").exists()


def test_an_automatic_rollback_is_an_incident_from_detection_to_verified_restore(
    world: World,
) -> None:
    assert world.cli("rollout", "run", "--all")[0] == 0
    _, text, _ = world.cli("metrics", "--format", "json")
    before = json.loads(text)
    records = len(world.records())
    world.commit("healthz 500 in production", edit=BREAK_HEALTHZ)
    code, out, _ = world.cli("rollout", "run", "--all")
    assert code == 1 and "rollback verified" in out
    _, final = _stage_pairs(world.runs_since(records))["production"]
    assert final["outcome"] == "rolled_back" and final["rollback"]["verified"] is True
    rollback = final["rollback"]
    # exposed (the canary's apply began) <= detected (its first failed check) < restored
    assert rollback["exposed_at"] <= rollback["detected_at"] < rollback["restored_at"]
    assert (
        rollback["exposed_at"]
        >= _stage_pairs(world.runs_since(records))["production"][0]["started_at"]
    )
    assert any(not g["passed"] and g["wave"] == 1 for g in final["gates"])
    assert any(g["passed"] and g["wave"] == 0 for g in final["gates"])  # the rollback's gate
    _, text, _ = world.cli("metrics", "--format", "json")
    after = json.loads(text)
    assert after["restores"] == before["restores"] + 1
    assert after["failed_deploys"] == before["failed_deploys"] + 1
    assert after["deploys"] == before["deploys"] + 1
    assert after["change_failure_rate"] == pytest.approx(after["failed_deploys"] / after["deploys"])
    assert after["mttr_median_seconds"] > 0
    assert after["exposure_median_seconds"] >= after["mttr_median_seconds"]
    world.commit("revert: healthz", edit=(BREAK_HEALTHZ[1], BREAK_HEALTHZ[0]))


def test_break_glass_end_to_end(world: World) -> None:
    bad_yaml = "a:\n  - b\n c: d\n"
    bad = world.commit("emergency change", edit=BREAK_HEALTHZ, **{"deploy__extra.yml": bad_yaml})
    before = world.mtimes()
    code, out, err = world.cli("rollout", "run", "--all")
    assert code == 1 and "extra.yml:3" in out
    assert f"rollout refused: {bad[:12]} fails validate" in err
    assert world.mtimes() == before
    code, _, err = world.cli("rollout", "run", "--all", "--break-glass", "--reason", "outage")
    assert code == 2 and "--break-glass needs --reason TEXT and --ticket ID" in err
    records = len(world.records())
    before_metrics = json.loads(world.cli("metrics", "--format", "json")[1])
    code, out, err = world.cli(
        "rollout",
        "run",
        "--all",
        "--break-glass",
        "--reason",
        "outage",
        "--ticket",
        "INC-9",
        "--format",
        "json",
    )
    assert code == 5, out + err  # completed, but only by going past failed gates
    result = json.loads(out)  # one JSON document: the pre-flight's findings went to stderr
    assert "extra.yml:3" in err and result["exit_code"] == 5 and result["ok"]
    notes = result["notes"]
    assert any("break-glass: the health gate of stage production wave 1 failed" in n for n in notes)
    production = [h.name for h in world.lab.hosts[1:]]
    assert sorted(result["forced_hosts"]) == production
    assert all(world.healthz(h) == 500 for h in production)  # proceeded, no rollback
    runs = world.runs_since(records)
    start, final = _stage_pairs(runs)["production"]
    assert final["outcome"] == "forced"  # not `succeeded`: its gates failed
    assert _stage_pairs(runs)["staging"][1]["outcome"] == "succeeded"  # its gate passed
    assert sorted(final["detail"]["unhealthy_hosts"]) == production
    assert all(not g["passed"] for g in final["gates"])
    code, log, _ = world.cli("audit", "log", "--outcome", "forced")
    (line,) = log.splitlines()[1:]  # the production stage only: staging's gate passed
    assert code == 0 and "production" in line and " forced " in line and "BREAK-GLASS" in line
    assert final["break_glass"]["reason"] == "outage" and final["break_glass"]["ticket"] == "INC-9"
    assert final["break_glass"]["validate"]["errors"] >= 1
    assert any("extra.yml:3" in f for f in final["break_glass"]["validate"]["findings"])
    assert {g["host"] for g in final["gates"] if not g["passed"]} == set(production)
    deploy_id = _stage_pairs(runs)["staging"][0]["id"]  # the run's first deploy
    assert [r["environment"] for r in runs if r["kind"] == "break_glass"] == [
        "staging",
        "production",
    ]
    _, log, _ = world.cli("audit", "log")
    assert "BREAK-GLASS" in log and "POSTMORTEM-DUE" in log
    after = json.loads(world.cli("metrics", "--format", "json")[1])
    assert after["failed_deploys"] == before_metrics["failed_deploys"] + 1  # forced past a gate

    world.commit(
        "fix", edit=(BREAK_HEALTHZ[1], BREAK_HEALTHZ[0]), **{"deploy__extra.yml": "a: [b]\n"}
    )
    code, out, err = world.cli("rollout", "run", "--all")
    assert code == 0, out + err
    assert "needs a post-mortem" in err and f"cd-checks postmortem record {deploy_id}" in err
    assert all(world.healthz(h) == 200 for h in production)

    tiny = world.config("tiny.yml", config(break_glass={"postmortem_hours": 0.0001}))
    time.sleep(1)
    before = world.mtimes()
    code, _, err = world.cli("rollout", "run", "--stage", "production", "--config", tiny)
    assert code == 2 and "post-mortem overdue, rollouts to production are blocked" in err
    assert f"cd-checks postmortem record {start['id']} --file FILE" in err
    assert world.mtimes() == before

    (world.scratch / "pm.md").write_text(POSTMORTEM)
    code, out, err = world.cli("postmortem", "record", deploy_id, "--file", world.scratch / "pm.md")
    assert code == 0, out + err
    # One post-mortem covers every environment the break-glass run touched.
    code, out, err = world.cli("rollout", "run", "--all", "--config", tiny)
    assert code == 0, out + err
    assert "post-mortem" not in err
    _, log, _ = world.cli("audit", "log")
    assert "POSTMORTEM-DONE" in log and "POSTMORTEM-DUE" not in log and "OVERDUE" not in log
