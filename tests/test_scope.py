"""`cd-checks scope` on real git repositories: which change types, hosts and plan a PR deploys."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Run, git, init_repo, write_tree
from tests.test_changes import CONFIG, INVENTORY

Cli = Callable[..., Run]

BASE_FILES = {
    "cd-checks.yml": CONFIG,
    "inventory/hosts.yml": INVENTORY,
    "deploy/site.yml": "- hosts: all\n  tasks: []\n",
    "nginx/sites/shop.conf": "server { listen 80; }\n",
    "nginx/sites/blog.conf": "server { listen 80; }\n",
    "nginx/snippets/tls.conf": "ssl_protocols TLSv1.3;\n",
    "patches/2026-01.yml": "packages: [openssl]\n",
    "monitoring/rules/node.yml": "groups: []\n",
    "README.md": "# ops\n",
}


def pull_request(root: Path, changed: Mapping[str, str | None], config: str = CONFIG) -> Path:
    """A repository on `main` with BASE_FILES and `config`, and a branch `pr` (checked
    out) that changes `changed` (None deletes the file)."""
    write_tree(root, {**BASE_FILES, "cd-checks.yml": config})
    init_repo(root)
    git(root, "checkout", "-q", "-b", "pr")
    for name, text in changed.items():
        if text is None:
            git(root, "rm", "-q", "--", name)
        else:
            write_tree(root, {name: text})
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the change")
    return root


def scope_json(cli: Cli, root: Path, *args: str) -> dict[str, object]:
    run = cli("-C", root, "scope", "--changed-since", "main", "--format", "json", *args)
    assert run.code == 0, run.err
    found: dict[str, object] = json.loads(run.out)
    return found


def types_of(found: Mapping[str, object]) -> dict[str, dict[str, object]]:
    listed = found["change_types"]
    assert isinstance(listed, list)
    return {str(t["name"]): t for t in listed}


def test_one_nginx_site_scopes_to_that_site_s_group_only(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(tmp_path, {"nginx/sites/shop.conf": "server { listen 8080; }\n"})
    run = cli("-C", root, "scope", "--changed-since", "main")
    assert run.code == 0, run.err
    assert "change type nginx: 2 of 8 hosts (25%), scoped by site_shop" in run.out
    assert "  files: nginx/sites/shop.conf" in run.out
    assert "patches" not in run.out and "warning" not in run.out
    found = types_of(scope_json(cli, root))
    assert list(found) == ["nginx"]
    assert sorted(found["nginx"]["hosts"]) == ["web-1", "web-2"]  # type: ignore[arg-type]
    assert found["nginx"]["scoped_by"] == ["site_shop"]


def test_a_shared_nginx_file_reaches_every_web_host(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(
        tmp_path,
        {"nginx/sites/shop.conf": "server { listen 81; }\n", "nginx/snippets/tls.conf": "\n"},
    )
    found = types_of(scope_json(cli, root))
    assert sorted(found["nginx"]["hosts"]) == ["web-1", "web-2", "web-3", "web-4"]  # type: ignore[arg-type]
    assert found["nginx"]["scoped_by"] == []


def test_a_patch_scopes_to_all_but_db_with_the_plan_of_rollout_plan(
    tmp_path: Path, cli: Cli
) -> None:
    root = pull_request(tmp_path, {"patches/2026-02.yml": "packages: [curl]\n"})
    found = scope_json(cli, root)
    patches = types_of(found)["patches"]
    assert sorted(patches["hosts"]) == ["bastion", "mon-1", "web-1", "web-2", "web-3", "web-4"]  # type: ignore[arg-type]
    assert patches["hosts_pattern"] == "all:!db"
    assert patches["fleet"] == 8 and patches["share"] == 0.75
    assert patches["require_approvals"] == 1
    plan = patches["plan"]
    assert isinstance(plan, dict)
    stages = {s["name"]: s["waves"] for s in plan["stages"]}
    # canary: ceil(25% x 6 eligible) = 2; production: the other 4 in waves of 50%.
    assert [len(w) for w in stages["canary"]] == [2]
    assert [len(w) for w in stages["production"]] == [2, 2]
    assert plan["revision"] == git(root, "rev-parse", "HEAD").strip()
    text = cli("-C", root, "scope", "--changed-since", "main").out
    assert "change type patches: 6 of 8 hosts (75%)" in text and "needs 1 approval" in text


def test_a_readme_alone_deploys_nothing_and_is_reported(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(tmp_path, {"README.md": "# ops, documented\n"})
    run = cli("-C", root, "scope", "--changed-since", "main")
    assert run.code == 0
    assert "deploys nothing: no change type deploys these files" in run.out
    assert "warning: not deployed by any change type: README.md" in run.out
    found = scope_json(cli, root)
    assert found["deploys"] is False and found["change_types"] == []
    assert found["unmatched"] == ["README.md"]
    strict = cli("-C", root, "scope", "--changed-since", "main", "--strict")
    assert strict.code == 1


def test_a_file_in_no_change_type_is_reported_beside_what_deploys(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(
        tmp_path,
        {"monitoring/rules/node.yml": "groups: [{name: x, rules: []}]\n", "docs/run.md": "x\n"},
    )
    found = scope_json(cli, root)
    assert list(types_of(found)) == ["monitoring"]
    assert types_of(found)["monitoring"]["hosts"] == ["mon-1"]
    assert found["unmatched"] == ["docs/run.md"]
    assert found["warnings"] == ["not deployed by any change type: docs/run.md"]


def test_json_shape_version_1(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(tmp_path, {"nginx/sites/blog.conf": None, "patches/a.yml": "x: 1\n"})
    found = scope_json(cli, root)
    assert set(found) == {
        *("version", "base", "revision", "files", "deploys", "change_types"),
        *("unmatched", "overlaps", "warnings"),
    }
    assert found["version"] == 1
    assert found["base"] == git(root, "rev-parse", "main").strip()
    # A deleted site is deployed too (to the hosts that served it).
    assert found["files"] == ["nginx/sites/blog.conf", "patches/a.yml"]
    nginx = types_of(found)["nginx"]
    assert set(nginx) == {
        *("name", "files", "hosts_pattern", "scoped_by", "eligible", "hosts", "fleet"),
        *("share", "require_approvals", "freeze", "plan", "warnings"),
    }
    assert nginx["hosts"] == ["web-3"] and nginx["freeze"] is None


def test_markdown_for_the_pull_request(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(
        tmp_path, {"nginx/sites/shop.conf": "server { listen 81; }\n", "notes|x.md": "x\n"}
    )
    run = cli("-C", root, "scope", "--changed-since", "main", "--format", "markdown")
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0] == "### cd-checks scope"
    assert "#### nginx: 2 of 8 hosts (25%), scoped by site\\_shop" in lines
    assert "Files: `nginx/sites/shop.conf`" in lines
    assert "| stage | environment | wave | hosts |" in lines
    rows = [line for line in lines if line.startswith("| canary")]
    assert len(rows) == 1 and ("`web-1`" in rows[0] or "`web-2`" in rows[0])
    assert lines[-3:] == ["**Warnings**", "", "- not deployed by any change type: notes\\|x.md"]


def test_overlapping_types_both_deploy_in_config_order(tmp_path: Path, cli: Cli) -> None:
    config = CONFIG.replace('files: ["monitoring/**"]', 'files: ["monitoring/**", "nginx/**"]')
    root = pull_request(tmp_path, {"nginx/sites/shop.conf": "server { listen 81; }\n"}, config)
    found = scope_json(cli, root)
    assert list(types_of(found)) == ["nginx", "monitoring"]
    assert found["overlaps"] == [
        {"file": "nginx/sites/shop.conf", "change_types": ["nginx", "monitoring"]}
    ]
    text = cli("-C", root, "scope", "--changed-since", "main").out
    assert "note: nginx/sites/shop.conf is deployed by nginx, monitoring (in this order)" in text


def test_a_freeze_on_now_is_shown(tmp_path: Path, cli: Cli) -> None:
    config = CONFIG.replace(
        '{from: "2026-12-20", to: "2027-01-04", reason: year-end freeze}',
        '{from: "2000-01-01", reason: "migration, ask #ops"}',
    )
    root = pull_request(tmp_path, {"monitoring/rules/node.yml": "groups: []\n# x\n"}, config)
    run = cli("-C", root, "scope", "--changed-since", "main")
    assert "  FROZEN now: migration, ask #ops (from 2000-01-01 UTC)" in run.out
    assert "warning: monitoring: frozen now: migration, ask #ops" in run.out
    freeze = types_of(scope_json(cli, root))["monitoring"]["freeze"]
    assert freeze == {
        "active": True,
        "starts": None,
        "reason": "migration, ask #ops",
        "window": "migration, ask #ops (from 2000-01-01 UTC)",
    }


def test_a_single_rollout_section_scopes_every_file(tmp_path: Path, cli: Cli) -> None:
    single = CONFIG.split("changes:")[0].replace("defaults:", "rollout:")
    root = pull_request(tmp_path, {"README.md": "# changed\n"}, single)
    found = scope_json(cli, root)
    (only,) = found["change_types"]  # type: ignore[misc]
    assert only["name"] is None and only["files"] == ["README.md"]
    assert only["fleet"] == 8 and len(only["hosts"]) == 8
    assert found["unmatched"] == []
    assert "change type rollout: 8 of 8 hosts (100%)" in cli("-C", root, "scope").out


def test_the_default_ref_is_the_default_branch(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(tmp_path, {"patches/b.yml": "x: 1\n"})
    run = cli("-C", root, "scope", "--format", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["files"] == ["patches/b.yml"]


def test_the_revision_option(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(tmp_path, {"patches/b.yml": "x: 1\n"})
    write_tree(root, {"README.md": "again\n"})
    git(root, "commit", "-q", "-am", "docs")
    found = scope_json(cli, root, "--revision", "HEAD~1")
    assert found["files"] == ["patches/b.yml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--changed-since", "nope"), "--changed-since nope: no such revision in this clone"),
        (("--changed-since", "--all"), "a revision cannot start with '-'"),
        (("--revision", "-x"), "--revision -x: a revision cannot start with '-'"),
    ],
)
def test_bad_revisions_are_one_error_line(
    tmp_path: Path, cli: Cli, args: tuple[str, ...], message: str
) -> None:
    root = pull_request(tmp_path, {"patches/b.yml": "x: 1\n"})
    run = cli("-C", root, "scope", *args)
    assert run.code == 2
    assert run.err.startswith("cd-checks: error: ") and message in run.err
    assert "Traceback" not in run.err


def test_a_host_pattern_term_that_matches_nothing_is_a_warning(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(
        tmp_path, {"patches/b.yml": "x: 1\n"}, CONFIG.replace('"all:!db"', '"all:!dbb"')
    )
    run = cli("-C", root, "scope", "--changed-since", "main")
    assert (
        "warning: patches: host pattern 'all:!dbb': '!dbb' matches no group or host "
        "of the inventory" in run.out
    )
    assert "change type patches: 8 of 8 hosts" in run.out


def test_without_change_types_scope_deploys_nothing_quietly(tmp_path: Path, cli: Cli) -> None:
    root = pull_request(tmp_path, {"patches/b.yml": "x: 1\n"}, "files: {include: ['**']}\n")
    run = cli("-C", root, "scope", "--changed-since", "main", "--strict")
    assert run.code == 0
    assert "deploys nothing: cd-checks.yml has no `changes:` and no `rollout:` section" in run.out
    assert "warning" not in run.out
