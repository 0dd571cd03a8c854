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
    ActionsCache,
    Runner,
    StepResult,
    copy_of_repository,
    parse_annotations,
    runner_path,
    runner_python,
)
from tests.ci.signed_ops import SignedOps
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
    assert "cd-checks scope" not in result.summaries  # a push: no pull request to scope
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


def test_pr_mode_puts_the_changes_scope_in_the_job_summary(
    tmp_path: Path, make_runner: Any
) -> None:
    workspace = checkout(tmp_path)
    base = workspace_sha(workspace)
    rules = workspace / "prometheus/rules/node.rules.yml"
    rules.write_text(rules.read_text() + "# a reviewed threshold\n")
    git(workspace, "commit", "-qam", "an alert rule")
    result = run_validate(make_runner(workspace), **{"changed-since": base})
    assert result.outcome == "success", _log(result)
    summary = step(result, "cd-checks validate").summary
    assert ":white_check_mark: no problems in" in summary
    scope = summary[summary.index("### cd-checks scope") :]
    assert f"1 changed file between `{base[:12]}`" in scope
    assert "#### monitoring" in scope and "#### nginx" not in scope
    # A repository that deploys nothing gets no scope.
    (workspace / "cd-checks.yml").write_text("---\nfiles: {}\n")
    git(workspace, "commit", "-qam", "no rollout")
    result = run_validate(make_runner(workspace), **{"changed-since": base})
    assert result.outputs["exit-code"] in ("0", "1"), _log(result)  # validate ran
    assert "cd-checks scope" not in result.summaries


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
        "./.cd-checks/rollout/*/*/rollout.json",
        "./.cd-checks/audit.jsonl",
    ]


# -- the rollout action's audit steps: verify, publish and keep the head ------------------------

ANCHOR_PREFIX = "cd-checks-audit-anchor-"


class Deployments(SignedOps):
    """The signed ops repository deployed by workflow jobs using the rollout action;
    each run is a fresh runner: a new clone, an empty runner temp directory, the
    repository's Actions cache kept. The paths are the same in every run, as on
    GitHub's hosted runners (/home/runner/work/REPO/REPO, /home/runner/work/_temp):
    a cache entry's `path` list is part of its version."""

    def __init__(self, tmp_path: Path, action_root: Path, runner_bin: Path) -> None:
        super().__init__(tmp_path)
        self.action_root, self.runner_bin = action_root, runner_bin
        self.cache = ActionsCache(tmp_path / "actions-cache")
        self.runs = 0

    def run(self, job: str, **inputs: str) -> StepResult:
        """One workflow job using the rollout action, as GitHub starts it: a fresh clone.

        The install step runs once a session: the runner's Python outlives the tests
        (other tests check what it installs)."""
        self.runs += 1
        workspace, temp = self.tmp / "work" / "ops" / "ops", self.tmp / "work" / "_temp"
        shutil.rmtree(self.tmp / "work", ignore_errors=True)
        self.clone(workspace)
        temp.mkdir()
        runner = Runner(
            workspace=workspace,
            temp=temp,
            action_root=self.action_root,
            path=runner_path(self.runner_bin, str(BIN)),
            github={
                "sha": git(workspace, "rev-parse", "HEAD").strip(),
                "workspace": str(workspace),
                "event_name": "push",
                "ref": "refs/heads/main",
                "event": {"repository": {"default_branch": "main"}},
                "run_id": str(1000 + self.runs),
                "run_attempt": "1",
                "job": job,
            },
            env={"CI": "true", "XDG_STATE_HOME": str(temp / "home-state")},
            cache=self.cache,
            skip=frozenset({"Install cd-checks"} if self.installed() else ()),
        )
        with_ = {"stage": job, "audit-key": self.key.read_text(), **inputs}
        return runner.run_action(self.action_root / "rollout", with_)

    def installed(self) -> bool:
        return any(self.runner_bin.parent.glob("lib/python*/site-packages/cd_checks-*.dist-info"))


def everything_shown(result: StepResult) -> str:
    """The job's log and summary: every step's output, nested actions included."""
    return "\n".join(
        "\n".join((c.stdout, c.stderr, c.summaries, *c.outputs.values(), everything_shown(c)))
        for c in result.children
    )


def test_rollout_action_verifies_publishes_and_keeps_the_audit_head_between_runs(
    tmp_path: Path, action_root: Path, runner_bin: Path
) -> None:
    deployments = Deployments(tmp_path, action_root, runner_bin)
    first = deployments.run("staging")
    assert first.outcome == "success", _log(first)
    restore = step(first, "Restore the audit trail's head kept by an earlier run")
    assert restore.uses and restore.uses.startswith("actions/cache/restore@")
    assert restore.with_["key"] == f"{ANCHOR_PREFIX}1001-1-staging"
    assert restore.with_["restore-keys"] == ANCHOR_PREFIX
    assert restore.with_["path"] == f"{tmp_path}/work/_temp/cd-checks-audit-anchor"
    assert restore.outputs["cache-matched-key"] == ""  # the first run: nothing kept yet
    assert any(
        a.level == "warning" and "no head of this trail kept" in a.message
        for a in first.annotations
    )
    # Two records (start, final), signed with the secret's key, pushed to origin.
    assert len(deployments.records()) == 2
    head = step(first, "Verify the audit trail and publish its head").outputs
    assert head["ok"] == head["anchored"] == "true" and head["head-seq"] == "1"
    assert first.outputs["audit-head-hash"] == head["head-hash"] != ""
    assert re.search(r"`branch cd-checks/audit of .*`: 0 records, chain intact", first.summaries)
    assert (
        f"| after this job | #1 | `{head['head-id']}` | `{head['head-hash']}` |" in first.summaries
    )
    assert f"Kept for the next run: cache `{ANCHOR_PREFIX}1001-1-staging`." in first.summaries
    saved = step(first, "Keep the audit trail's head for the next run")
    assert saved.with_["key"] == f"{ANCHOR_PREFIX}1001-1-staging"
    assert [e.key for e in deployments.cache.entries] == [f"{ANCHOR_PREFIX}1001-1-staging"]

    second = deployments.run("canary")
    assert second.outcome == "success", _log(second)
    matched = step(second, "Restore the audit trail's head kept by an earlier run")
    assert matched.outputs["cache-matched-key"] == f"{ANCHOR_PREFIX}1001-1-staging"
    assert (
        f"Checked against the head an earlier run kept (cache `{ANCHOR_PREFIX}1001-1-staging`):"
        f" #1 `{head['head-id']}` `{head['head-hash']}`." in second.summaries
    )
    assert "2 records, chain intact, signed: ci: 2." in second.summaries
    assert second.outputs["audit-head-seq"] == "3"
    assert len(deployments.deployed()) == 2  # stage-1 and the canary host

    # The audit branch is pushed back to record #1 (a forced push): the head the
    # canary run kept (#3) is gone. Nothing is deployed; the job says which record.
    deployments.cut_trail(2)
    for host in deployments.fleet.iterdir():
        host.write_text("before")
    third = deployments.run("canary")
    assert third.outcome == "failure"
    verify = step(third, "Verify the audit trail")
    assert verify.outcome == "failure" and verify.returncode == 1
    errors = [a.message for a in third.annotations if a.level == "error"]
    assert any(
        m.startswith("truncated: record #3 (") and "is gone: the trail ends at #1, but held #3" in m
        for m in errors
    ), errors
    assert step(third, "cd-checks rollout").outcome == "skipped"
    assert set(deployments.deployed().values()) == {"before"}
    assert step(third, "Verify the audit trail and publish its head").outcome == "skipped"
    assert step(third, "Keep the audit trail's head for the next run").outcome == "skipped"
    assert ":x: **audit verify failed** (nothing was deployed):" in third.summaries
    assert "- `truncated` record \\#3 " in third.summaries
    assert len(deployments.cache.entries) == 2  # the kept head stays #3

    # The signing key reached cd-checks, and no log, summary or output of any run.
    shown = "\n".join(everything_shown(r) for r in (first, second, third))
    secret = deployments.secret_lines()
    assert secret and not any(line in shown for line in secret)


def test_break_glass_goes_on_past_a_failed_verify_loudly_and_keeps_no_head(
    tmp_path: Path, action_root: Path, runner_bin: Path
) -> None:
    deployments = Deployments(tmp_path, action_root, runner_bin)
    assert deployments.run("staging").outcome == "success"
    deployments.cut_trail(1)  # a torn-off final record: the kept head (#1) is gone
    emergency = {"break-glass": "true", "reason": "outage", "ticket": "INC-7"}
    (deployments.fleet / "stage-1").write_text("before")
    result = deployments.run("staging", **emergency)
    verify = step(result, "Verify the audit trail")
    assert verify.outcome == "success"  # reported, not blocking
    errors = [a.message for a in result.annotations if a.level == "error"]
    assert any(m.startswith("truncated: record #1 (") for m in errors), errors
    assert any(m.startswith("BREAK-GLASS: going on past a failed audit verify") for m in errors)
    assert step(result, "cd-checks rollout").outcome == "success", _log(result)
    assert (deployments.fleet / "stage-1").read_text() != "before"
    after = step(result, "Verify the audit trail and publish its head")
    assert after.outputs["anchored"] == "false"
    assert step(result, "Keep the audit trail's head for the next run").outcome == "skipped"
    assert "BREAK-GLASS: the job went on" in result.summaries
    assert len(deployments.cache.entries) == 1


def test_without_audit_anchor_the_trail_is_verified_but_no_head_is_kept(
    tmp_path: Path, action_root: Path, runner_bin: Path
) -> None:
    deployments = Deployments(tmp_path, action_root, runner_bin)
    result = deployments.run("staging", **{"audit-anchor": "false"})
    assert result.outcome == "success", _log(result)
    for name in (
        "Restore the audit trail's head kept by an earlier run",
        "Keep the audit trail's head for the next run",
    ):
        assert step(result, name).outcome == "skipped", name
    assert "input `audit-anchor` is false" in result.summaries
    assert result.outputs["audit-head-seq"] == "1"
    assert deployments.cache.entries == []


def verify_audit_module() -> Any:
    """rollout/verify_audit.py, the audit steps' script, imported from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("verify_audit", REPO / "rollout/verify_audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_record_text_from_a_forged_trail_cannot_act_in_the_log_or_the_summary() -> None:
    steps = verify_audit_module()
    hostile = "x\n::add-mask::abc\n##[stop-commands]tok | `code` <b>"
    verdict = {
        "ok": False,
        "problems": [{"kind": "unsigned", "id": hostile, "message": f"record #9 ({hostile})"}],
    }
    lines = steps.annotate(1, verdict, "cd-checks: warning: seen " + hostile.replace("\n", " "))
    assert all(line.startswith(("::error title=", "::warning title=")) for line in lines)
    assert [a.message for a in parse_annotations("\n".join(lines))] == [
        "seen " + hostile.replace("\n", " "),
        f"unsigned: record #9 ({hostile})",
    ]
    summary = steps.summary("before", 1, verdict, {})
    assert all(
        not line.lstrip().startswith("::") and "##[" not in line for line in summary.split("\n")
    )
    assert "\\| \\`code\\` \\<b\\>" in summary
    # cd-checks stopped (exit 2): its error line is the annotation.
    (error,) = parse_annotations(
        "\n".join(steps.annotate(2, None, "cd-checks: error: bad config\n"))
    )
    assert (error.level, error.message) == ("error", "cd-checks: error: bad config")
    assert steps.outputs(2, None) == {
        "ok": "false", "head-seq": "", "head-id": "", "head-hash": "", "anchored": "false"
    }  # fmt: skip


def test_the_summary_says_why_a_head_was_or_was_not_checked() -> None:
    steps = verify_audit_module()
    base = {"ok": True, "records": 0, "signed": {}, "unsigned": [], "problems": []}
    kept = {"KEEP_HEAD": "true", "ANCHORS": "/tmp/a", "RESTORED": "cd-checks-audit-anchor-7"}
    file_trail = {**base, "trail": ".cd-checks/audit.jsonl", "anchor_file": None, "head": None}
    assert "this trail lives in the checkout" in steps.summary("before", 0, file_trail, kept)
    assert "| before the deploy | (empty) | | |" in steps.summary("before", 0, file_trail, kept)
    off = steps.summary("before", 0, file_trail, {**kept, "KEEP_HEAD": "false"})
    assert "input `audit-anchor` is false" in off
    first = {**file_trail, "anchor_file": "/tmp/a/anchors/x.json", "anchor": None}
    assert ":warning: No head kept by an earlier run" in steps.summary("before", 0, first, kept)


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
        "CHANGE": "",
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
        ["rollout", "run", "--inventory", "lab/inventory.yml", "--all-changes"]
        + ["--revision", "abc123", "--stage", "canary"]
    ]
    done, calls = run_rollout_step(tmp_path, ALL="true", CONFIG="ops.yml")
    assert calls == [
        ["rollout", "run", "--config", "ops.yml", "--all-changes", "--revision", "abc123", "--all"]
    ]
    done, calls = run_rollout_step(tmp_path, STAGE="canary", CHANGE="nginx")
    assert calls == [
        ["rollout", "run", "--change", "nginx", "--revision", "abc123", "--stage", "canary"]
    ]


def test_rollout_step_passes_break_glass_inputs_as_plain_arguments(tmp_path: Path) -> None:
    reason = 'outage "$(touch pwned)"; `touch pwned2`'
    done, calls = run_rollout_step(
        tmp_path, STAGE="production", BREAK_GLASS="true", REASON=reason, TICKET="INC-7"
    )
    assert done.returncode == 0, done.stderr
    assert calls == [
        ["rollout", "run", "--all-changes", "--revision", "abc123", "--stage", "production"]
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


def test_rollout_step_rolls_back_the_unfinished_environments_of_change_types(
    tmp_path: Path,
) -> None:
    records = {
        "nginx/production": "open",
        "nginx/staging": "done",
        "patches/staging": "halted",
        "patches/production": "rolled_back",
    }
    for directory, status in records.items():
        record = tmp_path / ".cd-checks" / "rollout" / directory / "rollout.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"status": status}, indent=2))
    done, calls = run_rollout_step(tmp_path, COMMAND="rollback", INVENTORY="lab/hosts.yml")
    assert done.returncode == 0, done.stderr
    assert calls == [
        ["rollback", "--inventory", "lab/hosts.yml", "--change", "nginx"]
        + ["--environment", "production"]
    ]
    assert "cd-checks: staging of change type patches was left as it is" in done.stdout
    # An explicit rollback-to undoes a halted one too.
    done, calls = run_rollout_step(tmp_path, COMMAND="rollback", ROLLBACK_TO="def456")
    assert calls == [
        ["rollback", "--change", "nginx", "--environment", "production", "--to", "def456"],
        ["rollback", "--change", "patches", "--environment", "staging", "--to", "def456"],
    ]


# -- the example deploy workflow ---------------------------------------------------------------


def test_deploy_workflow_is_staged_serialised_and_least_privilege() -> None:
    workflow = yaml.safe_load((REPO / "examples/ci/github/deploy.yml").read_text())
    jobs = workflow["jobs"]
    triggers = workflow[True]  # yaml reads `on:` as True
    assert triggers["push"] == {"branches": ["main"]}
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"break-glass", "reason", "ticket"}
    assert workflow["permissions"] == {"contents": "read"}
    stages = ("staging", "canary", "production", "monitoring")
    assert [jobs[j]["needs"] for j in stages] == ["validate", "staging", "canary", "production"]
    for job, environment, group in [
        ("staging", "staging", "deploy-staging"),
        ("canary", "canary", "deploy-production"),
        ("production", "production", "deploy-production"),
        ("monitoring", "monitoring", "deploy-monitoring"),
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
    assert set(jobs["rollback"]["needs"]) == set(stages)
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
