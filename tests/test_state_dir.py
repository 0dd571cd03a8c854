"""`.cd-checks/` ignores itself: it never shows in `git status`, whoever wrote into it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from cd_checks import state_dir
from cd_checks.cli import main
from tests.conftest import git, init_repo, write_tree
from tests.rollout.repo_files import YAMLLINT

DEPLOY = "import sys; print('deployed', sys.argv[1:])\n"


def rollout_repo(root: Path) -> Path:
    """A git repository with a rollout (a command applier, no hosts touched) and no .gitignore."""
    section = {
        "inventory": "inventory/hosts.yml",
        "apply": {"command": [sys.executable, "deploy.py", "{hosts}", "{revision}"]},
        "stages": [{"name": "staging", "hosts": "staging"}],
        "health": {"bake_seconds": 0},
    }
    inventory = {"all": {"children": {"staging": {"hosts": {"stage-1": None}}}}}
    write_tree(
        root,
        {
            "cd-checks.yml": yaml.safe_dump({"rollout": section}),
            "inventory/hosts.yml": yaml.safe_dump(inventory),
            "deploy.py": DEPLOY,
            ".yamllint": YAMLLINT,
        },
    )
    return init_repo(root)


def status(root: Path) -> str:
    return git(root, "status", "--porcelain", "--untracked-files=all")


def test_validate_cache_and_rollout_state_and_audit_never_show_in_git_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = rollout_repo(tmp_path / "repo")
    assert main(["-C", str(root), "validate"]) == 0
    assert any((root / ".cd-checks" / "cache").rglob("*.json"))  # the cache was written
    assert status(root) == ""
    assert main(["-C", str(root), "rollout", "run", "--all"]) == 0, capsys.readouterr()
    assert (root / ".cd-checks" / "audit.jsonl").read_text("utf-8").count("\n") == 2
    assert any((root / ".cd-checks" / "rollout" / "staging").iterdir())
    assert status(root) == ""
    # `git add -A` (what put .cd-checks/ into commits) adds nothing either.
    git(root, "add", "-A")
    assert git(root, "diff", "--cached", "--name-only") == ""
    assert (root / ".cd-checks" / ".gitignore").read_text("utf-8").splitlines()[-1] == "*"


def test_a_directory_restored_without_its_gitignore_gets_it_back(tmp_path: Path) -> None:
    # A CI cache restores .cd-checks/cache/ alone; the next write restores the .gitignore.
    root = init_repo(tmp_path)
    (root / ".cd-checks" / "cache" / "ab").mkdir(parents=True)
    (root / ".cd-checks" / "cache" / "ab" / "old.json").write_text("[]")
    assert ".cd-checks/cache/ab/old.json" in status(root)
    state_dir.make_dirs(root / ".cd-checks" / "cache" / "cd")
    assert status(root) == ""


def test_a_users_own_gitignore_is_kept(tmp_path: Path) -> None:
    top = tmp_path / ".cd-checks"
    top.mkdir()
    (top / ".gitignore").write_text("cache/\n")
    state_dir.make_dirs(top / "cache")
    assert (top / ".gitignore").read_text() == "cache/\n"
    assert sorted(p.name for p in top.iterdir()) == [".gitignore", "cache"]  # no temp file left


def test_a_directory_the_user_chose_outside_cd_checks_gets_no_gitignore(tmp_path: Path) -> None:
    state_dir.make_dirs(tmp_path / "ops-state" / "rollout" / "staging")
    assert not list(tmp_path.rglob(".gitignore"))
    assert state_dir.state_root(tmp_path / "a" / ".cd-checks" / "lab" / "hosts") == (
        tmp_path / "a" / ".cd-checks"
    )
    assert state_dir.state_root(Path(".cd-checks/lab")) == Path(".cd-checks")
