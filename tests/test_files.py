"""Which files a run checks: git's view, globs, symlinks and PR mode on a real git repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cd_checks import files
from cd_checks.errors import InputError
from tests.conftest import git, init_repo, write_tree


def test_plain_directory_walk_skips_internal_directories(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.yml": "a: 1\n", "sub/b.json": "{}", ".cd-checks/cache/x.json": "{}"})
    assert files.select(tmp_path).paths == ("a.yml", "sub/b.json")


def test_git_repository_lists_tracked_and_new_but_not_ignored_files(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.yml": "a: 1\n", ".gitignore": "build/\n", "build/out.yml": "x: 1\n"})
    init_repo(tmp_path)
    write_tree(tmp_path, {"new.yml": "n: 1\n"})
    assert files.select(tmp_path).paths == (".gitignore", "a.yml", "new.yml")


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.yml": "", "vendor/x.yml": "", "deep/er/b.yml": "", "c.json": ""})
    chosen = files.select(tmp_path, include=["**/*.yml"], exclude=["vendor/**"]).paths
    assert chosen == ("a.yml", "deep/er/b.yml")


def test_paths_limit_the_selection(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a/x.yml": "", "b/y.yml": ""})
    assert files.select(tmp_path, paths=["b"]).paths == ("b/y.yml",)
    with pytest.raises(InputError, match="no such file"):
        files.select(tmp_path, paths=["nope"])


def test_symlink_outside_the_repository_is_reported_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.yml"
    outside.write_text("password: hunter2\n")
    root = write_tree(tmp_path / "repo", {"a.yml": "a: 1\n"})
    os.symlink(outside, root / "link.yml")
    selection = files.select(root)
    assert selection.paths == ("a.yml",)
    assert selection.escaping_links == ("link.yml",)


def test_changed_since_follows_renames_and_skips_deletions(tmp_path: Path) -> None:
    write_tree(tmp_path, {"keep.yml": "k: 1\n", "old.yml": "o: 1\n" * 20, "gone.yml": "g: 1\n"})
    init_repo(tmp_path)
    git(tmp_path, "checkout", "-q", "-b", "feature")
    git(tmp_path, "mv", "old.yml", "renamed.yml")
    git(tmp_path, "rm", "-q", "gone.yml")
    git(tmp_path, "commit", "-q", "-m", "rename and delete")
    write_tree(tmp_path, {"untracked.yml": "u: 1\n"})
    assert files.select(tmp_path, changed_since="main").paths == ("renamed.yml", "untracked.yml")


def test_changed_since_uses_the_merge_base(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.yml": "a: 1\n"})
    init_repo(tmp_path)
    git(tmp_path, "checkout", "-q", "-b", "feature")
    write_tree(tmp_path, {"mine.yml": "m: 1\n"})
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "mine")
    git(tmp_path, "checkout", "-q", "main")
    write_tree(tmp_path, {"theirs.yml": "t: 1\n"})
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "theirs")
    git(tmp_path, "checkout", "-q", "feature")
    # main moved on since feature branched: its new file is not the PR's change.
    assert files.select(tmp_path, changed_since="main").paths == ("mine.yml",)


def test_changed_since_outside_git_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="needs a git repository"):
        files.select(tmp_path, changed_since="main")


def test_changed_since_unknown_ref_is_a_user_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.yml": "a: 1\n"})
    init_repo(tmp_path)
    with pytest.raises(InputError, match="no-such-branch: no such revision in this clone"):
        files.select(tmp_path, changed_since="no-such-branch")
