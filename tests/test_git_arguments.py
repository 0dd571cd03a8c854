"""Revisions and branches a user names reach git as revisions, never as options, and a
shallow clone gets a message naming the fix (issue 9 items 6 and 10).

`metrics --branch=--output=F` made `git log` write F; `--changed-since` passed REF
straight to `git merge-base`. In a shallow clone (the default of actions/checkout and
of GitLab's GIT_DEPTH) `--changed-since` said only "git merge-base origin/main: failed".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cd_checks import files, metrics
from cd_checks.errors import InputError, ToolError
from tests.conftest import Run, git, init_repo, write_tree
from tests.test_state_dir import rollout_repo

Cli = Callable[..., Run]
FULL_HISTORY = (
    "fetch the full history: `fetch-depth: 0` on actions/checkout (GitHub Actions), "
    "`GIT_DEPTH: 0` in the job's variables (GitLab CI), or `git fetch --unshallow`"
)


def untouched(root: Path, before: set[str]) -> bool:
    return {p.name for p in root.iterdir()} == before


@pytest.mark.parametrize("option", ["--output=victim.txt", "--output=../victim.txt"])
def test_metrics_branch_is_never_a_git_option(cli: Cli, tmp_path: Path, option: str) -> None:
    root = rollout_repo(tmp_path / "repo")
    before = {p.name for p in root.iterdir()}
    run = cli("-C", root, "metrics", "-e", "staging", f"--branch={option}")
    assert run.code == 2
    assert run.err == (
        f"cd-checks: error: git log {option} failed: fatal: bad revision '{option}'\n"
    )
    assert untouched(root, before) and not (tmp_path / "victim.txt").exists()


def test_metrics_history_reads_a_branch_named_like_an_option_as_a_revision(
    tmp_path: Path,
) -> None:
    root = init_repo(write_tree(tmp_path, {"a.yml": "a: 1\n"}))
    with pytest.raises(ToolError, match="bad revision '--output=x'"):
        metrics.history(root, "--output=x")
    assert not (root / "x").exists()
    assert len(metrics.history(root, "main")) == 1


@pytest.mark.parametrize("ref", ["--output=victim.txt", "-p", "--fork-point"])
def test_changed_since_is_never_a_git_option(cli: Cli, tmp_path: Path, ref: str) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.yml": "---\na: 1\n"}))
    before = {p.name for p in root.iterdir()}
    run = cli("-C", root, "validate", f"--changed-since={ref}")
    assert run.code == 2
    assert run.err == (
        f"cd-checks: error: --changed-since {ref}: a revision cannot start with '-'\n"
    )
    assert untouched(root, before)


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """main with three commits; `feature` branches off the first and adds one."""
    root = init_repo(write_tree(tmp_path / "upstream", {"a.yml": "---\na: 1\n"}))
    git(root, "checkout", "-q", "-b", "feature")
    write_tree(root, {"feature.yml": "---\nb: 2\n"})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "feature")
    git(root, "checkout", "-q", "main")
    for n in (2, 3):
        write_tree(root, {f"main{n}.yml": "---\nc: 3\n"})
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"main {n}")
    return root


def test_a_shallow_clone_names_the_fix(cli: Cli, tmp_path: Path, upstream: Path) -> None:
    # actions/checkout's default: depth 1 (here with the other branches at depth 1 too).
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "--no-single-branch", upstream.as_uri(), "clone")
    git(clone, "checkout", "-q", "feature")
    run = cli("-C", clone, "validate", "--changed-since", "origin/main")
    assert run.code == 2
    assert run.err == (
        "cd-checks: error: --changed-since origin/main: no common ancestor with HEAD, because "
        f"this clone is shallow (history cut off); {FULL_HISTORY}\n"
    )


def test_a_branch_missing_from_a_shallow_clone_names_the_fix(
    cli: Cli, tmp_path: Path, upstream: Path
) -> None:
    # actions/checkout of a pull request: one commit, and origin/main not fetched at all.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "-b", "feature", upstream.as_uri(), "clone")
    run = cli("-C", clone, "validate", "--changed-since", "origin/main")
    assert run.code == 2
    assert run.err == (
        "cd-checks: error: --changed-since origin/main: no such revision in this clone; "
        f"this clone is shallow; {FULL_HISTORY}\n"
    )


def test_after_unshallowing_the_same_command_works(
    cli: Cli, tmp_path: Path, upstream: Path
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "--no-single-branch", upstream.as_uri(), "clone")
    git(clone, "checkout", "-q", "feature")
    git(clone, "fetch", "-q", "--unshallow")
    assert files.select(clone, changed_since="origin/main").paths == ("feature.yml",)


def test_unrelated_history_is_one_error_line(tmp_path: Path) -> None:
    root = init_repo(write_tree(tmp_path, {"a.yml": "a: 1\n"}))
    git(root, "checkout", "-q", "--orphan", "other")
    git(root, "commit", "-q", "-m", "unrelated", "--allow-empty")
    with pytest.raises(InputError, match="^--changed-since main: no common ancestor with HEAD"):
        files.select(root, changed_since="main")
