"""The GitLab CI/CD components and the README's GitLab snippets, checked as GitLab reads them.

GitLab looks for a component `NAME` of a project in `templates/NAME.yml` or
`templates/NAME/template.yml`; both components live there, a `spec:` header
then the jobs. The jobs are validated against GitLab's CI schema (offline,
check-jsonschema's vendored copy) once interpolated as GitLab does it, the
header as it is; the README's snippets likewise. A scratch repository holding
the components and the README's snippets passes cd-checks' own default checks,
so a team that follows the README keeps its pipeline green.

The validate job's script runs with bash as written, after interpolation, on
the example repository (the install lines aside: cd-checks is already on PATH);
gitlab-ci-local runs the whole pipelines in test_gitlab_ci_local.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from cd_checks import __version__
from tests.ci.gitlab_components import (
    PROJECT,
    TEMPLATES,
    component_of,
    documents,
    include_ref,
    interpolate,
    readme_snippets,
    spec_inputs,
)
from tests.ci.signed_ops import SignedOps
from tests.conftest import EXAMPLES, REPO, git

BIN = str(Path(sys.executable).parent)
# argv of each call, one JSON list a line: stands in for cd-checks where only the
# arguments a job builds are under test. `audit verify` answers: an empty trail.
FAKE_CD_CHECKS = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["audit", "verify"]:
    print(json.dumps({{"ok": True, "records": 0, "head": None, "anchor": None,
                      "signed": {{}}, "problems": []}}))
"""
VERIFY = ["audit", "verify", "--format", "json", "--anchor-dir", ".cd-checks/audit-anchor"]


def check_jsonschema(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci"]
        + ["--data-transform", "gitlab-ci", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )


def assert_valid_gitlab_ci(tmp_path: Path, data: dict[str, Any], name: str) -> None:
    target = tmp_path / f"{name}.json"
    target.write_text(json.dumps(data))
    done = check_jsonschema(target)
    assert done.returncode == 0, done.stdout + done.stderr


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env}
    return subprocess.run(
        ["bash", "-e", "-c", script], cwd=cwd, env=full_env, capture_output=True, text=True
    )


# --- where GitLab finds them, what they are --------------------------------------------


def test_components_live_where_gitlab_looks_for_them() -> None:
    assert sorted(p.relative_to(REPO).as_posix() for p in (REPO / "templates").rglob("*.yml")) == [
        "templates/deploy/template.yml",
        "templates/validate/template.yml",
    ]
    assert not (REPO / "gitlab-template").exists()
    for template in TEMPLATES.values():
        header, jobs = documents(template)
        assert list(header) == ["spec"]  # the header holds nothing else
        assert template.read_text().startswith("---\n")
        assert {"cd-checks-validate"} <= set(jobs) or {"cd-checks-staging"} <= set(jobs)
    assert set(documents(TEMPLATES["validate"])[1]) == {"cd-checks-validate"}
    assert {job for job in documents(TEMPLATES["deploy"])[1] if not job.startswith(".")} == {
        "cd-checks-staging",
        "cd-checks-canary",
        "cd-checks-production",
        "cd-checks-rollback",
    }


@pytest.mark.parametrize("name", TEMPLATES)
def test_components_are_valid_gitlab_ci(name: str, tmp_path: Path) -> None:
    header, _ = documents(TEMPLATES[name])
    assert_valid_gitlab_ci(tmp_path, header, f"{name}-spec")
    assert_valid_gitlab_ci(tmp_path, interpolate(TEMPLATES[name], {}), f"{name}-jobs")


def test_deploy_inputs_interpolate_into_the_guarded_pipeline(tmp_path: Path) -> None:
    jobs = interpolate(TEMPLATES["deploy"], {})
    assert jobs["cd-checks-staging"]["variables"]["CD_CHECKS_STAGE"] == "staging"
    # An empty input stays a string once interpolated.
    assert jobs[".cd-checks-deploy"]["variables"]["CD_CHECKS_INVENTORY"] == ""
    assert jobs["cd-checks-production"]["rules"][0]["when"] == "manual"
    on_success = interpolate(TEMPLATES["deploy"], {"production-when": "on_success"})
    assert on_success["cd-checks-production"]["rules"][0]["when"] == "on_success"
    assert_valid_gitlab_ci(tmp_path, on_success, "on-success")


@pytest.mark.parametrize("name", TEMPLATES)
def test_inputs_reach_the_scripts_only_through_quoted_variables(name: str) -> None:
    _, jobs = documents(TEMPLATES[name])
    for job in jobs.values():
        for line in [*job.get("before_script", []), *job.get("script", [])]:
            assert "$[[" not in line and "${{" not in line, line
        for variable, value in job.get("variables", {}).items():
            if "$[[" in str(value) and variable.startswith("CD_CHECKS_"):
                # used in scripts as "$VAR", or split on purpose under `set -f`
                assert re.fullmatch(r"\$\[\[ inputs\.[\w-]+ \]\]", value), value


# --- how cd-checks gets installed ------------------------------------------------------


@pytest.mark.parametrize(("name", "extras"), [("validate", set()), ("deploy", {"rollout"})])
def test_install_defaults_to_this_release_from_the_components_own_project(
    name: str, extras: set[str]
) -> None:
    """cd-checks is on no package index: pip installs it from the project, at the release tag."""
    default = spec_inputs(TEMPLATES[name])["install"]["default"]
    requirement = Requirement(default.replace("$CI_SERVER_URL", "https://gitlab.example.com"))
    assert requirement.name == "cd-checks"
    assert requirement.extras == extras
    assert requirement.url == f"git+https://gitlab.example.com/{PROJECT}.git@v{__version__}"
    # The job hands it to pip as one quoted word, after GitLab expanded $CI_SERVER_URL.
    jobs = interpolate(TEMPLATES[name], {})
    job = jobs["cd-checks-validate" if name == "validate" else ".cd-checks-deploy"]
    assert job["variables"]["CD_CHECKS_INSTALL"] == default
    install = [line for line in [*job.get("before_script", []), *job["script"]] if "pip" in line]
    assert len(install) == 1 and '"$CD_CHECKS_INSTALL"' in install[0]


def test_validate_cache_is_saved_when_the_job_fails() -> None:
    cache = interpolate(TEMPLATES["validate"], {})["cd-checks-validate"]["cache"]
    assert cache["when"] == "always"
    assert ".cd-checks/cache" in cache["paths"]


def test_validate_cache_is_written_by_the_default_branch_only_and_read_by_merge_requests() -> None:
    job = interpolate(TEMPLATES["validate"], {})["cd-checks-validate"]
    cache = job["cache"]
    assert cache["key"] == "cd-checks-$CI_COMMIT_REF_SLUG"
    assert cache["fallback_keys"] == ["cd-checks-$CI_DEFAULT_BRANCH"]
    assert cache["unprotect"] is False  # protected branches keep their own caches
    assert cache["policy"] == "$CD_CHECKS_CACHE_POLICY"
    assert job["variables"]["CD_CHECKS_CACHE_POLICY"] == "pull"  # read-only unless a rule says
    policy = {rule["if"]: rule["variables"]["CD_CHECKS_CACHE_POLICY"] for rule in job["rules"]}
    assert policy == {
        '$CI_PIPELINE_SOURCE == "merge_request_event"': "pull",
        "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH": "pull-push",
    }


def test_validate_job_drops_a_restored_result_cache_it_cannot_verify(tmp_path: Path) -> None:
    root = example_copy(tmp_path, bad=True)
    forged = root / ".cd-checks" / "cache" / "ab" / ("ab" + "0" * 62 + ".json")
    forged.parent.mkdir(parents=True)
    forged.write_text("[]")
    script, variables = validate_script({"builtin": "nginx"})
    done = bash(script, root, {**variables, "CD_CHECKS_CACHE_KEY": ""})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no CD_CHECKS_CACHE_KEY variable: the restored result cache" in done.stderr
    assert not forged.exists()
    # With the key, the restored cache is used: entries verify or are checked again.
    key = {"CD_CHECKS_CACHE_KEY": "a masked CI/CD variable, 32+ chars"}
    first = bash(script, root, {**variables, **key})
    for entry in (root / ".cd-checks" / "cache").rglob("*.json"):
        entry.write_text("[]")
    again = bash(script, root, {**variables, **key})
    assert first.returncode == again.returncode == 1
    assert "no CD_CHECKS_CACHE_KEY" not in first.stderr + again.stderr
    assert re.search(r"warning: \d+ result cache entries failed verification", again.stderr)


# --- the README's snippets -------------------------------------------------------------


def test_readme_includes_each_component_three_ways_all_at_this_release() -> None:
    snippets = [yaml.safe_load(text) for text in readme_snippets()]
    includes = [include for snippet in snippets for include in snippet["include"]]
    kinds = ("component", "project", "local")
    forms = {(component_of(i), next(k for k in kinds if k in i)) for i in includes}
    assert {("validate", "component"), ("validate", "project"), ("validate", "local")} <= forms
    assert ("deploy", "component") in forms
    for include in includes:
        name = component_of(include)
        if "component" in include:
            assert include["component"].startswith(f"$CI_SERVER_FQDN/{PROJECT}/")
            assert include_ref(include) == __version__  # the CI/CD Catalog's form of the tag
        if "project" in include:
            assert include["project"] == PROJECT
            assert include_ref(include) == f"v{__version__}"
            assert (REPO / include["file"]) == TEMPLATES[name]
        assert set(include.get("inputs", {})) <= set(spec_inputs(TEMPLATES[name]))
    text = (REPO / "README.md").read_text()
    assert "file: templates/deploy/template.yml" in text
    assert "gitlab-template" not in text


def test_readme_deploy_snippet_is_the_example_pipeline() -> None:
    example = yaml.safe_load((REPO / "examples/ci/gitlab/.gitlab-ci.yml").read_text())
    assert yaml.safe_load(readme_snippets()[-1]) == example


@pytest.mark.parametrize("index", range(4), ids=["component", "project", "local", "deploy"])
def test_readme_snippets_are_valid_gitlab_ci(index: int, tmp_path: Path) -> None:
    snippet = tmp_path / ".gitlab-ci.yml"
    snippet.write_text(readme_snippets()[index])
    done = check_jsonschema(snippet)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_repository_following_the_readme_passes_cd_checks_default_checks(
    tmp_path: Path,
) -> None:
    """The copied components and every GitLab snippet: no finding under the defaults."""
    root = tmp_path / "ops"
    shutil.copytree(REPO / "templates", root / "templates")
    snippets = readme_snippets()
    (root / ".gitlab-ci.yml").write_text(snippets[-1])
    for number, text in enumerate(snippets[:-1]):
        (root / f"snippets/gitlab-{number}.yml").parent.mkdir(exist_ok=True)
        (root / f"snippets/gitlab-{number}.yml").write_text(text)
    local = yaml.safe_load(snippets[2])["include"][0]["local"]
    (root / local).parent.mkdir(parents=True)
    shutil.copy2(TEMPLATES["validate"], root / local)
    git(root, "init", "-q")
    git(root, "add", "-A")
    done = subprocess.run(
        [sys.executable, "-m", "cd_checks", "validate", "--format", "json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert findings == [], findings


# --- the jobs' scripts, run as written -----------------------------------------------


def example_copy(tmp_path: Path, *, bad: bool = False) -> Path:
    root = tmp_path / "ops"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".cd-checks"))
    if bad:
        shutil.copytree(root / "bad-change", root, dirs_exist_ok=True)
    return root


def validate_script(inputs: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The validate job's script as GitLab hands it to the shell, and its variables."""
    job = interpolate(TEMPLATES["validate"], inputs)["cd-checks-validate"]
    variables = {k: str(v) for k, v in job["variables"].items()}
    # The image's set-up lines (git, pip install) are the runner's business here.
    lines = [line for line in job["script"] if "pip install" not in line and "apt-get" not in line]
    return "\n".join(lines), variables


def test_validate_job_script_publishes_reports(tmp_path: Path) -> None:
    root = example_copy(tmp_path, bad=True)
    script, variables = validate_script({"builtin": "nginx"})
    done = bash(script, root, variables)
    assert done.returncode == 1, done.stdout + done.stderr
    quality = json.loads((root / "gl-code-quality.json").read_text())
    assert {"NGINX-003", "NGINX-002"} <= {issue["check_name"].split("/")[-1] for issue in quality}
    suites = ET.parse(root / "cd-checks-junit.xml").getroot()
    assert int(suites.get("failures", "0")) > 0
    assert "nginx/sites/files.conf" in done.stdout  # the log's text report says where
    job = interpolate(TEMPLATES["validate"], {})["cd-checks-validate"]
    assert set(job["artifacts"]["reports"]) == {"junit", "codequality"}
    assert job["artifacts"]["when"] == "always"


def test_validate_job_script_splits_paths_and_sets_but_never_globs_them(tmp_path: Path) -> None:
    root = example_copy(tmp_path, bad=True)
    script, variables = validate_script({"paths": "nginx/sites/files.conf *", "builtin": "nginx"})
    done = bash(script, root, variables)
    # `*` reaches cd-checks as a path that does not exist, not as every file here.
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.search(r"^cd-checks: error: .*/ops/\*$", done.stderr, re.M), done.stderr


def test_a_config_error_fails_the_validate_job_with_one_readable_line(tmp_path: Path) -> None:
    root = example_copy(tmp_path)
    (root / "cd-checks.yml").write_text("fles:\n  exclude: []\n")
    script, variables = validate_script({})
    done = bash(script, root, variables)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("cd-checks: error:")]
    assert len(errors) == 1 and "fles" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert "cd-checks-validate: cd-checks stopped with exit 2" in done.stderr
    assert not (root / "gl-code-quality.json").exists()  # no report that claims "no findings"


def test_gitlab_rollback_job_skips_environments_whose_record_is_closed(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "cd-checks"
    fake.parent.mkdir()
    fake.write_text(FAKE_CD_CHECKS)
    fake.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    script, variables = deploy_job_script("cd-checks-rollback")
    for environment, status in (("production", "rolled_back"), ("staging", "open")):
        record = tmp_path / ".cd-checks" / "rollout" / environment / "rollout.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"environment": environment, "status": status}, indent=2))
    env = {**os.environ, **variables, "CALLS": str(calls)}
    env["PATH"] = f"{fake.parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    argv = [json.loads(line) for line in calls.read_text().splitlines()]
    assert argv == [VERIFY, ["rollback", "--environment", "staging"], VERIFY]


def test_deploy_job_passes_break_glass_variables_as_plain_arguments(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "cd-checks"
    fake.parent.mkdir()
    fake.write_text(FAKE_CD_CHECKS)
    fake.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    jobs = interpolate(TEMPLATES["deploy"], {"inventory": "lab/inventory.yml"})
    base = jobs[".cd-checks-deploy"]
    setup = [line for line in base["before_script"] if "pip install" not in line]
    setup = [line for line in setup if "apt-get" not in line]
    reason = 'outage "$(touch pwned)"; `touch pwned2`'
    env = {
        **os.environ,
        **{k: str(v) for k, v in base["variables"].items()},
        **jobs["cd-checks-production"]["variables"],
        "CD_CHECKS_BREAK_GLASS": "true",
        "CD_CHECKS_REASON": reason,
        "CD_CHECKS_TICKET": "INC-7",
        "CI_COMMIT_SHA": "abc123",
        "CALLS": str(calls),
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "-e", "-c", "\n".join([*setup, *base["script"]])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [
        VERIFY,
        ["rollout", "run", "--inventory", "lab/inventory.yml", "--all-changes", "--break-glass"]
        + ["--reason", reason, "--ticket", "INC-7"]
        + ["--revision", "abc123", "--stage", "production"],
        VERIFY,
    ]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


# --- the deploy jobs' audit steps ----------------------------------------------------------


def deploy_job_script(job: str, inputs: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """A deploy job's before_script and script as the shell gets them (the image's
    set-up lines aside: cd-checks is on PATH), and its variables."""
    jobs = interpolate(TEMPLATES["deploy"], inputs or {})
    base, own = jobs[".cd-checks-deploy"], jobs[job]
    setup = [line for line in base["before_script"] if "pip install" not in line]
    setup = [line for line in setup if "apt-get" not in line]
    variables = {**base["variables"], **own.get("variables", {})}
    return "\n".join([*setup, *own.get("script", base["script"])]), {
        k: str(v) for k, v in variables.items()
    }


def test_deploy_jobs_keep_the_audit_head_per_resource_group_for_protected_pipelines() -> None:
    jobs = interpolate(TEMPLATES["deploy"], {"production-environment": "prod"})
    cache = jobs[".cd-checks-deploy"]["cache"]
    assert cache["paths"] == [".cd-checks/audit-anchor/"]
    assert jobs[".cd-checks-deploy"]["variables"]["CD_CHECKS_AUDIT_ANCHORS"] == (
        ".cd-checks/audit-anchor"
    )
    assert cache["unprotect"] is False  # never shared with unprotected branches' pipelines
    assert (cache["policy"], cache["when"]) == ("pull-push", "always")
    keys = {job: jobs[job]["cache"]["key"] for job in jobs if not job.startswith(".")}
    # The jobs that change the same hosts (one resource group) share one head.
    assert keys == {
        "cd-checks-staging": "cd-checks-audit-anchor-staging",
        "cd-checks-canary": "cd-checks-audit-anchor-prod",
        "cd-checks-production": "cd-checks-audit-anchor-prod",
        "cd-checks-rollback": "cd-checks-audit-anchor-prod",
    }
    assert all(jobs[job]["resource_group"] in keys[job] for job in keys)
    assert jobs[".cd-checks-deploy"]["artifacts"]["reports"] == {"dotenv": "cd-checks-audit.env"}
    # The key leaves the environment before anything else runs.
    assert jobs[".cd-checks-deploy"]["before_script"][:2] == [
        "cd_checks_audit_key=${CD_CHECKS_AUDIT_KEY:-}",
        "unset CD_CHECKS_AUDIT_KEY",
    ]


class GitLabJobs(SignedOps):
    """The signed ops repository deployed by the deploy component's job scripts, each
    job in a fresh clone; `cache` stands in for the runner's cache of each key."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.jobs = 0
        encoded = subprocess.run(
            ["base64", "-w0", str(self.key)], capture_output=True, text=True, check=True
        ).stdout
        self.variable = encoded  # the masked CI/CD variable's value

    def run(self, job: str, **variables: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        self.jobs += 1
        build = self.clone(self.tmp / f"job-{self.jobs}")
        script, job_variables = deploy_job_script(job)
        cache = self.tmp / "runner-cache" / job_variables["CD_CHECKS_STAGE"]
        if cache.exists():
            shutil.copytree(cache, build / ".cd-checks/audit-anchor")
        env = {
            **os.environ,
            **job_variables,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_COMMIT_SHA": git(build, "rev-parse", "HEAD").strip(),
            "CD_CHECKS_AUDIT_KEY": self.variable,
            "XDG_STATE_HOME": str(self.tmp / f"job-{self.jobs}-home"),
            **variables,
        }
        done = bash(script, build, env)
        if (build / ".cd-checks/audit-anchor").exists():  # `when: always`
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(build / ".cd-checks/audit-anchor", cache)
        return done, build


def test_deploy_job_verifies_the_trail_publishes_its_head_and_stops_on_a_cut_trail(
    tmp_path: Path,
) -> None:
    ops = GitLabJobs(tmp_path)
    first, build = ops.run("cd-checks-staging")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "cd-checks audit verify (before the deploy): the trail is empty" in first.stdout
    assert "no head of this trail kept in .cd-checks/audit-anchor yet" in first.stderr
    assert "cd-checks audit verify (after the deploy): 2 records, chain intact, signed: ci: 2" in (
        first.stdout
    )
    report = dict(
        line.split("=", 1) for line in (build / "cd-checks-audit.env").read_text().splitlines()
    )
    assert set(report) == {
        "CD_CHECKS_AUDIT_HEAD_SEQ", "CD_CHECKS_AUDIT_HEAD_ID", "CD_CHECKS_AUDIT_HEAD_HASH"
    }  # fmt: skip
    assert report["CD_CHECKS_AUDIT_HEAD_SEQ"] == "1"
    head_id, head_hash = report["CD_CHECKS_AUDIT_HEAD_ID"], report["CD_CHECKS_AUDIT_HEAD_HASH"]
    assert f"head #1 {head_id} {head_hash}" in first.stdout
    assert len(ops.records()) == 2 and set(ops.deployed()) == {"stage-1"}

    # The next pipeline's staging job, after the audit branch was pushed back a record.
    ops.cut_trail(1)
    ops.fleet.joinpath("stage-1").write_text("before")
    second, build = ops.run("cd-checks-staging")
    assert second.returncode == 1
    assert (
        f"cd-checks audit verify (before the deploy): truncated: record #1 ({head_id}) is gone"
        in second.stdout
    )
    assert "cd-checks audit verify (before the deploy): FAILED" in second.stdout
    assert ops.deployed() == {"stage-1": "before"}  # nothing deployed
    assert not (build / "cd-checks-audit.env").exists()

    # Break-glass goes on, saying so; the head kept stays the one before the cut.
    emergency = {"CD_CHECKS_BREAK_GLASS": "true", "CD_CHECKS_REASON": "outage"}
    third, _ = ops.run("cd-checks-staging", **emergency, CD_CHECKS_TICKET="INC-7")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "cd-checks: BREAK-GLASS: going on past a failed audit verify" in third.stdout
    assert ops.deployed()["stage-1"] != "before"
    fourth, _ = ops.run("cd-checks-staging")
    assert fourth.returncode == 1 and "FAILED" in fourth.stdout

    shown = "\n".join(r.stdout + r.stderr for r in (first, second, third, fourth))
    assert ops.variable not in shown and ops.variable[:40] not in shown
    assert not any(line in shown for line in ops.secret_lines())


def test_validate_job_writes_the_scope_of_a_merge_request(tmp_path: Path) -> None:
    """In an MR pipeline: cd-checks-scope.md and .json against the MR's diff base,
    naming only the change type whose file changed; elsewhere no scope at all."""
    root = example_copy(tmp_path)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "ops repository")
    base = git(root, "rev-parse", "HEAD").strip()
    rules = root / "prometheus/rules/node.rules.yml"
    rules.write_text(rules.read_text() + "# a reviewed threshold\n")
    git(root, "commit", "-q", "-am", "an alert rule")
    script, variables = validate_script({})
    done = bash(script, root, variables)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (root / "cd-checks-scope.md").exists()  # a branch pipeline: no MR to scope
    merge_request = {"CI_PIPELINE_SOURCE": "merge_request_event"}
    merge_request["CI_MERGE_REQUEST_DIFF_BASE_SHA"] = base
    done = bash(script, root, {**variables, **merge_request})
    assert done.returncode == 0, done.stdout + done.stderr
    markdown = (root / "cd-checks-scope.md").read_text()
    assert markdown.startswith("### cd-checks scope")
    assert f"`{base[:12]}`" in markdown
    assert "#### monitoring" in markdown and "#### nginx" not in markdown
    assert "#### monitoring" in done.stdout  # the log shows it too
    scope = json.loads((root / "cd-checks-scope.json").read_text())
    assert scope["base"] == base and scope["files"] == ["prometheus/rules/node.rules.yml"]
    assert [t["name"] for t in scope["change_types"]] == ["monitoring"]
    artifacts = interpolate(TEMPLATES["validate"], {})["cd-checks-validate"]["artifacts"]
    assert artifacts["expose_as"] == "cd-checks scope"
    assert {"cd-checks-scope.md", "cd-checks-scope.json"} <= set(artifacts["paths"])


def test_gitlab_rollback_job_finds_the_records_of_change_types(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "cd-checks"
    fake.parent.mkdir()
    fake.write_text(FAKE_CD_CHECKS)
    fake.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    script, variables = deploy_job_script("cd-checks-rollback")
    records = {
        "staging": "done",  # a single `rollout:`'s record
        "nginx/production": "open",
        "nginx/staging": "rolled_back",
        "patches/staging": "paused",
    }
    for directory, status in records.items():
        record = tmp_path / ".cd-checks" / "rollout" / directory / "rollout.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"status": status}, indent=2))
    env = {**os.environ, **variables, "CALLS": str(calls)}
    env["PATH"] = f"{fake.parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    argv = [json.loads(line) for line in calls.read_text().splitlines()]
    assert argv == [
        VERIFY,
        ["rollback", "--change", "nginx", "--environment", "production"],
        VERIFY,
    ]
    assert "cd-checks: staging of change type patches was left as it is" in done.stdout
    assert "cd-checks rollback --change patches --environment staging" in done.stdout


def test_deploy_jobs_deploy_every_changed_type_or_the_one_named(tmp_path: Path) -> None:
    """`--all-changes` by default; the `change` input names one type instead."""
    fake = tmp_path / "bin" / "cd-checks"
    fake.parent.mkdir()
    fake.write_text(FAKE_CD_CHECKS)
    fake.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    for inputs, expected in (({}, ["--all-changes"]), ({"change": "nginx"}, ["--change", "nginx"])):
        calls.unlink(missing_ok=True)
        script, variables = deploy_job_script("cd-checks-canary", inputs)
        env = {**variables, "CI_COMMIT_SHA": "abc123", "CALLS": str(calls)}
        env["PATH"] = f"{fake.parent}:{os.environ['PATH']}"
        done = bash(script, tmp_path, env)
        assert done.returncode == 0, done.stderr
        argv = [json.loads(line) for line in calls.read_text().splitlines()]
        assert argv[1] == ["rollout", "run", *expected, "--revision", "abc123", "--stage", "canary"]
    artifacts = interpolate(TEMPLATES["deploy"], {})[".cd-checks-deploy"]["artifacts"]
    assert ".cd-checks/rollout/*/*/rollout.json" in artifacts["paths"]
