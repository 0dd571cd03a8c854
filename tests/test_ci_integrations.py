"""The GitHub Action, the GitLab template and the pre-commit hooks, checked as CI would read them.

The composite action cannot run outside GitHub's runner, so its validate step's
script is run with bash exactly as written, with the inputs in its environment.
The GitLab job's script lines run the same way, after GitLab's input
interpolation; both are also validated against the CI systems' schemas
(offline, via check-jsonschema's vendored copies).
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

import pytest
import yaml

from tests.conftest import EXAMPLES, REPO

ACTION = REPO / "github-action" / "action.yml"
TEMPLATE = REPO / "gitlab-template" / "cd-checks.yml"
BIN = str(Path(sys.executable).parent)


def example_copy(tmp_path: Path, *, bad: bool = False) -> Path:
    root = tmp_path / "ops"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".cd-checks"))
    if bad:
        shutil.copytree(root / "bad-change", root, dirs_exist_ok=True)
    return root


def bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env}
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )


def check_jsonschema(schema: str, target: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_action_is_a_valid_composite_action() -> None:
    check_jsonschema("vendor.github-actions", ACTION)
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    for step in action["runs"]["steps"]:
        # inputs reach scripts through env only: no ${{ }} inside a run script
        assert "${{" not in step.get("run", "")


def validate_step_script() -> str:
    steps = yaml.safe_load(ACTION.read_text())["runs"]["steps"]
    (step,) = [s for s in steps if s.get("name") == "cd-checks validate"]
    return str(step["run"])


@pytest.mark.parametrize("bad", [False, True], ids=["good-change", "bad-change"])
def test_action_validate_step(tmp_path: Path, bad: bool) -> None:
    root = example_copy(tmp_path, bad=bad)
    done = bash(
        validate_step_script(),
        root,
        {
            "PATHS": "",
            "CHANGED_SINCE": "",
            "FAIL_ON": "error",
            "SARIF_FILE": "cd-checks.sarif",
            "BUILTIN": "nginx monitoring",
        },
    )
    assert done.returncode == (1 if bad else 0), done.stderr
    sarif = json.loads((root / "cd-checks.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    if bad:
        assert re.search(r"^::error file=nginx/sites/files\.conf,line=\d+", done.stdout, re.M)
        assert "NGINX-003" in done.stdout


def gitlab_job(inputs: dict[str, str]) -> dict[str, object]:
    spec_text, job_text = TEMPLATE.read_text().split("\n---\n", 1)
    spec = yaml.safe_load(spec_text)["spec"]["inputs"]
    values = {name: inputs.get(name, field.get("default", "")) for name, field in spec.items()}
    interpolated = re.sub(r"\$\[\[ inputs\.([\w-]+) \]\]", lambda m: values[m[1]], job_text)
    job: dict[str, object] = yaml.safe_load(interpolated)["cd-checks-validate"]
    return job


def test_gitlab_template_is_valid_gitlab_ci(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"cd-checks-validate": gitlab_job({})}))
    check_jsonschema("vendor.gitlab-ci", jobs)


def test_gitlab_job_script_publishes_reports(tmp_path: Path) -> None:
    root = example_copy(tmp_path, bad=True)
    job = gitlab_job({"builtin": "nginx"})
    variables = {k: str(v) for k, v in dict(job["variables"]).items()}  # type: ignore[call-overload]
    # The image's set-up lines (git, pip install) are the runner's business here.
    lines = [line for line in job["script"] if "pip install" not in line and "apt-get" not in line]  # type: ignore[attr-defined]
    done = bash("\n".join(lines), root, variables)
    assert done.returncode == 1, done.stdout + done.stderr
    quality = json.loads((root / "gl-code-quality.json").read_text())
    assert {"NGINX-003", "NGINX-002"} <= {issue["check_name"].split("/")[-1] for issue in quality}
    suites = ET.parse(root / "cd-checks-junit.xml").getroot()
    assert int(suites.get("failures", "0")) > 0
    assert set(dict(job["artifacts"])["reports"]) == {"junit", "codequality"}  # type: ignore[call-overload]


def test_pre_commit_hooks_name_real_commands() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"cd-checks-validate", "cd-checks-policy-test"}
    for hook in hooks:
        args = hook["entry"].split()[1:] + ["--help"]
        done = subprocess.run(
            [sys.executable, "-m", "cd_checks", *args], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
