"""The GitLab components, adopted as the README says and really run by gitlab-ci-local.

Each scratch repository gets the README's GitLab snippet as its
`.gitlab-ci.yml`, unchanged but for inputs that make cd-checks install offline
(`install`: a wheel of this checkout, `pip-args: --no-deps --no-index`), and
gitlab-ci-local (4.73.0) reads the pipeline as GitLab would: it resolves
`include: component:` (`$CI_SERVER_FQDN/cd-checks/cd-checks/validate@0.2.0`),
`include: project:` (`ref: v0.2.0`) and `include: local:`, checks the inputs
against each `spec:`, interpolates them, and runs `needs`, `rules`,
`resource_group`, artifacts and the cache between jobs, each job's script in a
shell (`--force-shell-executor`: the jobs name an image; `--shell-isolation`:
each job in its own copy of the repository under `.gitlab-ci-local/builds/`).

What is not GitLab's own: gitlab-ci-local would fetch a component or project
include from the server of the repository's remote (here `gitlab.com`, the
`gcl-origin` remote) with a sparse `git clone` of the ref. Offline, the tests
put this checkout's `templates/` where that clone lands, its include cache
`.gitlab-ci-local/includes/gitlab.com/cd-checks/cd-checks/<ref>/templates/`,
so the include lines run as written but the fetch itself does not. The
component form is also checked against GitLab's schema in
test_gitlab_template.py. gitlab-ci-local shows no `artifacts:reports`: the tests
read the report files in the job's build directory.

Jobs run in a throwaway virtualenv of their own that sees a second one holding
cd-checks' dependencies (its `rollout` extra, installed from the declared
ranges) but never cd-checks itself: what a job runs is what its own
`pip install` put there.

- validate: each of the README's three include forms passes the example
  repository's good change; the bad change fails the job, its JUnit and Code
  Quality files say which file:line broke which rule, and the content cache is
  saved although the job failed; a config error fails it with cd-checks' one
  error line; by default the job installs cd-checks from the component's own
  project (`$CI_SERVER_URL/cd-checks/cd-checks.git`) at the release's tag.
- deploy: the README's whole pipeline (validate, then staging -> canary ->
  production) against a lab fleet (real ansible-playbook, testinfra over ssh,
  nginx), the audit trail on a git branch pushed to a bare "origin" so
  known-good survives from one pipeline to the next; a change that breaks
  production's /healthz fails the canary job, which rolls its host back; the
  rollback job's script puts an unfinished environment back on known-good.
- change types: the README's pipeline on a repository with two change types
  (a command applier writing a file per type and host, no fleet needed): the
  first push deploys both, in the config's order; a push that changes only
  one type's file deploys only that type, the other says "nothing to deploy"
  in every deploy job.

gitlab-ci-local never starts a `when: on_failure` job after a job was skipped
for a failed need (GitLab does: a skipped job is finished there), so the
rollback job's script is run as gitlab-ci-local resolved it (`--preview`), in
the failed pipeline's build directory.

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

from cd_checks import __version__
from cd_checks.lab import Lab
from tests.ci.gitlab_components import (
    COMPONENT,
    TEMPLATES,
    component_of,
    include_ref,
    readme_snippets,
)
from tests.ci.signed_ops import SignedOps
from tests.conftest import EXAMPLES, REPO, git, write_tree
from tests.lab_fixture import lab_fleet
from tests.rollout.repo_files import YAMLLINT

GITLAB_CI_LOCAL = shutil.which("gitlab-ci-local")
INSTALL_HINT = "npm install -g gitlab-ci-local@4.73.0 (4.73.0 is the last release for Node 20)"
# The scratch repositories' GitLab: $CI_SERVER_FQDN and $CI_SERVER_URL come from it.
GITLAB = "gitlab.com"
REMOTE = f"https://{GITLAB}/acme/ops.git"


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
    """A wheel of this checkout, and cd-checks' dependencies for the jobs' virtualenvs."""

    wheel: Path
    dependencies: Path  # a virtualenv with the rollout extra's packages, without cd-checks

    def inputs(self) -> dict[str, str]:
        return {"install": str(self.wheel), "pip-args": "--no-deps --no-index"}

    def job_venv(self, directory: Path) -> Path:
        """A virtualenv without cd-checks that sees the dependencies (and their pip)."""
        venv.create(directory, with_pip=False)
        (site,) = directory.glob("lib/python*/site-packages")
        (deps,) = self.dependencies.glob("lib/python*/site-packages")
        (site / "cd-checks-dependencies.pth").write_text(f"{deps}\n")
        return directory

    def env(self, job_venv: Path) -> dict[str, str]:
        """The jobs' environment: their python first, then the dependencies' programs."""
        ours = str(Path(sys.executable).parent)  # the test run's own venv stays out
        rest = [p for p in os.environ["PATH"].split(os.pathsep) if p and p != ours]
        path = [str(job_venv / "bin"), str(self.dependencies / "bin"), *rest]
        return {**os.environ, "PATH": os.pathsep.join(path)}


def source_copy(target: Path) -> Path:
    """What a build of cd-checks needs from this checkout (as the working tree has it)."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    for name in ("cd_checks", "policies", "templates"):
        shutil.copytree(REPO / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(scope="module")
def installer(tmp_path_factory: pytest.TempPathFactory) -> Installer:
    base = tmp_path_factory.mktemp("cd-checks-install")
    source = source_copy(base / "src")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "--quiet", "--no-deps", "-w", str(base), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = base.glob("cd_checks-*.whl")
    python = getattr(sys, "_base_executable", sys.executable)
    dependencies = base / "dependencies"
    subprocess.run([python, "-m", "venv", str(dependencies)], check=True, capture_output=True)
    install = [str(dependencies / "bin/python"), "-m", "pip", "install", "--quiet"]
    # Today's pip, as a python image has it (ensurepip's may be too old for `git+file:`).
    subprocess.run([*install, "--upgrade", "pip"], check=True, capture_output=True)
    if os.environ.get("CD_CHECKS_CONSTRAINTS"):
        install += ["--constraint", os.environ["CD_CHECKS_CONSTRAINTS"]]
    subprocess.run([*install, f"{wheel}[rollout]"], check=True, capture_output=True)
    uninstall = [str(dependencies / "bin/python"), "-m", "pip", "uninstall", "--quiet", "-y"]
    subprocess.run([*uninstall, "cd-checks"], check=True, capture_output=True)
    return Installer(wheel, dependencies)


@pytest.fixture(scope="module")
def job_venv(installer: Installer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return installer.job_venv(tmp_path_factory.mktemp("jobs") / "venv")


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def new_repository(root: Path) -> None:
    (root / ".gitignore").write_text(".gitlab-ci-local/\n")
    git(root, "init", "-q", "-b", "main")
    # gitlab-ci-local takes the GitLab server from `gcl-origin` before `origin`.
    git(root, "remote", "add", "gcl-origin", REMOTE)


def adopt(root: Path, snippet: str, inputs: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The README's snippet as `.gitlab-ci.yml`, `inputs[component]` added to its includes.

    A `local:` include gets its copy of the component, as the README says.
    """
    pipeline: dict[str, Any] = yaml.safe_load(snippet)
    for include in pipeline["include"]:
        name = component_of(include)
        include["inputs"] = {**include.get("inputs", {}), **inputs.get(name, {})}
        if "local" in include:
            copy = root / include["local"]
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATES[name], copy)
    text = yaml.dump(pipeline, Dumper=IndentedDumper, sort_keys=False)
    (root / ".gitlab-ci.yml").write_text(text)
    return pipeline


class IndentedDumper(yaml.SafeDumper):
    """Block sequences indented under their key, as the README writes `include:`."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def seed_includes(root: Path) -> None:
    """This checkout's templates/ where gitlab-ci-local's fetch of a remote include lands."""
    pipeline = yaml.safe_load((root / ".gitlab-ci.yml").read_text())
    for include in pipeline["include"]:
        ref = include_ref(include)
        if ref is None:
            continue
        match = COMPONENT.fullmatch(include.get("component", ""))
        project = match["project"] if match else include["project"]
        fetched = root / ".gitlab-ci-local/includes" / GITLAB / project / ref / "templates"
        shutil.copytree(REPO / "templates", fetched, dirs_exist_ok=True)


def gitlab_ci_local(
    root: Path, env: dict[str, str], *args: str, keep_cache: bool = False
) -> Pipeline:
    """One pipeline; `keep_cache`: the caches of the earlier ones stay, as a runner keeps them."""
    cache = root / ".gitlab-ci-local" / "cache"
    kept = root.parent / f"{root.name}-kept-cache"
    if keep_cache and cache.exists():
        shutil.rmtree(kept, ignore_errors=True)
        shutil.move(cache, kept)
    shutil.rmtree(root / ".gitlab-ci-local", ignore_errors=True)
    if keep_cache and kept.exists():
        cache.parent.mkdir(parents=True)
        shutil.move(kept, cache)
    seed_includes(root)
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
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Pipeline(done.returncode, done.stdout + done.stderr, root / ".gitlab-ci-local/builds")


def preview(root: Path) -> dict[str, Any]:
    """The pipeline as gitlab-ci-local resolved it: includes merged, inputs interpolated."""
    seed_includes(root)
    done = subprocess.run(
        [str(GITLAB_CI_LOCAL), "--preview"], cwd=root, capture_output=True, text=True, check=True
    )
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


# --- validate ----------------------------------------------------------------------------

FORMS = {"component": 0, "project": 1, "local": 2}  # the README's snippets, in order


def ops_repo(root: Path, form: str, inputs: dict[str, str], *, bad: bool = False) -> Path:
    """The example repository, adopting the validate component in the README's `form`."""
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".cd-checks", "ci"))
    if bad:
        shutil.copytree(root / "bad-change", root, dirs_exist_ok=True)
    snippet = readme_snippets()[FORMS[form]]
    assert component_of(yaml.safe_load(snippet)["include"][0]) == "validate"
    adopt(root, snippet, {"validate": inputs})
    new_repository(root)
    commit_all(root, "ops repository")
    return root


@needs_gitlab_ci_local
@pytest.mark.parametrize("form", FORMS)
def test_validate_component_passes_the_good_change(
    form: str, tmp_path: Path, installer: Installer, job_venv: Path
) -> None:
    root = ops_repo(tmp_path / "ops", form, {**installer.inputs(), "builtin": "nginx monitoring"})
    pipeline = gitlab_ci_local(root, installer.env(job_venv))
    assert pipeline.code == 0, pipeline.log
    assert "PASS  cd-checks-validate" in pipeline.log
    build = pipeline.build("cd-checks-validate")
    assert json.loads((build / "gl-code-quality.json").read_text()) == []
    suites = ET.parse(build / "cd-checks-junit.xml").getroot()
    assert suites.get("failures") == "0"
    assert git(root, "status", "--porcelain") == ""  # the work tree stays clean


@pytest.fixture(scope="module")
def failed_validate(
    tmp_path_factory: pytest.TempPathFactory, installer: Installer, job_venv: Path
) -> tuple[Path, Pipeline]:
    """The bad change, validated by the component as the README includes it."""
    root = tmp_path_factory.mktemp("bad") / "ops"
    inputs = {**installer.inputs(), "builtin": "nginx monitoring"}
    ops_repo(root, "component", inputs, bad=True)
    return root, gitlab_ci_local(root, installer.env(job_venv))


@needs_gitlab_ci_local
def test_validate_component_fails_the_bad_change_and_its_reports_say_where(
    failed_validate: tuple[Path, Pipeline],
) -> None:
    _, pipeline = failed_validate
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
    assert re.search(r"cd-checks-validate\s+> nginx/sites/files\.conf:\d+", pipeline.log)


@needs_gitlab_ci_local
def test_validate_cache_is_saved_although_the_job_failed(
    failed_validate: tuple[Path, Pipeline],
) -> None:
    root, pipeline = failed_validate
    assert "FAIL  cd-checks-validate" in pipeline.log
    saved = [p for p in (root / ".gitlab-ci-local/cache").glob("*/.cd-checks/cache/**/*")]
    assert any(p.is_file() for p in saved), pipeline.log


@needs_gitlab_ci_local
def test_a_config_error_fails_the_validate_job_with_one_readable_line(
    tmp_path: Path, installer: Installer, job_venv: Path
) -> None:
    root = ops_repo(tmp_path / "ops", "component", installer.inputs())
    (root / "cd-checks.yml").write_text("fles:\n  exclude: []\n")
    commit_all(root, "a typo in the config")
    pipeline = gitlab_ci_local(root, installer.env(job_venv))
    assert "FAIL  cd-checks-validate" in pipeline.log
    # gitlab-ci-local shows a failed job's output twice: as it runs, then in its summary.
    errors = set(re.findall(r"cd-checks-validate\s+> (cd-checks: error: .*)", pipeline.log))
    assert len(errors) == 1 and "unknown key 'fles'" in errors.pop(), pipeline.log
    assert "cd-checks stopped with exit 2" in pipeline.log
    assert "Traceback" not in pipeline.log


@needs_gitlab_ci_local
def test_by_default_the_job_installs_cd_checks_from_the_components_project_at_its_tag(
    tmp_path: Path, installer: Installer
) -> None:
    """The `install` default, as GitLab expands it: `$CI_SERVER_URL/cd-checks/cd-checks.git`.

    The "server" is a directory: its cd-checks/cd-checks.git holds this checkout,
    tagged as the release, and a later commit that must not be what gets installed.
    """
    source = source_copy(tmp_path / "cd-checks")
    new_repository(source)
    release = commit_all(source, "cd-checks release")
    git(source, "tag", f"v{__version__}")
    (source / "CHANGELOG.md").write_text("unreleased\n")
    commit_all(source, "after the release")
    server = tmp_path / "server"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(server / "cd-checks/cd-checks.git"))

    root = ops_repo(tmp_path / "ops", "component", {"pip-args": "--no-deps"})
    jobs = installer.job_venv(tmp_path / "venv")
    pipeline = gitlab_ci_local(
        root, installer.env(jobs), "--variable", f"CI_SERVER_URL=file://{server}"
    )
    assert pipeline.code == 0, pipeline.log
    (record,) = jobs.glob("lib/python*/site-packages/cd_checks-*.dist-info/direct_url.json")
    installed = json.loads(record.read_text())
    assert installed["url"] == f"file://{server}/cd-checks/cd-checks.git"
    assert installed["vcs_info"]["requested_revision"] == f"v{__version__}"
    assert installed["vcs_info"]["commit_id"] == release


# --- deploy ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=4, staging=1)


@dataclass(frozen=True)
class DeployRepo:
    root: Path
    origin: Path
    lab: Lab
    env: dict[str, str]

    def run(self, *args: str) -> Pipeline:
        return gitlab_ci_local(self.root, self.env, *args)

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
        "rollout": rollout,
        # Known-good must outlive the pipeline: the audit branch is pushed to origin.
        "audit": {"store": "git", "remote": "origin"},
    }
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture(scope="module")
def deploy_repo(
    lab: Lab, installer: Installer, job_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> DeployRepo:
    """The README's whole GitLab pipeline (validate, then the deploy component)."""
    base = tmp_path_factory.mktemp("deploy")
    root, origin = base / "ops", base / "origin.git"
    shutil.copytree(EXAMPLES / "deploy", root / "deploy")
    shutil.copytree(EXAMPLES / "tests/health/nginx", root / "tests/health")
    # The repository's own inventory, as validate checks it; the jobs are handed the
    # lab's (its ssh_config lies beside it) through the `inventory` input.
    (root / "inventory").mkdir()
    shutil.copy2(lab.inventory, root / "inventory/hosts.yml")
    (root / "cd-checks.yml").write_text(deploy_config())
    (root / ".yamllint").write_text(YAMLLINT)
    inputs = {
        "validate": installer.inputs(),
        "deploy": {**installer.inputs(), "inventory": str(lab.inventory)},
    }
    pipeline = adopt(root, readme_snippets()[-1], inputs)
    assert [component_of(include) for include in pipeline["include"]] == ["validate", "deploy"]
    new_repository(root)
    commit_all(root, "ops repository")
    git(base, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    return DeployRepo(root, origin, lab, installer.env(job_venv))


@pytest.fixture(scope="module")
def first_deploy(deploy_repo: DeployRepo) -> tuple[str, Pipeline]:
    """The first pipeline, production approved: it makes the known-good revision."""
    revision = git(deploy_repo.root, "rev-parse", "HEAD").strip()
    return revision, deploy_repo.run("--manual", "cd-checks-production")


@needs_gitlab_ci_local
@pytest.mark.lab
def test_deploy_component_resolves_to_the_guarded_pipeline(deploy_repo: DeployRepo) -> None:
    jobs = preview(deploy_repo.root)
    assert jobs["cd-checks-validate"]["stage"] == "test"
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
    for job in ("validate", "staging", "canary", "production"):
        assert f"PASS  cd-checks-{job}" in pipeline.log
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
        env={**repo.env, **variables},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- the audit trail's head, kept between pipelines ------------------------------------------


@needs_gitlab_ci_local
def test_the_pipeline_verifies_the_trail_publishes_its_head_and_stops_on_a_cut_trail(
    tmp_path: Path, installer: Installer, job_venv: Path
) -> None:
    """The README's pipeline on a repository whose audit trail is a signed branch on
    origin, the key a (base64, maskable) CI/CD variable; the runner's cache kept."""
    ops = SignedOps(tmp_path)
    root = ops.clone(tmp_path / "ops")
    git(root, "remote", "add", "gcl-origin", REMOTE)
    (root / ".gitignore").write_text(".gitlab-ci-local/\n")
    inputs = {"validate": installer.inputs(), "deploy": installer.inputs()}
    adopt(root, readme_snippets()[-1], inputs)
    commit_all(root, "the deploy pipeline")
    git(root, "push", "-q", "origin", "HEAD:main")
    encoded = subprocess.run(
        ["base64", "-w0", str(ops.key)], capture_output=True, text=True, check=True
    ).stdout
    env = {**installer.env(job_venv), "XDG_STATE_HOME": str(tmp_path / "runner-state")}

    def pipeline(*args: str) -> Pipeline:
        variable = ["--variable", f"CD_CHECKS_AUDIT_KEY={encoded}"]
        return gitlab_ci_local(root, env, *variable, *args, keep_cache=True)

    first = pipeline("--manual", "cd-checks-production")
    assert first.code == 0, first.log
    assert "signed: ci: 2" in first.log and "signed: ci: 6" in first.log
    report = (first.build("cd-checks-production") / "cd-checks-audit.env").read_text()
    head = dict(line.split("=", 1) for line in report.splitlines())
    assert head["CD_CHECKS_AUDIT_HEAD_SEQ"] == "5"
    assert re.search(
        rf"cd-checks-production\s+> cd-checks audit verify \(after the deploy\): "
        rf"head #5 {head['CD_CHECKS_AUDIT_HEAD_ID']} {head['CD_CHECKS_AUDIT_HEAD_HASH']}",
        first.log,
    )
    kept = sorted(
        (root / ".gitlab-ci-local/cache").glob("*/.cd-checks/audit-anchor/anchors/*.json")
    )
    assert {p.relative_to(root / ".gitlab-ci-local/cache").parts[0] for p in kept} == {
        "cd-checks-audit-anchor-staging",
        "cd-checks-audit-anchor-production",
    }, first.log

    # Production's two records are cut off the audit branch (a forced push). Staging's
    # head is still there; the next job on production hosts finds its head rewritten.
    ops.cut_trail(2)
    canary_host = [h for h, revision in ops.deployed().items() if h.startswith("web")][0]
    ops.fleet.joinpath(canary_host).write_text("before")
    second = pipeline("--manual", "cd-checks-production")
    assert second.code != 0
    assert "PASS  cd-checks-staging" in second.log
    assert "FAIL  cd-checks-canary" in second.log
    assert re.search(
        rf"cd-checks-canary\s+> cd-checks audit verify \(before the deploy\): rewritten: "
        rf"record #5 \(\S+\) at position 5 is not the record #5 "
        rf"\({head['CD_CHECKS_AUDIT_HEAD_ID']}, ",
        second.log,
    ), second.log
    assert not re.search(r"cd-checks-production\s+>", second.log)
    assert ops.deployed()[canary_host] == "before"  # the canary deployed nothing
    for shown in (first.log, second.log):
        assert encoded[:40] not in shown
        assert not any(line in shown for line in ops.secret_lines())


# --- change types: each deploy job deploys the types whose files changed -------------------

DEPLOY_BY_TYPE = """\
import pathlib, sys
change, hosts, revision, fleet = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
for host in hosts:
    (pathlib.Path(fleet) / f"{change}-{host}").write_text(revision)
"""
FLEET_HOSTS = ("stage-1", "web-1", "web-2")


def change_types_config(fleet: Path) -> str:
    def apply(change: str) -> dict[str, Any]:
        return {"command": ["python", "deploy.py", change, "{hosts}", "{revision}", str(fleet)]}

    config = {
        "defaults": {
            "inventory": "inventory/hosts",
            "stages": [
                {"name": "staging", "hosts": "staging"},
                {"name": "canary", "hosts": "production", "percent": 50},
                {"name": "production", "hosts": "production"},
            ],
        },
        "changes": {
            "web": {"files": ["web/**"], "apply": apply("web")},
            "patches": {"files": ["patches/*.yml"], "apply": apply("patches")},
        },
        "audit": {"store": "git", "remote": "origin"},
    }
    return yaml.safe_dump(config, sort_keys=False)


@needs_gitlab_ci_local
def test_a_push_deploys_only_the_change_type_whose_files_changed(
    tmp_path: Path, installer: Installer, job_venv: Path
) -> None:
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    root = write_tree(
        tmp_path / "ops",
        {
            "cd-checks.yml": change_types_config(fleet),
            "deploy.py": DEPLOY_BY_TYPE,
            "inventory/hosts": "[staging]\nstage-1\n\n[production]\nweb-1\nweb-2\n",
            "web/index.html": "<p>hello</p>\n",
            "patches/openssl.yml": "---\npackage: openssl\nversion: 3.0.13\n",
            ".yamllint": YAMLLINT,
        },
    )
    new_repository(root)
    inputs = {"validate": installer.inputs(), "deploy": installer.inputs()}
    adopt(root, readme_snippets()[-1], inputs)
    first = commit_all(root, "ops repository")
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    env = installer.env(job_venv)

    def deployed() -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(fleet.iterdir())}

    pipeline = gitlab_ci_local(root, env, "--manual", "cd-checks-production")
    assert pipeline.code == 0, pipeline.log
    # No known-good yet: both types deploy, in the config's order, in every job.
    assert deployed() == {f"{c}-{h}": first for c in ("web", "patches") for h in FLEET_HOSTS}
    staging = re.findall(r"cd-checks-staging\s+> cd-checks: change type (\w+)", pipeline.log)
    assert staging[:2] == ["web", "patches"], pipeline.log

    (root / "patches/openssl.yml").write_text("---\npackage: openssl\nversion: 3.0.14\n")
    second = commit_all(root, "an openssl patch")
    pipeline = gitlab_ci_local(root, env, "--manual", "cd-checks-production")
    assert pipeline.code == 0, pipeline.log
    for job in ("staging", "canary", "production"):
        assert re.search(
            rf"cd-checks-{job}\s+> cd-checks: nothing to deploy: no file of change type web "
            rf"changed since {first[:12]}",
            pipeline.log,
        ), pipeline.log
        assert not re.search(
            rf"cd-checks-{job}\s+> cd-checks: nothing to deploy: .* patches ", pipeline.log
        )
    assert deployed() == {
        **{f"web-{h}": first for h in FLEET_HOSTS},
        **{f"patches-{h}": second for h in FLEET_HOSTS},
    }


# --- the GitHub rollout action's script, on the same fleet ----------------------------------


def github_rollout_step(
    repo: DeployRepo, checkout: Path, **inputs: str
) -> subprocess.CompletedProcess[str]:
    """The rollout action's `cd-checks rollout` step as written, its inputs in the environment."""
    steps = yaml.safe_load((REPO / "rollout/action.yml").read_text())["runs"]["steps"]
    (step,) = [s for s in steps if s.get("name") == "cd-checks rollout"]
    env = {"COMMAND": "run", "STAGE": "", "ALL": "false", "ROLLBACK_TO": "", "CONFIG": ""}
    env |= {"BREAK_GLASS": "false", "REASON": "", "TICKET": "", "GITHUB_TOKEN": ""}
    env |= {"INVENTORY": str(repo.lab.inventory), **inputs}
    return subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=checkout,
        env={**repo.env, **env},
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
