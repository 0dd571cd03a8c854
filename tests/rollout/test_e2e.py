"""Rollouts end to end on a real 10-host lab fleet: git worktrees, ansible-playbook over ssh,
nginx reloads, testinfra over ssh and HTTP probes. Nothing here is faked.

One module-scoped fleet and config repository; the first rollout (the `baseline` fixture)
makes a known-good revision that the other tests roll back to. Each test commits its own
change on top and leaves no unfinished rollout behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from cd_checks import lab as fleet
from cd_checks.audit.store import FileStore
from cd_checks.audit.trail import known_good
from cd_checks.lab import Lab
from tests.conftest import REPO, git, init_repo
from tests.lab_fixture import lab_fleet
from tests.rollout.cli_boot import BOOT, main
from tests.rollout.repo_files import YAMLLINT

pytestmark = pytest.mark.lab

STAGES = [
    {"name": "staging", "hosts": "staging"},
    {"name": "canary", "hosts": "production", "percent": 10},
    {"name": "production", "hosts": "production", "waves": ["50%", "100%"]},
]
HEALTH = {
    "testinfra": "tests/health/",
    "http": [{"url": "http://{host}/healthz", "status": 200}],
    "bake_seconds": 1,
    "retries": 1,
    "max_failed_percent": 0,
}
DEPLOY_SH = """\
#!/bin/sh
# deploy.sh HOSTS REVISION: the command applier of the tests, a wrapper around the playbook.
set -e
if [ -e deploy/FAIL ]; then echo "deploy.sh: refusing: deploy/FAIL exists" >&2; exit 3; fi
exec ansible-playbook -i "$CD_CHECKS_INVENTORY" deploy/site.yml --limit "$1" \\
    -e "cd_checks_revision=$2"
"""
# A change that passes validate and staging but breaks production hosts.
BREAK_HEALTHZ = (
    "return {{ site_healthz_status }}",
    'return {{ 500 if "production" in group_names else site_healthz_status }}',
)
BREAK_NGINX = (
    "default_type text/plain;",
    'default_type text/plain;\n    {{ "no_such_directive on;" '
    'if "production" in group_names else "" }}',
)


def rollout_config(
    *,
    stages: list[dict[str, Any]] = STAGES,
    health: dict[str, Any] | None = None,
    apply: dict[str, Any] | None = None,
) -> str:
    section = {
        "inventory": "inventory/hosts.yml",
        "apply": apply or {"ansible": {"playbook": "deploy/site.yml"}},
        "stages": stages,
        "health": health or HEALTH,
        "rollback": {"automatic": True},
    }
    return yaml.safe_dump({"rollout": section}, sort_keys=False)


@dataclass
class World:
    lab: Lab
    root: Path
    scratch: Path

    def commit(
        self, message: str, edit: tuple[str, str] | None = None, files: dict[str, str] | None = None
    ) -> str:
        if edit is not None:
            template = self.root / "deploy/templates/site.conf.j2"
            text = template.read_text()
            assert edit[0] in text
            template.write_text(text.replace(edit[0], edit[1]))
        for name, content in (files or {}).items():
            (self.root / name).write_text(content)
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    @contextmanager
    def change(self, message: str, edit: tuple[str, str]) -> Iterator[str]:
        """Commit a template edit; revert it afterwards, even when the test fails."""
        revision = self.commit(message, edit=edit)
        try:
            yield revision
        finally:
            self.commit(f"revert: {message}", edit=(edit[1], edit[0]))

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD").strip()

    def config(self, name: str, text: str) -> Path:
        path = self.scratch / name
        path.write_text(text)
        return path

    def args(self, *args: str | Path) -> list[str]:
        command, rest = [str(a) for a in args[:2]], [str(a) for a in args[2:]]
        if command[0] == "rollback":
            command, rest = command[:1], [str(a) for a in args[1:]]
        return ["-C", str(self.root), *command, "--inventory", str(self.lab.inventory), *rest]

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
        code = main(self.args(*args))
        out, err = capsys.readouterr()
        return code, out, err

    def process(self, *args: str | Path) -> subprocess.Popen[str]:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", BOOT, *self.args(*args)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def record(self, environment: str) -> dict[str, Any]:
        path = self.root / ".cd-checks/rollout" / environment / "rollout.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def served(self, name: str, path: str = "/") -> tuple[int, str]:
        return get(f"http://{self.lab.host(name).address}{path}")

    def site_conf(self, name: str) -> Path:
        return self.lab.host(name).nginx_conf_dir / "site.conf"

    def plan(self, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
        code, out, _ = self.cli(capsys, "rollout", "plan", "--format", "json")
        assert code == 0
        return dict(json.loads(out))


def get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def waves(result_or_plan: dict[str, Any]) -> list[list[str]]:
    if "waves" in result_or_plan:
        return [w["hosts"] for w in result_or_plan["waves"]]
    return [w for s in result_or_plan["stages"] for w in s["waves"]]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=10, staging=2)


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("config-repo")
    shutil.copytree(REPO / "examples/deploy", root / "deploy")
    shutil.copytree(REPO / "examples/tests/health/nginx", root / "tests/health")
    (root / "deploy.sh").write_text(DEPLOY_SH)
    (root / "deploy.sh").chmod(0o755)
    (root / "cd-checks.yml").write_text(rollout_config())
    (root / ".gitignore").write_text(".cd-checks/\n")
    (root / ".yamllint").write_text(YAMLLINT)
    init_repo(root)
    return World(lab, root, tmp_path_factory.mktemp("scratch"))


@pytest.fixture(scope="module")
def baseline(world: World) -> dict[str, Any]:
    """The first rollout through every stage: it becomes the known-good revision."""
    planned = json.loads(_run_main(world.args("rollout", "plan", "--format", "json"))[1])
    start = time.monotonic()
    code, out = _run_main(world.args("rollout", "run", "--all", "--format", "json"))
    result = json.loads(out)
    return {
        "code": code,
        "plan": planned,
        "result": result,
        "seconds": time.monotonic() - start,
        "revision": world.head(),
    }


def _run_main(argv: list[str]) -> tuple[int, str]:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", BOOT, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    return done.returncode, done.stdout


def test_a_good_change_goes_through_every_stage_as_planned(
    world: World, baseline: dict[str, Any]
) -> None:
    revision = baseline["revision"]
    assert baseline["code"] == 0, baseline["result"]
    assert waves(baseline["result"]) == waves(baseline["plan"])
    assert [len(w) for w in waves(baseline["plan"])] == [2, 1, 4, 3]
    assert sorted(h for w in waves(baseline["plan"]) for h in w) == [
        h.name for h in world.lab.hosts
    ]
    for host in world.lab.hosts:
        assert world.served(host.name) == (
            200,
            f"cd-checks example site on {host.name}, revision {revision}\n",
        )
    every_check = baseline["result"]["waves"][0]["gate"]["hosts"]["lab-01"]
    assert {c["check"].split("::")[-1] for c in every_check} >= {
        "test_healthz_answers_200",
        "test_site_config_is_deployed",
    }
    print(f"good rollout of 10 hosts: {baseline['seconds']:.1f}s")


def test_a_change_that_breaks_health_fails_at_canary_and_is_rolled_back(
    world: World, baseline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    known_good = baseline["revision"]
    with world.change("healthz answers 500 in production", BREAK_HEALTHZ) as bad:
        plan = world.plan(capsys)
        canary = plan["stages"][1]["waves"][0]
        others = [h for w in plan["stages"][2]["waves"] for h in w]
        before = {h: world.site_conf(h).stat().st_mtime_ns for h in others}
        code, out, err = world.cli(capsys, "rollout", "run", "--all")

    assert code == 1, out
    assert f"FAILED: stage canary wave 1: health gate failed on 1 of 1 host(s) ({canary[0]}" in out
    assert (
        f"{canary[0]}: http http://{world.lab.host(canary[0]).address}/healthz: status 500" in out
    )
    assert f"rollback of environment production to {known_good[:12]}: {canary[0]}" in out
    assert "rollback verified" in out
    assert f"canary/rollback {canary[0]} apply ok" in err
    assert world.served(canary[0]) == (
        200,
        f"cd-checks example site on {canary[0]}, revision {known_good}\n",
    )
    assert world.served(canary[0], "/healthz") == (200, "ok\n")
    for host in others:  # never received it: the file on the host was not even rewritten
        assert world.site_conf(host).stat().st_mtime_ns == before[host]
        assert bad not in world.site_conf(host).read_text()
        assert world.served(host)[1].endswith(f"revision {known_good}\n")
    assert world.record("production")["status"] == "rolled_back"  # closed: nothing left open


def test_a_config_nginx_rejects_fails_the_apply_and_is_rolled_back(
    world: World, baseline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    known_good = baseline["revision"]
    with world.change("a directive nginx -t rejects in production", BREAK_NGINX):
        canary = world.plan(capsys)["stages"][1]["waves"][0][0]
        code, out, _ = world.cli(capsys, "rollout", "run", "--all")
    assert code == 1
    assert f"FAILED: stage canary wave 1: apply failed (exit 2) on {canary}" in out
    assert 'unknown directive "no_such_directive"' in out
    assert "rollback verified" in out
    assert world.served(canary)[1].endswith(f"revision {known_good}\n")


def test_a_host_that_goes_down_during_a_wave_fails_the_gate_and_triggers_rollback(
    world: World, baseline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    known_good = baseline["revision"]
    slow = world.config("slow.yml", rollout_config(health={**HEALTH, "bake_seconds": 4}))
    new = world.commit("a good change")
    for stage in ("staging", "canary"):
        assert world.cli(capsys, "rollout", "run", "--stage", stage)[0] == 0
    first_wave = world.plan(capsys)["stages"][2]["waves"][0]
    victim = first_wave[-1]
    stopper = threading.Thread(target=_stop_when_applied, args=(world, victim), daemon=True)
    stopper.start()
    try:
        code, out, _ = world.cli(
            capsys, "rollout", "run", "--stage", "production", "--config", slow
        )
        stopper.join()
        _assert_host_down_rollout(world, capsys, code, out, known_good, new, victim)
    finally:
        fleet.up(world.lab.directory, hosts=10, staging=2, first_address=world.lab.hosts[0].address)
    code, out, _ = world.cli(capsys, "rollback", "--environment", "production")
    assert code == 0 and "rollback verified" in out
    assert world.served(victim)[1].endswith(f"revision {known_good}\n")


def test_a_host_down_within_max_failed_percent_is_named_not_called_healthy(
    world: World, baseline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # The run used to say only "rollout succeeded" and leave the host down unrecorded.
    health = {**HEALTH, "bake_seconds": 4, "max_failed_percent": 25}
    lenient = world.config("lenient.yml", rollout_config(health=health))
    new = world.commit("a change one host will not survive")
    before = _metrics(world, capsys)
    for stage in ("staging", "canary"):
        assert world.cli(capsys, "rollout", "run", "--stage", stage, "--config", lenient)[0] == 0
    victim = world.plan(capsys)["stages"][2]["waves"][0][-1]
    stopper = threading.Thread(target=_stop_when_applied, args=(world, victim), daemon=True)
    stopper.start()
    try:
        code, out, err = world.cli(
            capsys, "rollout", "run", "--stage", "production", "--config", lenient
        )
        stopper.join()
    finally:
        fleet.up(world.lab.directory, hosts=10, staging=2, first_address=world.lab.hosts[0].address)
    assert code == 0, out + err
    assert f"rollout succeeded with 1 unhealthy host(s) left on the new revision: {victim}" in out
    assert "1 host(s) failed their health checks within max_failed_percent" in err
    records = FileStore(world.root / ".cd-checks/audit.jsonl").records()
    final = [r for r in records if r.stage == "production" and r.revision_to == new][-1]
    assert final.outcome == "succeeded" and final.detail["unhealthy_hosts"] == [victim]
    assert {g["host"] for g in final.gates if not g["passed"]} == {victim}
    after = _metrics(world, capsys)
    assert after["deploys"] == before["deploys"] + 1  # canary + production: one deploy
    assert after["failed_deploys"] == before["failed_deploys"]  # within its budget


def _metrics(world: World, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code = main(["-C", str(world.root), "metrics", "-e", "production", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return dict(json.loads(out))


def _assert_host_down_rollout(
    world: World,
    capsys: pytest.CaptureFixture[str],
    code: int,
    out: str,
    known_good: str,
    new: str,
    victim: str,
) -> None:
    first_wave = world.plan(capsys)["stages"][2]["waves"][0]
    assert code == 1
    assert "FAILED: stage production wave 1: health gate failed on 1 of 4" in out
    assert f"{victim}: http http://{world.lab.host(victim).address}/healthz: no answer" in out
    canary = world.plan(capsys)["stages"][1]["waves"][0]
    assert f"rollback of environment production to {known_good[:12]}: " in out
    # The host is still down, so the rollback cannot verify: said, and the env stays blocked.
    assert "ROLLBACK DID NOT VERIFY" in out
    for host in [*canary, *first_wave[:-1]]:
        assert world.served(host)[1].endswith(f"revision {known_good}\n")
    later = world.plan(capsys)["stages"][2]["waves"][1]
    assert all(new not in world.site_conf(h).read_text() for h in later)
    code, _, err = world.cli(capsys, "rollout", "run", "--stage", "canary")
    assert code == 2 and "failed and was not rolled back and verified" in err


def _stop_when_applied(world: World, victim: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        record = world.record("production")
        if record.get("stage") == "production" and record.get("waves_applied", 0) >= 1:
            fleet.stop_host(world.lab, victim)
            return
        time.sleep(0.05)


def test_an_applier_that_exits_non_zero_triggers_rollback(
    world: World,
    baseline: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CD_CHECKS_INVENTORY", str(world.lab.inventory))
    command = world.config(
        "command.yml", rollout_config(apply={"command": ["./deploy.sh", "{hosts}", "{revision}"]})
    )
    before = world.head()
    known_good = _known_good(world, "staging")
    world.commit("deploy.sh refuses this one", files={"deploy/FAIL": "yes\n"})
    code, out, _ = world.cli(capsys, "rollout", "run", "--stage", "staging", "--config", command)
    assert code == 1
    assert "FAILED: stage staging wave 1: apply failed (exit 3) on lab-01, lab-02" in out
    assert "deploy.sh: refusing: deploy/FAIL exists" in out
    assert f"rollback of environment staging to {known_good[:12]}: lab-01, lab-02" in out
    assert "rollback verified" in out
    assert before != world.head()
    (world.root / "deploy/FAIL").unlink()
    world.commit("deploy.sh accepts again")


def _known_good(world: World, environment: str) -> str:
    """The known-good revision as the rollout reads it: from the audit trail."""
    records = FileStore(world.root / ".cd-checks/audit.jsonl").records()
    revision = known_good(records, environment, {"staging": "staging", "production": "production"})
    assert revision is not None
    return revision


class Flapping:
    """A health endpoint that answers 503 to each host's first `bad` requests, then 200;
    with `period`, 503 to every `period`-th request as well (an upstream that flaps)."""

    def __init__(self, bad: int, period: int = 0) -> None:
        self.bad = bad
        self.seen: dict[str, int] = {}
        counts = self.seen
        flapping = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                counts[self.path] = counts.get(self.path, 0) + 1
                n = counts[self.path]
                flap = period > 0 and n % period == 0
                code = 503 if n <= flapping.bad or flap else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"flap\n")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{{name}}"


@pytest.mark.parametrize(("bad", "retries", "passes"), [(2, 2, True), (3, 2, False)])
def test_a_flapping_check_passes_within_its_retries_and_fails_past_them(
    world: World,
    baseline: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    bad: int,
    retries: int,
    passes: bool,
) -> None:
    flapping = Flapping(bad)
    try:
        health = {"http": [{"url": flapping.url}], "bake_seconds": 0, "retries": retries}
        config = world.config("flapping.yml", rollout_config(health=health))
        world.commit(f"flapping {bad}/{retries}")
        code, out, _ = world.cli(capsys, "rollout", "run", "--stage", "staging", "--config", config)
    finally:
        flapping.server.shutdown()
    assert flapping.seen["/lab-01"] >= min(bad, retries) + 1
    if passes:
        assert code == 0 and "gate passed" in out
    else:
        assert code == 1
        assert (
            "lab-01: http http://127.0.0.1:" in out
            and "status 503, expected 200 (3 failures)" in out
        )
        assert "rollback of environment staging" in out


def test_a_steady_one_in_three_flap_gets_one_verdict_whatever_the_bake_time(
    world: World, baseline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # The failure count used to grow with the bake: this flap passed a 2 s bake and
    # was rolled back after 60 s. Now the share of failed attempts decides.
    flapping = Flapping(0, period=3)
    try:
        for bake, rate, passes in [(2, 0.5, True), (8, 0.5, True), (8, 0.2, False)]:
            health = {
                "http": [{"url": flapping.url}],
                "bake_seconds": bake,
                "retries": 2,
                "max_failure_rate": rate,
            }
            config = world.config(f"flap-{bake}-{rate}.yml", rollout_config(health=health))
            world.commit(f"flap {bake} {rate}")
            code, out, _ = world.cli(
                capsys, "rollout", "run", "--stage", "staging", "--config", config
            )
            final = FileStore(world.root / ".cd-checks/audit.jsonl").records()[-1]
            assert final.kind == "stage" and final.stage == "staging"
            if passes:
                assert code == 0 and "gate passed" in out, out
                assert final.outcome == "succeeded"
            else:
                assert code == 1 and "flapping: " in out and "max_failure_rate 0.2" in out, out
                assert "rollback of environment staging" in out
                failed = [g for g in final.gates if not g["passed"] and g["wave"] == 1]
                assert failed and all("flapping: " in g["detail"] for g in failed), failed
                # the endpoint flaps for the rollback's gate too: it cannot verify, and says so
                assert final.outcome == "rollback_failed" and not final.rollback["verified"]
                assert final.rollback["exposed_at"] <= final.rollback["detected_at"]
    finally:
        flapping.server.shutdown()
    # put staging back with the module's own health checks, for the tests after this one
    code, out, _ = world.cli(capsys, "rollback", "--environment", "staging")
    assert code == 0 and "rollback verified" in out, out


def test_a_live_lock_refuses_and_a_killed_run_is_detected_then_resumed(
    world: World, baseline: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stages = [{"name": "staging", "hosts": "staging", "waves": ["50%", "100%"]}, *STAGES[1:]]
    slow = world.config(
        "two-waves.yml", rollout_config(stages=stages, health={**HEALTH, "bake_seconds": 30})
    )
    revision = world.commit("a change we will interrupt")
    first = world.process("rollout", "run", "--stage", "staging", "--config", slow)
    try:
        _wait_for(lambda: world.record("staging").get("waves_applied", 0) >= 1, first)
        code, _, err = world.cli(capsys, "rollout", "run", "--stage", "staging", "--config", slow)
        assert code == 2
        assert f"environment staging is locked by pid {first.pid}" in err
        os.killpg(first.pid, signal.SIGKILL)  # as a CI runner cancels a job
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    code, _, err = world.cli(capsys, "rollout", "run", "--stage", "staging", "--config", slow)
    assert code == 2
    assert f"interrupted rollout of {revision[:12]} to environment staging" in err
    # killed while wave 1 baked: its one host changed, wave 2 never started
    assert "left 1 host(s) changed; continue it" in err
    # the killed run's worktree is gone as soon as the next run starts
    assert "removed the worktree of a killed run" in err
    assert not list((world.root / ".cd-checks/worktrees").glob("cd-checks-worktree-*"))
    assert f"broke the lock of environment staging held by pid {first.pid}" in err
    assert "--resume" in err and "cd-checks rollback" in err
    fast = world.config("two-waves-fast.yml", rollout_config(stages=stages))
    code, out, err = world.cli(
        capsys, "rollout", "run", "--stage", "staging", "--resume", "--config", fast
    )
    assert code == 0, out
    assert "staging wave 1: lab-0" in out and "already applied (resumed), gate passed" in out
    assert all(world.served(h)[1].endswith(f"revision {revision}\n") for h in ("lab-01", "lab-02"))
    records = FileStore(world.root / ".cd-checks/audit.jsonl").records()
    mine = [r for r in records if r.kind == "stage" and r.revision_to == revision]
    starts = [r for r in mine if r.outcome == "started"]
    finals = {r.outcome: r for r in mine if r.outcome != "started"}
    assert len(starts) == 2 and set(finals) == {"interrupted", "succeeded"}, mine
    killed, resumed = starts
    # the killed run is closed as interrupted, naming the run that resumed it
    assert finals["interrupted"].refs == (killed.id, resumed.id)
    assert finals["succeeded"].refs[0] == resumed.id


def _wait_for(condition: Any, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended early ({process.returncode}): {out}\n{err}")
        assert time.monotonic() < deadline, "the run never applied a wave"
        time.sleep(0.05)
