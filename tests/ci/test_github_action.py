"""The validate and rollout Actions, run step by step the way GitHub's runner runs them.

Each test lays out a scratch repository as `actions/checkout` leaves it and runs
the composite action from a copy of this repository (`github.action_path`):
the cache-key step, the install step (a real `pip install` of the action's own
checkout into a fresh Python), the validate step with GITHUB_OUTPUT,
GITHUB_STEP_SUMMARY and GITHUB_WORKSPACE, and the cache-save conditions. Only
the third-party actions (setup-python, cache) are skipped; see github_runner.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.github_runner import (
    Runner,
    StepResult,
    copy_of_repository,
    runner_path,
    runner_python,
)
from tests.conftest import EXAMPLES, REPO, git, init_repo, write_tree

ACTION = REPO / "action.yml"
ROLLOUT_ACTION = REPO / "rollout" / "action.yml"
BIN = Path(sys.executable).parent
THIRD_PARTY = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")
CACHE_KEY = "0123456789abcdef0123456789abcdef"  # stands in for secrets.CD_CHECKS_CACHE_KEY


@pytest.fixture(scope="session")
def action_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of_repository(REPO, tmp_path_factory.mktemp("action"))


@pytest.fixture(scope="session")
def runner_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runner_python(tmp_path_factory.mktemp("runner") / "python", sys.executable)


@pytest.fixture
def make_runner(tmp_path: Path, action_root: Path, runner_bin: Path) -> Any:
    def make(workspace: Path, **github: Any) -> Runner:
        temp = tmp_path / "runner-temp"
        temp.mkdir(exist_ok=True)
        sha = git(workspace, "rev-parse", "HEAD").strip() if (workspace / ".git").exists() else ""
        return Runner(
            workspace=workspace,
            temp=temp,
            action_root=action_root,
            path=runner_path(runner_bin, str(BIN)),
            github={
                "sha": sha,
                "workspace": str(workspace),
                "event_name": "push",  # to the default branch
                "ref": "refs/heads/main",
                "event": {"repository": {"default_branch": "main"}},
                **github,
            },
        )

    return make


def checkout(tmp_path: Path, *, bad: bool = False, under: str = "") -> Path:
    """The example repository (optionally with the bad change, or in a subdirectory), committed."""
    workspace = tmp_path / "workspace"
    root = workspace / under
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".cd-checks"))
    if bad:
        shutil.copytree(root / "bad-change", root, dirs_exist_ok=True)
    return init_repo(workspace)


def step(result: StepResult, name: str) -> StepResult:
    (found,) = [child for child in result.children if child.name == name]
    return found


def run_validate(runner: Runner, **inputs: str) -> StepResult:
    return runner.run_action(runner.action_root, inputs)


# -- the validate action ---------------------------------------------------------------------


def test_action_is_at_the_repository_root_and_valid() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-actions"]
        + [str(ACTION), str(ROLLOUT_ACTION)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (REPO / "github-action").exists()
    for path in (ACTION, ROLLOUT_ACTION):
        action = yaml.safe_load(path.read_text())
        assert action["runs"]["using"] == "composite"
        lines = path.read_text().splitlines()
        for step in action["runs"]["steps"]:
            # inputs reach scripts through env only: no ${{ }} inside a run script
            assert "${{" not in step.get("run", "")
            if "uses" in step:  # third-party actions pinned by commit, with the version
                line = next(line for line in lines if f"uses: {step['uses']}" in line)
                assert THIRD_PARTY.match(line.split("uses: ", 1)[1]), line


def test_action_declares_the_outputs_and_inputs_of_the_contract() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert set(action["outputs"]) == {"errors", "warnings", "exit-code", "sarif"}
    assert set(action["inputs"]) == {
        "working-directory", "paths", "changed-since", "fail-on", "sarif-file",
        "builtin", "python-version", "cd-checks-version", "cache", "cache-key",
    }  # fmt: skip
    assert action["inputs"]["cache"]["default"] == "true"


def test_clean_repository_passes_with_outputs_summary_and_caches(
    tmp_path: Path, make_runner: Any
) -> None:
    workspace = checkout(tmp_path)
    result = run_validate(
        make_runner(workspace),
        builtin="nginx monitoring",
        **{"sarif-file": "cd-checks.sarif", "cache-key": CACHE_KEY},
    )
    assert result.outcome == "success", _log(result)
    assert result.outputs == {
        "errors": "0",
        "warnings": "0",
        "exit-code": "0",
        "sarif": "cd-checks.sarif",
    }
    assert json.loads((workspace / "cd-checks.sarif").read_text())["runs"][0]["results"] == []
    assert ":white_check_mark: no problems in" in result.summaries
    assert result.annotations == []
    # Installed from the action's own checkout (github.action_path), not from an index.
    install = step(result, "Install cd-checks")
    assert install.outcome == "success" and "Successfully installed cd-checks" in install.stdout
    # Both caches restored before use and saved after, under the keys of the key step.
    keys = step(result, "Cache keys").outputs
    assert keys["validate-path"] == ".cd-checks/cache"
    assert re.fullmatch(
        rf"cd-checks-results-Linux-\w+-[0-9a-f]{{12}}-default-{workspace_sha(workspace)}",
        keys["validate-key"],
    )
    restored = step(result, "Restore cd-checks' result cache")
    assert restored.with_["restore-keys"].splitlines() == [
        keys["validate-key"].removesuffix(workspace_sha(workspace))
    ]
    assert re.fullmatch(
        r"cd-checks-pip-Linux-\w+-py3\.\d+\.\d+-[0-9a-f]{16}-\d{4}-\d\d", keys["pip-key"]
    )
    saved = step(result, "Save cd-checks' result cache")
    assert saved.uses and saved.uses.startswith("actions/cache/save@")
    assert saved.with_ == {"path": ".cd-checks/cache", "key": keys["validate-key"]}
    assert any((workspace / ".cd-checks" / "cache").rglob("*.json"))
    assert step(result, "Save pip's downloads").with_["path"] == keys["pip-path"] != ""


def workspace_sha(workspace: Path) -> str:
    return git(workspace, "rev-parse", "HEAD").strip()


def test_findings_fail_the_step_with_annotations_counts_and_sarif(
    tmp_path: Path, make_runner: Any
) -> None:
    workspace = checkout(tmp_path, bad=True)
    result = run_validate(
        make_runner(workspace),
        builtin="nginx monitoring",
        **{"sarif-file": "out/cd-checks.sarif", "cache-key": CACHE_KEY},
    )
    assert result.outcome == "failure"
    assert result.outputs["exit-code"] == "1"
    errors = [a for a in result.annotations if a.level == "error"]
    warnings = [a for a in result.annotations if a.level == "warning"]
    assert result.outputs["errors"] == str(len(errors)) != "0"
    assert result.outputs["warnings"] == str(len(warnings))
    nginx = [a for a in errors if a.properties["file"] == "nginx/sites/files.conf"]
    assert nginx and all(a.properties["line"].isdigit() for a in nginx)
    # The SARIF report is written although the step fails, and the output says where.
    assert result.outputs["sarif"] == "out/cd-checks.sarif"
    sarif = json.loads((workspace / "out" / "cd-checks.sarif").read_text())
    assert len(sarif["runs"][0]["results"]) == len(errors) + len(warnings)
    # A red run's results are saved for the next run too.
    assert step(result, "Save cd-checks' result cache").outcome == "success"
    assert step(result, "Save pip's downloads").outcome == "success"


def test_config_error_is_an_annotation_and_a_summary_line(tmp_path: Path, make_runner: Any) -> None:
    workspace = checkout(tmp_path)
    (workspace / "cd-checks.yml").write_text("---\npolcy: {}\n")
    git(workspace, "commit", "-qam", "a typo")
    result = run_validate(make_runner(workspace), **{"sarif-file": "cd-checks.sarif"})
    assert result.outcome == "failure"
    assert result.outputs == {"errors": "0", "warnings": "0", "exit-code": "2", "sarif": ""}
    (annotation,) = result.annotations
    assert annotation.level == "error"
    assert annotation.properties["file"] == "cd-checks.yml"
    assert "unknown key 'polcy'" in annotation.message
    assert "## cd-checks validate" in result.summaries
    assert "not run:" in result.summaries and "unknown key 'polcy'" in result.summaries
    assert not (workspace / "cd-checks.sarif").exists()
    # Nothing was checked: nothing to save; pip's downloads are kept.
    assert step(result, "Save cd-checks' result cache").outcome == "skipped"
    assert step(result, "Save pip's downloads").outcome == "success"


def test_working_directory_paths_are_relative_to_the_repository_root(
    tmp_path: Path, make_runner: Any
) -> None:
    workspace = checkout(tmp_path, bad=True, under="ops")
    runner = make_runner(workspace)
    result = run_validate(
        runner, builtin="nginx", **{"working-directory": "ops", "sarif-file": "cd-checks.sarif"}
    )
    assert result.outputs["exit-code"] == "1"
    files = {a.properties["file"] for a in result.annotations}
    assert "ops/nginx/sites/files.conf" in files
    assert all(name.startswith("ops/") and (workspace / name).is_file() for name in files)
    assert result.outputs["sarif"] == "ops/cd-checks.sarif"
    sarif = json.loads((workspace / "ops" / "cd-checks.sarif").read_text())
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    }
    assert "ops/nginx/sites/files.conf" in uris and all(u.startswith("ops/") for u in uris)
    assert "`ops/nginx/sites/files.conf:" in result.summaries
    assert step(result, "Cache keys").outputs["validate-path"] == "ops/.cd-checks/cache"
    assert any((workspace / "ops" / ".cd-checks" / "cache").rglob("*.json"))


def test_summary_stays_small_with_thousands_of_findings(tmp_path: Path, make_runner: Any) -> None:
    lines = "".join(f"key{n}: value   \n" for n in range(150))  # trailing spaces: an error a line
    workspace = write_tree(
        tmp_path / "workspace", {f"f{i:02}.yml": "---\n" + lines for i in range(30)}
    )
    init_repo(workspace)
    result = run_validate(make_runner(workspace))
    assert result.outputs["exit-code"] == "1"
    assert result.outputs["errors"] == "4500" == str(len(result.annotations))
    summary = step(result, "cd-checks validate").summary
    assert len(summary.encode()) < 100_000  # GitHub refuses a step summary over 1 MiB
    assert "4500 errors in 30 files" in summary
    assert len([row for row in summary.splitlines() if row.startswith("| :x:")]) == 50
    assert "... and 4450 more findings" in summary


def test_a_pull_request_restores_the_default_branch_cache_but_saves_only_its_own(
    tmp_path: Path, make_runner: Any
) -> None:
    workspace = checkout(tmp_path)
    runner = make_runner(
        workspace,
        event_name="pull_request",
        ref="refs/pull/7/merge",
        event={"pull_request": {"number": 7}, "repository": {"default_branch": "main"}},
    )
    runner.env["CD_CHECKS_CACHE_KEY"] = CACHE_KEY  # a job-level variable works as the input does
    result = run_validate(runner)
    assert result.outcome == "success", _log(result)
    keys = step(result, "Cache keys").outputs
    prefix = keys["validate-key"].split("-pr7-")[0]
    assert keys["validate-key"] == f"{prefix}-pr7-{workspace_sha(workspace)}"
    restored = step(result, "Restore cd-checks' result cache")
    assert restored.with_["restore-keys"].splitlines() == [f"{prefix}-pr7-", f"{prefix}-default-"]
    saved = step(result, "Save cd-checks' result cache")
    assert saved.outcome == "success" and saved.with_["key"] == keys["validate-key"]
    assert "-default-" not in saved.with_["key"]
    # Another ref (a feature branch push) has its own scope, never the default's.
    feature = make_runner(workspace, ref="refs/heads/feature")
    other = run_validate(feature, **{"cache-key": CACHE_KEY})
    key = step(other, "Cache keys").outputs["validate-key"]
    assert re.search(r"-ref-[0-9a-f]{12}-[0-9a-f]{40}$", key) and "-default-" not in key


def test_without_a_cache_key_the_result_cache_is_not_kept(tmp_path: Path, make_runner: Any) -> None:
    workspace = checkout(tmp_path)
    result = run_validate(make_runner(workspace))
    assert result.outcome == "success", _log(result)
    keys = step(result, "Cache keys")
    assert keys.outputs["result-cache"] == "false"
    assert "the result cache is not kept between runs: no cache-key" in keys.stdout
    for name in ("Restore cd-checks' result cache", "Save cd-checks' result cache"):
        assert step(result, name).outcome == "skipped", name
    assert step(result, "Save pip's downloads").outcome == "success"
    # Within the run, the per-user key of the runner still signs the local cache.
    assert any((workspace / ".cd-checks" / "cache").rglob("*.json"))


def test_a_result_cache_committed_by_the_pull_request_does_not_turn_it_green(
    tmp_path: Path, make_runner: Any
) -> None:
    from cd_checks.cli import main

    workspace = checkout(tmp_path, bad=True)
    assert main(["-C", str(workspace), "validate", "--builtin", "nginx", "--format", "json"]) == 1
    planted = sorted((workspace / ".cd-checks" / "cache").rglob("*.json"))
    for entry in planted:
        entry.write_text("[]")
    git(workspace, "add", "--force", "--", ".cd-checks/cache")
    git(workspace, "commit", "-qm", "no findings, honest")
    result = run_validate(make_runner(workspace), builtin="nginx", **{"cache-key": CACHE_KEY})
    assert result.outcome == "failure"
    assert result.outputs["exit-code"] == "1" and result.outputs["errors"] != "0"
    validate = step(result, "cd-checks validate")
    assert "is tracked by git (committed in the checked revision)" in validate.stderr
    assert [e.read_text() for e in planted] == ["[]"] * len(planted)


def test_cache_false_turns_both_caches_off(tmp_path: Path, make_runner: Any) -> None:
    workspace = checkout(tmp_path)
    result = run_validate(make_runner(workspace), cache="false")
    assert result.outcome == "success", _log(result)
    for name in ("Restore pip's downloads", "Restore cd-checks' result cache",
                 "Save pip's downloads", "Save cd-checks' result cache"):  # fmt: skip
        assert step(result, name).outcome == "skipped", name


def test_inputs_are_arguments_never_code(tmp_path: Path, make_runner: Any) -> None:
    workspace = checkout(tmp_path)
    crafted = '$(touch pwned) `touch pwned2` "; import os; os.system("touch pwned3")'
    result = run_validate(make_runner(workspace), paths=crafted, builtin=crafted)
    assert result.outputs["exit-code"] == "2"  # not a path, not a set: a usage error
    assert not any((workspace / name).exists() for name in ("pwned", "pwned2", "pwned3"))


def _log(result: StepResult) -> str:
    return "\n".join(f"--- {c.name} {c.outcome}\n{c.stdout}\n{c.stderr}" for c in result.children)


# -- the rollout action ----------------------------------------------------------------------


def test_rollout_action_installs_its_own_checkout_with_the_rollout_extra(
    tmp_path: Path, make_runner: Any
) -> None:
    workspace = checkout(tmp_path)
    runner = make_runner(workspace)
    result = runner.run_action(runner.action_root / "rollout", {"command": "rollback"})
    assert result.outcome == "success", _log(result)
    assert "Successfully installed cd-checks" in step(result, "Install cd-checks").stdout
    assert "nothing to roll back" in step(result, "cd-checks rollout").stdout
    upload = step(result, "Keep the rollout state for the next jobs")
    assert upload.uses and upload.uses.startswith("actions/upload-artifact@")
    assert upload.with_["path"].split() == [
        "./.cd-checks/rollout/*/rollout.json",
        "./.cd-checks/audit.jsonl",
    ]


# argv of each call, one JSON list a line: stands in for cd-checks where only the
# arguments the action builds are under test.
FAKE_CD_CHECKS = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def rollout_step_script() -> str:
    steps = yaml.safe_load(ROLLOUT_ACTION.read_text())["runs"]["steps"]
    (found,) = [s for s in steps if s.get("name") == "cd-checks rollout"]
    return str(found["run"])


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
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", rollout_step_script()],
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
        ["rollout", "run", "--inventory", "lab/inventory.yml"]
        + ["--revision", "abc123", "--stage", "canary"]
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


# -- the example deploy workflow ---------------------------------------------------------------


def test_deploy_workflow_is_staged_serialised_and_least_privilege() -> None:
    workflow = yaml.safe_load((REPO / "examples/ci/github/deploy.yml").read_text())
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
            s
            for s in jobs[job]["steps"]
            if s.get("uses", "").startswith("cd-checks/cd-checks/rollout@")
        ]
        assert rollout["with"]["stage"] == job
        assert rollout["with"]["reason"] == "${{ inputs.reason }}"
    assert jobs["rollback"]["if"] == "failure()"
    assert set(jobs["rollback"]["needs"]) == {"staging", "canary", "production"}
    assert "permissions" not in jobs["validate"]  # read-only, from the workflow
    assert any(
        s.get("uses", "").startswith("cd-checks/cd-checks@") for s in jobs["validate"]["steps"]
    )


def test_zizmor_would_catch_an_input_expanded_inside_a_script(tmp_path: Path) -> None:
    for path, name in ((ROLLOUT_ACTION, "cd-checks rollout"), (ACTION, "Install cd-checks")):
        action = yaml.safe_load(path.read_text())
        found = next(s for s in action["runs"]["steps"] if s.get("name") == name)
        found["run"] = 'cd-checks rollout run --stage "${{ inputs.stage }}"\n'
        unsafe = tmp_path / "action.yml"
        unsafe.write_text(yaml.safe_dump(action))
        done = subprocess.run(
            [str(BIN / "zizmor"), "--offline", str(unsafe)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode != 0 and "template-injection" in done.stdout, path
