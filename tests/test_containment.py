"""Containment (issue 9 item 10): state, audit and schema paths stay inside the checkout.

A pull request chooses every file of the checkout, including `cd-checks.yml` and a
committed `.cd-checks` symlink, so nothing the checkout names may lead a write (or a
schema read) outside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cd_checks import state_dir
from cd_checks.errors import ConfigError, InputError
from tests.conftest import Run, init_repo, write_tree

Cli = Callable[..., Run]


@pytest.mark.parametrize(
    "path", ["../outside/audit.jsonl", "/tmp/elsewhere/audit.jsonl", "a/../../x"]
)
def test_a_path_leaving_the_repository_is_refused_naming_the_key(tmp_path: Path, path: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(ConfigError, match=r"^audit\.path: .* outside the repository"):
        state_dir.inside(root, path, "audit.path")


def test_a_committed_link_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "logs").symlink_to(outside)
    with pytest.raises(ConfigError, match="rollout.state_dir: logs/state resolves to .*outside"):
        state_dir.inside(root, "logs/state", "rollout.state_dir")


def test_a_path_inside_the_repository_is_kept_as_given(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "real").mkdir(parents=True)
    (root / "linked").symlink_to(root / "real")  # a link that stays inside is fine
    assert state_dir.inside(root, "ops/audit.jsonl", "audit.path") == root / "ops/audit.jsonl"
    assert state_dir.inside(root, "linked/x", "audit.path") == root / "linked/x"
    assert state_dir.inside(root, "a/../b", "audit.path") == root / "a/../b"


def test_a_link_loop_is_refused_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(ConfigError, match="^audit.path: loop/x"):
        state_dir.inside(tmp_path, "loop/x", "audit.path")


@pytest.mark.parametrize("target", ["outside", "repo/inside"])
def test_a_cd_checks_symlink_is_never_written_through(tmp_path: Path, target: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / target).mkdir(parents=True, exist_ok=True)
    (root / ".cd-checks").symlink_to(tmp_path / target)
    with pytest.raises(InputError, match=r"\.cd-checks is a symbolic link"):
        state_dir.make_dirs(root / ".cd-checks" / "cache" / "ab")
    assert list((tmp_path / target).iterdir()) == []


def test_a_symlink_below_cd_checks_is_never_written_through(tmp_path: Path) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    outside.mkdir()
    (root / ".cd-checks").mkdir(parents=True)
    (root / ".cd-checks" / "rollout").symlink_to(outside)
    with pytest.raises(InputError, match=r"rollout is a symbolic link"):
        state_dir.make_dirs(root / ".cd-checks" / "rollout" / "staging")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("path", ["../outside.jsonl", "/tmp/cd-checks-audit-outside.jsonl"])
def test_an_audit_path_outside_the_repository_is_one_error_line(
    cli: Cli, tmp_path: Path, path: str
) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"cd-checks.yml": f"audit:\n  path: {path}\n"}))
    run = cli("-C", root, "audit", "log")
    assert run.code == 2
    assert run.err.startswith("cd-checks: error: audit.path: ")
    assert "outside the repository" in run.err and run.err.count("\n") == 1
    assert not (tmp_path / "outside.jsonl").exists()


def test_the_default_audit_file_through_a_committed_link_is_refused(
    cli: Cli, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".cd-checks").symlink_to(outside)
    init_repo(root)
    run = cli("-C", root, "audit", "log")
    assert run.code == 2
    assert "audit.path: .cd-checks/audit.jsonl resolves to" in run.err
    assert list(outside.iterdir()) == []


def test_validate_in_a_checkout_with_a_cd_checks_link_writes_nothing_through_it(
    cli: Cli, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = write_tree(tmp_path / "repo", {"a.yml": "---\na: 1\n"})
    (root / ".cd-checks").symlink_to(outside)
    init_repo(root)
    run = cli("-C", root, "validate")
    assert ".cd-checks is a symbolic link" in run.err  # said, whether refused or skipped
    assert list(outside.iterdir()) == []


# -- schema $refs -----------------------------------------------------------------------

# A schema that, if it were read, would earn svc/a.yml a `type` finding.
OUTSIDE_SCHEMA = '{"type": "integer"}'


def schema_repo(tmp_path: Path, schema: str, **extra: str) -> Path:
    (tmp_path / "outside.json").write_text(OUTSIDE_SCHEMA)
    files = {
        "cd-checks.yml": "---\nschema:\n  - {files: 'svc/*.yml', schema: schemas/s.json}\n",
        "svc/a.yml": "---\nname: a\n",
        "schemas/s.json": schema,
        **extra,
    }
    return write_tree(tmp_path / "repo", files)


def schema_findings(cli: Cli, root: Path) -> list[dict[str, object]]:
    run = cli("-C", root, "validate", "--no-cache", "--format", "json")
    assert run.code in (0, 1), run.err
    found: list[dict[str, object]] = json.loads(run.out)["findings"]
    return found


@pytest.mark.parametrize(
    "ref",
    [
        "file:///etc/passwd",
        "../../outside.json",
        "/etc/passwd",
        "file://localhost/etc/passwd",
        "sub/../../../outside.json",
        "%2E%2E/%2E%2E/outside.json",
    ],
)
def test_a_ref_outside_the_repository_is_a_finding_on_the_schema_and_never_read(
    cli: Cli, tmp_path: Path, ref: str
) -> None:
    root = schema_repo(tmp_path, json.dumps({"properties": {"name": {"$ref": ref}}}))
    found = schema_findings(cli, root)
    assert [(f["path"], f["rule"]) for f in found] == [("schemas/s.json", "ref-outside-repository")]
    assert str(found[0]["message"]).startswith(f"$ref {ref!r} leads outside the repository")
    assert "root:" not in str(found[0]["message"])  # nothing of /etc/passwd shows


def test_a_ref_through_a_symlink_out_of_the_repository_is_refused(cli: Cli, tmp_path: Path) -> None:
    root = schema_repo(tmp_path, '{"properties": {"name": {"$ref": "common.json"}}}')
    (root / "schemas" / "common.json").symlink_to(tmp_path / "outside.json")
    found = schema_findings(cli, root)
    assert [(f["path"], f["rule"]) for f in found] == [
        ("schemas/common.json", "symlink-outside"),
        ("schemas/s.json", "ref-outside-repository"),
    ]


def test_a_schema_that_is_a_symlink_out_of_the_repository_is_a_finding_on_the_config(
    cli: Cli, tmp_path: Path
) -> None:
    root = schema_repo(tmp_path, "{}")
    (root / "schemas" / "s.json").unlink()
    (root / "schemas" / "s.json").symlink_to(tmp_path / "outside.json")
    found = schema_findings(cli, root)
    assert [(f["path"], f["rule"]) for f in found] == [
        ("cd-checks.yml", "outside-repository"),
        ("schemas/s.json", "symlink-outside"),
    ]


def test_refs_inside_the_repository_still_resolve(cli: Cli, tmp_path: Path) -> None:
    # ../ within the repository, a file: URI of a file inside it, a name with a space.
    inside = tmp_path / "repo" / "common" / "int schema.json"
    schema = {
        "properties": {
            "name": {"$ref": "../common/int%20schema.json"},
            "size": {"$ref": inside.as_uri()},
        }
    }
    root = schema_repo(tmp_path, json.dumps(schema), **{"common/int schema.json": OUTSIDE_SCHEMA})
    (root / "svc/a.yml").write_text("---\nname: a\nsize: b\n")
    found = schema_findings(cli, root)
    assert sorted((f["path"], f["line"], f["rule"]) for f in found) == [
        ("svc/a.yml", 2, "type"),
        ("svc/a.yml", 3, "type"),
    ]


# -- paths the config makes cd-checks read ------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ("policy:\n  paths: [policy, /etc]\n", "policy.paths[1]"),
        ("policy:\n  data: [../outside]\n", "policy.data[0]"),
        ("policy:\n  exceptions: ../outside/exceptions.yml\n", "policy.exceptions"),
        ("syntax:\n  yamllint: ../outside/.yamllint\n", "syntax.yamllint"),
        ("policy:\n  data: [linked]\n", "policy.data[0]"),
    ],
)
def test_a_config_path_outside_the_checkout_is_one_error_line_naming_the_key(
    cli: Cli, tmp_path: Path, config: str, key: str
) -> None:
    outside = write_tree(tmp_path / "outside", {"secret.json": '{"token": "s3cr3t"}'})
    files = {"cd-checks.yml": "---\n" + config, "policy/p.rego": "package main\n"}
    root = write_tree(tmp_path / "repo", files)
    (root / "linked").symlink_to(outside)
    init_repo(root)
    run = cli("-C", root, "validate")
    assert run.code == 2
    assert run.err.startswith(f"cd-checks: error: {root / 'cd-checks.yml'}: {key}: ")
    assert "outside the repository" in run.err and run.err.count("\n") == 1


def test_a_config_in_a_subdirectory_may_read_beside_it_in_the_checkout(
    cli: Cli, tmp_path: Path
) -> None:
    files = {
        "ops/cd-checks.yml": "---\npolicy:\n  paths: [../policy]\n",
        "ops/a.yml": "---\nport: 80\n",
        "policy/p.rego": ('package main\n\ndeny contains "port 80" if {\n\tinput.port == 80\n}\n'),
    }
    root = init_repo(write_tree(tmp_path / "repo", files))
    run = cli("-C", root / "ops", "validate", "--format", "json")
    assert run.code == 1, run.err
    assert [f["message"] for f in json.loads(run.out)["findings"]] == ["port 80"]


def test_a_path_with_a_newline_stays_on_the_error_line(cli: Cli, tmp_path: Path) -> None:
    config = '---\nsyntax:\n  yamllint: "../x\\n::add-mask::y"\n'
    root = init_repo(write_tree(tmp_path / "repo", {"cd-checks.yml": config}))
    run = cli("-C", root, "validate")
    assert run.code == 2
    assert run.err.count("\n") == 1 and "../x\\n::add-mask::y resolves to" in run.err
