"""Worktrees of the revision being deployed, on a real git repository."""

from __future__ import annotations

import os
from pathlib import Path

from cd_checks.rollout.workspace import GitWorkspace
from tests.conftest import git, init_repo, write_tree


def test_checkout_gives_the_revision_and_keeps_the_subdirectory(tmp_path: Path) -> None:
    write_tree(tmp_path, {"README.md": "top\n", "ops/deploy/site.yml": "- hosts: all\n"})
    init_repo(tmp_path)
    first = git(tmp_path, "rev-parse", "HEAD").strip()
    (tmp_path / "ops/deploy/site.yml").write_text("- hosts: changed\n")
    workspace = GitWorkspace(tmp_path / "ops", dict(os.environ))
    assert workspace.resolve("HEAD") == first
    with workspace.checkout(first) as tree:
        assert (tree / "deploy" / "site.yml").read_text() == "- hosts: all\n"
        assert tree.name == "ops"
    assert not tree.exists()
