"""The GitLab templates, really run by gitlab-ci-local on this machine.

gitlab-ci-local reads the pipeline as GitLab would (`include: local:` with
`inputs:`, `spec:`, `needs`, `rules`, `resource_group`, artifacts between
jobs) and runs each job's script in a shell (`--force-shell-executor`: the
jobs name an image; `--shell-isolation`: each job gets its own copy of the
repository under `.gitlab-ci-local/builds/<job>/`). The jobs install
cd-checks the way a user's do, with pip, from a wheel of this checkout
(`pip-args: --no-deps --no-index`, so nothing is fetched) into a throwaway
virtualenv that sees the machine's packages.

- validate: the example repository's good change passes; the bad change
  fails the job, and its JUnit and Code Quality files say which file:line
  broke which rule.
- deploy: a real staging -> canary -> production pipeline against a lab
  fleet (real ansible-playbook, testinfra over ssh, nginx), the audit trail
  on a git branch pushed to a bare "origin" so known-good survives from one
  pipeline to the next; a change that breaks production's /healthz fails the
  canary job, which rolls its host back; the rollback job's script puts an
  unfinished environment back on known-good.

gitlab-ci-local (4.73.0) never starts a `when: on_failure` job after a job
was skipped for a failed need (GitLab does: a skipped job is finished there),
so the rollback job's script is run as gitlab-ci-local resolved it
(`--preview`), in the failed pipeline's build directory.

The GitHub rollout action cannot run outside GitHub's runner; its rollout
step's script is run with bash as written, inputs in the environment, on the
same fleet: stage by stage, then `command: rollback` of a release stopped
after its canary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import venv
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cd_checks.lab import Lab
from tests.conftest import EXAMPLES, REPO, git
from tests.lab_fixture import lab_fleet
from tests.rollout.repo_files import YAMLLINT

GITLAB_CI_LOCAL = shutil.which("gitlab-ci-local")
INSTALL_HINT = "npm install -g gitlab-ci-local@4.73.0 (4.73.0 is the last release for Node 20)"

pytestmark = pytest.mark.xdist_group("gitlab-ci-local")
needs_gitlab_ci_local = pytest.mark.skipif(
    GITLAB_CI_LOCAL is None, reason=f"gitlab-ci-local not on PATH: {INSTALL_HINT}"
)

BREAK_HEALTHZ = (
    "return {{ site_healthz_status }}",
    'return {{ 500 if "production" in group_names else site_healthz_status }}',
)


@dataclass(frozen=True)
class Pipeline:
    code: int
    log: str
    builds: Path

    def build(self, job: str) -> Path:
        return self.builds / job


@dataclass(frozen=True)
class Installer:
    """A virtualenv whose `python -m pip install` of `wheel` works offline."""

    venv: Path
    wheel: Path

    def inputs(self) -> dict[str, str]:
        return {"requirement": str(self.wheel), "pip-args": "--no-deps --no-index"}

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(self.venv / "bin"), str(Path(sys.executable).parent)])
        return {**os.environ, "PATH": f"{path}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def installer(tmp_path_factory: pytest.TempPathFactory) -> Installer:
    base = tmp_path_factory.mktemp("cd-checks-install")
    source = base / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("cd_checks", "policies"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(base),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = base.glob("cd_checks-*.whl")
    venv.create(base / "venv", system_site_packages=True, with_pip=False)
    return Installer(base / "venv", wheel)


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def write_pipeline(root: Path, includes: list[tuple[str, dict[str, str]]]) -> None:
    """`.gitlab-ci.yml` including the given templates (copied into the repository)."""
    (root / "gitlab-template").mkdir(exist_ok=True)
    lines = ["include:"]
    for template, inputs in includes:
        shutil.copy2(REPO / "gitlab-template" / template, root / "gitlab-template" / template)
        lines += [f"  - local: gitlab-template/{template}", "    inputs:"]
        lines += [f"      {name}: {json.dumps(value)}" for name, value in inputs.items()]
    (root / ".gitlab-ci.yml").write_text("\n".join(lines) + "\n")


def gitlab_ci_local(root: Path, installer: Installer, *args: str) -> Pipeline:
    shutil.rmtree(root / ".gitlab-ci-local", ignore_errors=True)
    done = subprocess.run(
        [
            str(GITLAB_CI_LOCAL),
            "--force-shell-executor",
            "--shell-isolation",
            "--no-artifacts-to-source",
            "--home",
            str(root.parent / "gitlab-ci-local-home"),
            *args,
        ],
        cwd=root,
        env=installer.env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Pipeline(done.returncode, done.stdout + done.stderr, root / ".gitlab-ci-local/builds")


def preview(root: Path) -> dict[str, Any]:
    """The pipeline as gitlab-ci-local resolved it: includes merged, inputs interpolated."""
    done = subprocess.run(
        [str(GITLAB_CI_LOCAL), "--preview"], cwd=root, capture_output=True, text=True, check=True
    )
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


# --- validate ----------------------------------------------------------------------------


@pytest.fixture
def ops_repo(tmp_path: Path, installer: Installer) -> Path:
    root = tmp_path / "ops"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".cd-checks", "ci"))
    write_pipeline(root, [("cd-checks.yml", {**installer.inputs(), "builtin": "nginx monitoring"})])
    (root / ".gitignore").write_text(".cd-checks/\n.gitlab-ci-local/\n")
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "ops repository")
    return root


@needs_gitlab_ci_local
def test_validate_job_passes_the_good_change(ops_repo: Path, installer: Installer) -> None:
    pipeline = gitlab_ci_local(ops_repo, installer)
    assert pipeline.code == 0, pipeline.log
    assert "PASS  cd-checks-validate" in pipeline.log
    build = pipeline.build("cd-checks-validate")
    assert json.loads((build / "gl-code-quality.json").read_text()) == []
    suites = ET.parse(build / "cd-checks-junit.xml").getroot()
    assert suites.get("failures") == "0"
    assert git(ops_repo, "status", "--porcelain") == ""  # the work tree stays clean


@needs_gitlab_ci_local
def test_validate_job_fails_the_bad_change_and_its_reports_say_where(
    ops_repo: Path, installer: Installer
) -> None:
    shutil.copytree(ops_repo / "bad-change", ops_repo, dirs_exist_ok=True)
    commit_all(ops_repo, "the bad change")
    pipeline = gitlab_ci_local(ops_repo, installer)
    assert pipeline.code != 0
    assert "FAIL  cd-checks-validate" in pipeline.log
    build = pipeline.build("cd-checks-validate")
    quality = json.loads((build / "gl-code-quality.json").read_text())
    where = {(i["check_name"].split("/")[-1], i["location"]["path"]) for i in quality}
    assert ("NGINX-003", "nginx/sites/files.conf") in where
    assert all(i["location"]["lines"]["begin"] >= 1 for i in quality)
    suites = ET.parse(build / "cd-checks-junit.xml").getroot()
    assert int(suites.get("failures", "0")) > 0
    failed = [c for c in suites.iter("testcase") if c.find("failure") is not None]
    assert any(
        "nginx/sites/files.conf" in (c.get("name", "") + c.get("classname", "")) for c in failed
    )


# --- deploy ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=4, staging=1)


@dataclass(frozen=True)
class DeployRepo:
    root: Path
    origin: Path
    lab: Lab
    installer: Installer

    def run(self, *args: str) -> Pipeline:
        return gitlab_ci_local(self.root, self.installer, *args)

    def served(self, host: str, path: str = "/") -> tuple[int, str]:
        url = f"http://{self.lab.host(host).address}{path}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def revision_on(self, host: str) -> str:
        return self.served(host)[1].rsplit("revision ", 1)[-1].strip()

    def edit(self, change: tuple[str, str]) -> None:
        template = self.root / "deploy/templates/site.conf.j2"
        text = template.read_text()
        assert change[0] in text
        template.write_text(text.replace(change[0], change[1]))

    def audit_records(self) -> int:
        listing = git(self.origin, "ls-tree", "-r", "--name-only", "refs/heads/cd-checks/audit")
        return len(listing.split())


def deploy_config() -> str:
    rollout = {
        "inventory": "inventory/hosts.yml",
        "apply": {"ansible": {"playbook": "deploy/site.yml"}},
        "stages": [
            {"name": "staging", "hosts": "staging"},
            {"name": "canary", "hosts": "production", "percent": 10},
            {"name": "production", "hosts": "production", "waves": ["50%", "100%"]},
        ],
        "health": {
            "testinfra": "tests/health/",
            "http": [{"url": "http://{host}/healthz", "status": 200}],
            "bake_seconds": 1,
            "retries": 1,
            "max_failed_percent": 0,
        },
        "rollback": {"automatic": True},
    }
    config = {
        "files": {"exclude": [".gitlab-ci.yml", "gitlab-template/**"]},
        "rollout": rollout,
        # Known-good must outlive the pipeline: the audit branch is pushed to origin.
        "audit": {"store": "git", "remote": "origin"},
    }
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture(scope="module")
def deploy_repo(
    lab: Lab, installer: Installer, tmp_path_factory: pytest.TempPathFactory
) -> DeployRepo:
    base = tmp_path_factory.mktemp("deploy")
    root, origin = base / "ops", base / "origin.git"
    shutil.copytree(EXAMPLES / "deploy", root / "deploy")
    shutil.copytree(EXAMPLES / "tests/health", root / "tests/health")
    (root / "cd-checks.yml").write_text(deploy_config())
    (root / ".yamllint").write_text(YAMLLINT)
    (root / ".gitignore").write_text(".cd-checks/\n.gitlab-ci-local/\n")
    inputs = {**installer.inputs(), "inventory": str(lab.inventory)}
    write_pipeline(root, [("cd-checks-deploy.yml", inputs)])
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "ops repository")
    git(base, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    return DeployRepo(root, origin, lab, installer)


@pytest.fixture(scope="module")
def first_deploy(deploy_repo: DeployRepo) -> tuple[str, Pipeline]:
    """The first pipeline, production approved: it makes the known-good revision."""
    revision = git(deploy_repo.root, "rev-parse", "HEAD").strip()
    return revision, deploy_repo.run("--manual", "cd-checks-production")


@needs_gitlab_ci_local
@pytest.mark.lab
def test_deploy_template_resolves_to_the_guarded_pipeline(deploy_repo: DeployRepo) -> None:
    jobs = preview(deploy_repo.root)
    assert jobs["cd-checks-canary"]["needs"][0]["job"] == "cd-checks-staging"
    assert jobs["cd-checks-production"]["needs"][0]["job"] == "cd-checks-canary"
    assert jobs["cd-checks-production"]["rules"][0]["when"] == "manual"
    assert jobs["cd-checks-production"]["rules"][0]["allow_failure"] is False
    assert {job: jobs[job]["resource_group"] for job in jobs if "resource_group" in jobs[job]} == {
        "cd-checks-staging": "staging",
        "cd-checks-canary": "production",
        "cd-checks-production": "production",
        "cd-checks-rollback": "production",
    }
    assert [jobs[j]["environment"]["name"] for j in ("cd-checks-staging", "cd-checks-canary")] == [
        "staging",
        "canary",
    ]
    assert jobs["cd-checks-rollback"]["stage"] == ".post"
    assert jobs["cd-checks-rollback"]["rules"][0]["when"] == "on_failure"
    # An empty input stays an empty string, not null.
    assert jobs["cd-checks-staging"]["variables"]["CD_CHECKS_CONFIG"] == ""


@needs_gitlab_ci_local
@pytest.mark.lab
def test_a_good_change_goes_staging_canary_production(
    deploy_repo: DeployRepo, first_deploy: tuple[str, Pipeline]
) -> None:
    revision, pipeline = first_deploy
    assert pipeline.code == 0, pipeline.log
    for job in ("cd-checks-staging", "cd-checks-canary", "cd-checks-production"):
        assert f"PASS  {job}" in pipeline.log
    jobs = ("staging", "canary", "production")
    succeeded = [re.search(rf"cd-checks-{job}\s+> rollout succeeded", pipeline.log) for job in jobs]
    assert all(succeeded), pipeline.log
    order = [match.start() for match in succeeded if match]
    assert order == sorted(order)  # each job started after the one it needs
    for host in deploy_repo.lab.hosts:
        assert deploy_repo.served(host.name) == (
            200,
            f"cd-checks example site on {host.name}, revision {revision}\n",
        )
    assert deploy_repo.audit_records() >= 3  # one record per stage, pushed to origin


@needs_gitlab_ci_local
@pytest.mark.lab
def test_a_change_that_breaks_production_fails_the_canary_job_and_rolls_back(
    deploy_repo: DeployRepo, first_deploy: tuple[str, Pipeline]
) -> None:
    known_good = first_deploy[0]
    deploy_repo.edit(BREAK_HEALTHZ)
    bad = commit_all(deploy_repo.root, "healthz answers 500 in production")
    try:
        pipeline = deploy_repo.run("--manual", "cd-checks-production")
        rollback = run_rollback_job(deploy_repo, pipeline.build("cd-checks-canary"))
    finally:
        deploy_repo.edit((BREAK_HEALTHZ[1], BREAK_HEALTHZ[0]))
        commit_all(deploy_repo.root, "revert: healthz answers 500 in production")
    assert pipeline.code != 0
    assert "PASS  cd-checks-staging" in pipeline.log
    assert "FAIL  cd-checks-canary" in pipeline.log
    assert not re.search(r"cd-checks-production\s+>", pipeline.log)  # never started
    assert "rollback verified" in pipeline.log
    staging, canary, *others = [h.name for h in deploy_repo.lab.hosts]
    assert deploy_repo.revision_on(staging) == bad  # staging's health held
    assert deploy_repo.revision_on(canary) == known_good
    assert deploy_repo.served(canary, "/healthz") == (200, "ok\n")
    assert all(deploy_repo.revision_on(host) == known_good for host in others)
    # The canary rolled itself back: the rollback job finds nothing left to do.
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert "nothing to roll back" in rollback.stdout


@needs_gitlab_ci_local
@pytest.mark.lab
def test_the_rollback_job_puts_an_unfinished_environment_back_on_known_good(
    deploy_repo: DeployRepo, first_deploy: tuple[str, Pipeline]
) -> None:
    known_good = first_deploy[0]
    new = commit_all(deploy_repo.root, "a change nobody approves for production")
    pipeline = deploy_repo.run()  # the manual production job is not started
    assert "PASS  cd-checks-canary" in pipeline.log, pipeline.log
    assert not re.search(r"cd-checks-production\s+>", pipeline.log)
    canary = deploy_repo.lab.hosts[1].name
    assert deploy_repo.revision_on(canary) == new
    rollback = run_rollback_job(deploy_repo, pipeline.build("cd-checks-canary"))
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert "rollback verified" in rollback.stdout
    assert deploy_repo.revision_on(canary) == known_good
    assert all(deploy_repo.revision_on(h.name) == known_good for h in deploy_repo.lab.hosts[1:])


def run_rollback_job(repo: DeployRepo, build: Path) -> subprocess.CompletedProcess[str]:
    """The rollback job's before_script and script as resolved, in a failed job's build dir."""
    job = preview(repo.root)["cd-checks-rollback"]
    variables = {k: str(v) for k, v in job["variables"].items()}
    script = "\n".join([*job["before_script"], *job["script"]])
    return subprocess.run(
        ["sh", "-e", "-c", script],
        cwd=build,
        env={**repo.installer.env(), **variables},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- the GitHub rollout action's script, on the same fleet ----------------------------------


def github_rollout_step(
    repo: DeployRepo, checkout: Path, **inputs: str
) -> subprocess.CompletedProcess[str]:
    """The rollout action's `cd-checks rollout` step as written, its inputs in the environment."""
    steps = yaml.safe_load((REPO / "github-action/rollout/action.yml").read_text())["runs"]["steps"]
    (step,) = [s for s in steps if s.get("name") == "cd-checks rollout"]
    env = {"COMMAND": "run", "STAGE": "", "ALL": "false", "ROLLBACK_TO": "", "CONFIG": ""}
    env |= {"BREAK_GLASS": "false", "REASON": "", "TICKET": "", "GITHUB_TOKEN": ""}
    env |= {"INVENTORY": str(repo.lab.inventory), **inputs}
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=checkout,
        env={**repo.installer.env(), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.lab
def test_github_rollout_action_deploys_stage_by_stage_and_rolls_back(
    deploy_repo: DeployRepo, tmp_path: Path
) -> None:
    checkout = tmp_path / "checkout"  # what actions/checkout with fetch-depth 0 leaves
    git(tmp_path, "clone", "-q", str(deploy_repo.root), str(checkout))
    git(checkout, "remote", "set-url", "origin", str(deploy_repo.origin))
    release = git(checkout, "rev-parse", "HEAD").strip()
    for stage in ("staging", "canary", "production"):
        done = github_rollout_step(deploy_repo, checkout, STAGE=stage, REVISION=release)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "rollout succeeded" in done.stdout
    assert all(deploy_repo.revision_on(h.name) == release for h in deploy_repo.lab.hosts)

    next_release = commit_all(checkout, "a release stopped after its canary")
    for stage in ("staging", "canary"):
        done = github_rollout_step(deploy_repo, checkout, STAGE=stage, REVISION=next_release)
        assert done.returncode == 0, done.stdout + done.stderr
    canary = deploy_repo.lab.hosts[1].name
    assert deploy_repo.revision_on(canary) == next_release
    done = github_rollout_step(deploy_repo, checkout, COMMAND="rollback")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rollback verified" in done.stdout
    assert deploy_repo.revision_on(canary) == release
