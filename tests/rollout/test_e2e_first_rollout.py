"""A way out of a failed first rollout, end to end on a real 3-host lab fleet: real git
(the audit trail on a branch pushed to origin), ansible-playbook over ssh, nginx, testinfra
and HTTP probes. Nothing here is faked.

The fleet already serves the site at revision `before`, deployed by hand with
ansible-playbook, as a team did before it adopted cd-checks: there is no known-good
revision in the trail. The first cd-checks rollout ships a bad nginx change; its gate fails
and the hosts must serve `before` again. The tests run in order on one repository and trail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cd_checks.audit.record import AuditRecord
from cd_checks.audit.store import GitBranchStore
from cd_checks.lab import Lab, lab_environment
from tests.conftest import REPO, git, init_repo
from tests.lab_fixture import lab_fleet
from tests.rollout.cli_boot import main
from tests.rollout.repo_files import YAMLLINT
from tests.rollout.test_e2e import get

pytestmark = pytest.mark.lab

# The bad change: a new title, and /healthz answers 500 (nginx -t accepts it).
BAD_TITLE = ('site_title: "cd-checks example site"', 'site_title: "the new site"')
BAD_HEALTHZ = ("return {{ site_healthz_status }}", "return 500")
WORSE_HEALTHZ = ("return 500", "return 503")


def rollout_config(*, automatic: bool) -> str:
    section = {
        "inventory": "inventory/hosts.yml",
        "apply": {"ansible": {"playbook": "deploy/site.yml"}},
        "stages": [
            {"name": "staging", "hosts": "staging"},
            {"name": "production", "hosts": "production"},
        ],
        "health": {
            "testinfra": "tests/health/",
            "http": [{"url": "http://{host}/healthz", "status": 200}],
            "bake_seconds": 1,
            "retries": 1,
            "max_failed_percent": 0,
        },
        "rollback": {"automatic": automatic},
    }
    # The trail must outlive the CI job: a branch pushed to origin.
    audit = {"store": "git", "remote": "origin"}
    return yaml.safe_dump({"rollout": section, "audit": audit}, sort_keys=False)


@dataclass
class World:
    lab: Lab
    root: Path
    scratch: Path

    def commit(self, message: str, *edits: tuple[str, tuple[str, str]]) -> str:
        for name, (old, new) in edits:
            path = self.root / name
            text = path.read_text()
            assert old in text
            path.write_text(text.replace(old, new))
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message)
        git(self.root, "push", "-q", "origin", "main")
        return git(self.root, "rev-parse", "HEAD").strip()

    def cli(
        self, capsys: pytest.CaptureFixture[str], root: Path, *args: str | Path
    ) -> tuple[int, str, str]:
        argv = [str(a) for a in args]
        code = main(["-C", str(root), *argv, "--inventory", str(self.lab.inventory)])
        out, err = capsys.readouterr()
        return code, out, err

    def served(self, name: str, path: str = "/") -> tuple[int, str]:
        return get(f"http://{self.lab.host(name).address}{path}")

    def site(self, name: str, revision: str, title: str = "cd-checks example site") -> str:
        return f"{title} on {name}, revision {revision}\n"

    def records(self) -> list[AuditRecord]:
        return GitBranchStore(self.root, remote="origin").records()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=3, staging=2)


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("first-rollout")
    root, origin = base / "ops", base / "origin.git"
    shutil.copytree(REPO / "examples/deploy", root / "deploy")
    shutil.copytree(REPO / "examples/tests/health/nginx", root / "tests/health")
    (root / "cd-checks.yml").write_text(rollout_config(automatic=True))
    (root / ".gitignore").write_text(".cd-checks/\n")
    (root / ".yamllint").write_text(YAMLLINT)
    init_repo(root)
    git(base, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    return World(lab, root, base)


@pytest.fixture(scope="module")
def before(world: World) -> str:
    """The site the fleet serves before cd-checks: deployed by hand with ansible-playbook."""
    revision = git(world.root, "rev-parse", "HEAD").strip()
    done = subprocess.run(  # noqa: S603
        [
            shutil.which("ansible-playbook") or "ansible-playbook",
            "-i",
            str(world.lab.inventory),
            "deploy/site.yml",
            "-e",
            f"cd_checks_revision={revision}",
        ],
        cwd=world.root,
        env={**os.environ, **lab_environment(world.lab)},
        stdin=subprocess.DEVNULL,  # ansible refuses a non-blocking stdin the runner may have
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for host in world.lab.hosts:
        assert world.served(host.name) == (200, world.site(host.name, revision))
    assert world.records() == []  # no known-good revision anywhere
    return revision


def test_a_failed_first_rollout_is_rolled_back_to_what_the_hosts_served_before(
    world: World, before: str, capsys: pytest.CaptureFixture[str]
) -> None:
    production_conf = world.lab.host("lab-03").nginx_conf_dir / "site.conf"
    untouched = production_conf.stat().st_mtime_ns
    bad = world.commit(
        "new title; healthz answers 500",
        ("deploy/vars/site.yml", BAD_TITLE),
        ("deploy/templates/site.conf.j2", BAD_HEALTHZ),
    )
    code, out, err = world.cli(capsys, world.root, "rollout", "run", "--all")
    assert code == 1, out + err
    assert "FAILED: stage staging wave 1: health gate failed on 2 of 2 host(s)" in out
    assert "lab-01: http http://" in out and "/healthz: status 500" in out
    said = (
        f"no known-good revision yet: rolling back to the deploy's base revision {before[:12]} "
        f"(the parent of {bad[:12]})"
    )
    assert f"note: {said}" in out and f"rollback info {said}" in err
    assert f"rollback of environment staging to {before[:12]}: lab-01, lab-02" in out
    assert "rollback verified" in out and "NOT ROLLED BACK" not in out
    for name in ("lab-01", "lab-02", "lab-03"):
        assert world.served(name) == (200, world.site(name, before))
        assert world.served(name, "/healthz") == (200, "ok\n")
    assert production_conf.stat().st_mtime_ns == untouched  # production never got it
    start, final = world.records()
    assert (start.outcome, start.revision_to, start.base_revision) == ("started", bad, before)
    assert final.outcome == "rolled_back" and final.rollback["target"] == before
    assert final.rollback["reason"] == said
    # One test, not two: the next part needs this one's rollback, and a scheduler that
    # splits a module's tests would hand it fresh fixtures.
    _then_a_fresh_ci_checkout_rolls_a_failed_run_back_with_the_trail_alone(world, before, capsys)


def _then_a_fresh_ci_checkout_rolls_a_failed_run_back_with_the_trail_alone(
    world: World, before: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No known-good yet, automatic rollback off; the rollback job is a fresh clone.

    After the failed first rollout above: the environment was rolled back to `before`,
    so that is the next deploy's base too, not the parent of the next commit (the broken
    one).
    """
    manual = world.scratch / "manual.yml"
    manual.write_text(rollout_config(automatic=False))
    worse = world.commit("healthz answers 503", ("deploy/templates/site.conf.j2", WORSE_HEALTHZ))
    code, out, _ = world.cli(
        capsys, world.root, "rollout", "run", "--stage", "staging", "--config", manual
    )
    assert code == 1 and "NOT ROLLED BACK (lab-01, lab-02)" in out
    assert world.served("lab-01") == (200, world.site("lab-01", worse, "the new site"))
    assert world.served("lab-01", "/healthz")[0] == 503
    fresh = world.scratch / "fresh-clone"
    git(world.scratch, "clone", "-q", "-b", "main", str(world.scratch / "origin.git"), str(fresh))
    code, out, err = world.cli(capsys, fresh, "rollback")
    assert code == 0, out + err
    failed = next(
        r for r in reversed(world.records()) if (r.kind, r.outcome) == ("stage", "started")
    )
    assert failed.revision_to == worse and failed.base_revision == before
    assert (
        f"note: no known-good revision yet: rolling back to the deploy's base revision "
        f"{before[:12]} (recorded by deploy {failed.id})"
    ) in out
    assert f"rollback of environment staging to {before[:12]}: lab-01, lab-02" in out
    assert "rollback verified" in out
    for name in ("lab-01", "lab-02", "lab-03"):
        assert world.served(name) == (200, world.site(name, before))
    assert world.records()[-1].kind == "rollback" and world.records()[-1].outcome == "succeeded"
