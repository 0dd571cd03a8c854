"""The pre-commit hooks, adopted as the README says and run by pre-commit itself.

`pre-commit try-repo` installs the hooks from a commit of this repository (a
copy, committed, as a user's clone would be) into pre-commit's own environment
and runs them in a scratch repository holding the example ops repository. The
hook gets file names, so a staged schema, policy or `cd-checks.yml` must make
cd-checks check the whole repository, as PR mode does; that is tested through
the CLI too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.ci.github_runner import copy_of_repository
from tests.conftest import EXAMPLES, REPO, Run, git, init_repo

Cli = Callable[..., Run]
HOOKS = REPO / ".pre-commit-hooks.yaml"
# A schema that every service of the example repository now fails.
STRICTER = ('"required": ["name",', '"required": ["runbook", "name",')


def ops_repository(root: Path, *, bad: bool = False) -> Path:
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".cd-checks", "ci"))
    if bad:
        shutil.copytree(root / "bad-change", root, dirs_exist_ok=True)
    return init_repo(root)


def stricter_schema(root: Path) -> Path:
    schema = root / "schemas" / "service.schema.json"
    schema.write_text(schema.read_text().replace(*STRICTER))
    return schema


def findings(run: Run) -> list[dict[str, object]]:
    return list(json.loads(run.out)["findings"])


# -- named files that decide other files' verdicts widen the run ---------------------------


def test_a_named_schema_checks_the_files_it_governs(cli: Cli, tmp_path: Path) -> None:
    root = ops_repository(tmp_path / "ops")
    stricter_schema(root)
    run = cli("-C", root, "validate", "--format", "json", "schemas/service.schema.json")
    assert run.code == 1, run.err
    failed = {(f["path"], f["check"]) for f in findings(run)}
    assert {("services/shop.yml", "schema"), ("services/status.yml", "schema")} <= failed


@pytest.mark.parametrize("name", ["cd-checks.yml", "policy/services.rego"])
def test_a_named_config_or_policy_checks_everything(cli: Cli, tmp_path: Path, name: str) -> None:
    root = ops_repository(tmp_path / "ops")
    (root / "services" / "status.yml").write_text("---\nbroken: [\n")  # not the named file
    run = cli("-C", root, "validate", "--format", "json", name)
    assert run.code == 1
    assert ("services/status.yml", "syntax") in {(f["path"], f["check"]) for f in findings(run)}


def test_a_named_ordinary_file_checks_only_itself(cli: Cli, tmp_path: Path) -> None:
    root = ops_repository(tmp_path / "ops")
    (root / "services" / "status.yml").write_text("---\nbroken: [\n")
    run = cli("-C", root, "validate", "--format", "json", "services/shop.yml")
    assert run.code == 0, run.out
    assert json.loads(run.out)["summary"]["files"] == 1


# -- the hooks, through pre-commit ---------------------------------------------------------


def test_hooks_name_real_commands() -> None:
    hooks = yaml.safe_load(HOOKS.read_text())
    assert {h["id"] for h in hooks} == {"cd-checks-validate", "cd-checks-policy-test"}
    for hook in hooks:
        args = [a for a in hook["entry"].split()[1:] if a != "--"] + ["--help"]
        done = subprocess.run(
            [sys.executable, "-m", "cd_checks", *args], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr


def test_hooks_file_is_valid_for_pre_commit() -> None:
    done = pre_commit("validate-manifest", str(HOOKS), cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def hooks_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository at a commit, as `repo:` and `rev:` give it to pre-commit."""
    copy = copy_of_repository(REPO, tmp_path_factory.mktemp("cd-checks"))
    return init_repo(copy)


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def pre_commit(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:
        env["PRE_COMMIT_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_try_repo_all_files_passes_a_clean_repository_and_fails_a_bad_change(
    tmp_path: Path, hooks_repository: Path, pre_commit_home: Path
) -> None:
    clean = ops_repository(tmp_path / "clean")
    done = pre_commit(
        "try-repo", str(hooks_repository), "cd-checks-validate", "--all-files",
        cwd=clean, home=pre_commit_home,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cd-checks validate" in done.stdout and "Passed" in done.stdout

    bad = ops_repository(tmp_path / "bad", bad=True)
    done = pre_commit(
        "try-repo", str(hooks_repository), "cd-checks-validate", "--all-files",
        cwd=bad, home=pre_commit_home,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Failed" in done.stdout
    assert "nginx/sites/files.conf:" in done.stdout and "NGINX-" in done.stdout


def test_try_repo_on_a_staged_schema_checks_the_services_it_governs(
    tmp_path: Path, hooks_repository: Path, pre_commit_home: Path
) -> None:
    root = ops_repository(tmp_path / "ops")
    schema = stricter_schema(root)
    git(root, "add", str(schema))
    done = pre_commit(
        "try-repo", str(hooks_repository), "cd-checks-validate", cwd=root, home=pre_commit_home
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "services/shop.yml" in done.stdout and "runbook" in done.stdout


def test_try_repo_policy_tests_run_when_a_policy_is_staged(
    tmp_path: Path, hooks_repository: Path, pre_commit_home: Path
) -> None:
    root = ops_repository(tmp_path / "ops")
    policy = root / "policy" / "services.rego"
    policy.write_text(policy.read_text() + "\n")
    git(root, "add", str(policy))
    done = pre_commit(
        "try-repo", str(hooks_repository), "cd-checks-policy-test", cwd=root, home=pre_commit_home
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cd-checks policy test" in done.stdout and "Passed" in done.stdout


def test_the_hook_passes_file_names_after_double_dash() -> None:
    """A staged file named like an option (`--output=victim.yml`) must stay a file name."""
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"))
    entry = next(h["entry"] for h in hooks if h["id"] == "cd-checks-validate")
    assert entry.split()[-1] == "--", entry
