"""`validate` reads Ansible INI inventories as Ansible does, never as strict INI."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from cd_checks.checks import syntax
from cd_checks.rollout import inventory
from tests.checks.inventory_samples import BROKEN, DOCS, KUBESPRAY
from tests.conftest import Run

Cli = Callable[..., Run]
Repo = Callable[[Mapping[str, str | bytes]], Path]

# yamllint's defaults minus document-start, so the config files below need no `---`
YAMLLINT = "extends: default\nrules: {document-start: disable}\n"


@pytest.fixture(params=["ansible", "own"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test with ansible-core, and as a validate-only install without it."""
    if request.param == "own":
        monkeypatch.setattr(inventory._AnsiblePlugins, "load", classmethod(lambda cls: None))
    return str(request.param)


def findings(run: Run) -> list[tuple[object, ...]]:
    return [
        (f["path"], f["line"], f"{f['check']}/{f['rule']}") for f in json.loads(run.out)["findings"]
    ]


def validate(cli: Cli, root: Path) -> Run:
    return cli("-C", root, "validate", "--format", "json", "--no-cache")


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("inventory/hosts.ini", "inventory"),
        ("hosts.ini", "inventory"),
        ("hosts", "inventory"),
        ("inventory", "inventory"),
        ("inventory-staging.ini", "inventory"),
        ("deploy/inventory.ini", "inventory"),
        ("inventories/production/hosts", "inventory"),
        ("inventories/production/web.ini", "inventory"),
        ("inventory/prod.ini", "inventory"),
        ("roles/dns/files/hosts", None),  # an /etc/hosts, not an inventory
        ("inventory/group_vars/all.ini", "ini"),
        ("inventory/hosts.yml", "yaml"),
        ("config/app.ini", "ini"),
        ("ansible.cfg", "ini"),
        ("setup.cfg", "ini"),
        ("hosts.toml", "toml"),
    ],
)
def test_which_files_are_inventories(path: str, kind: str | None) -> None:
    assert syntax.kind_of(path) == kind


def test_named_inventories_come_from_the_config_and_ansible_cfg(tmp_path: Path) -> None:
    (tmp_path / "ansible").mkdir()
    (tmp_path / "ansible/ansible.cfg").write_text(
        "[defaults]\ninventory = ./environments/prod.hosts, /etc/ansible/hosts ; two sources\n"
    )
    named = syntax.named_inventories(
        tmp_path, "fleet/servers.list", ["ansible/ansible.cfg", "README.md"]
    )
    assert named == ("fleet/servers.list", "ansible/environments/prod.hosts")
    assert syntax.kind_of("fleet/servers.list", named) == "inventory"
    assert syntax.kind_of("ansible/environments/prod.hosts", named) == "inventory"
    in_directory = ("fleet",)
    assert syntax.kind_of("fleet/web.inv", in_directory) == "inventory"
    assert syntax.kind_of("fleet/README.md", in_directory) is None  # Ansible skips it
    assert syntax.kind_of("fleet/.hidden", in_directory) is None
    # not an inventory: variables, which Ansible reads as YAML without an extension too
    assert syntax.kind_of("fleet/group_vars/web", in_directory) == "yaml"
    assert syntax.kind_of("fleet/servers.yml", in_directory) == "yaml"


def test_docs_and_kubespray_inventories_validate_clean(cli: Cli, repo: Repo, reader: str) -> None:
    """Before, both were INI syntax errors (`no [section] header`, `cannot parse line`)."""
    root = repo(
        {
            "inventory/hosts.ini": DOCS,
            "inventory/mycluster/inventory.ini": KUBESPRAY,
            "inventories/staging/hosts": "[web]\nweb-1 ansible_host=10.0.0.1\n",
            ".yamllint": YAMLLINT,
        }
    )
    run = validate(cli, root)
    assert run.code == 0, run.out + run.err
    assert json.loads(run.out)["summary"]["files"] == 3
    assert run.err == ""  # ansible's own warnings are not printed


@pytest.mark.parametrize(("what", "text", "line", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_inventory_is_a_finding_at_its_line(
    cli: Cli, repo: Repo, reader: str, what: str, text: str, line: int, words: str
) -> None:
    root = repo({"inventory/hosts.ini": text})
    run = validate(cli, root)
    assert run.code == 1
    assert findings(run) == [("inventory/hosts.ini", line, "syntax/inventory")]
    assert words in json.loads(run.out)["findings"][0]["message"]


def test_text_output_shows_file_line_and_ansibles_message(cli: Cli, repo: Repo) -> None:
    root = repo({"hosts": "[webservers]\nfoo.example.com\n[dbservers\none.example.com\n"})
    run = cli("-C", root, "validate", "--no-cache")
    assert run.code == 1
    assert (
        "hosts:3:1  error    syntax/inventory  section header '[dbservers' has no closing ']'"
        in (run.out)
    )


def test_an_inventory_named_by_ansible_cfg_or_the_config_is_read_as_one(
    cli: Cli, repo: Repo
) -> None:
    ungrouped_first = "gateway.example.com\n[web]\nweb-1\n"  # strict INI: no section header
    root = repo(
        {
            "ansible.cfg": "[defaults]\ninventory = environments/prod\nforks = 20\n",
            "environments/prod": ungrouped_first,
            "fleet.conf.ini": ungrouped_first,
            "cd-checks.yml": (
                "rollout:\n  inventory: fleet.conf.ini\n  apply: {command: [deploy]}\n"
                "  stages:\n    - {name: web, hosts: web}\n"
            ),
            ".yamllint": YAMLLINT,
        }
    )
    run = validate(cli, root)
    assert run.code == 0, run.out
    (root / "fleet.conf.ini").write_text("[web\n")
    run = validate(cli, root)
    assert findings(run) == [("fleet.conf.ini", 1, "syntax/inventory")]


def test_plain_ini_files_are_still_strict_ini(cli: Cli, repo: Repo) -> None:
    # A bare name is a host in an inventory, and no key in INI (conftest's go-ini refuses it).
    root = repo({"config/app.ini": "[app]\nname\n"})
    assert findings(validate(cli, root)) == [("config/app.ini", 2, "syntax/syntax")]


def test_policies_see_groups_and_host_vars(cli: Cli, repo: Repo) -> None:
    policy = (
        "package main\n\n"
        "deny contains msg if {\n"
        "\tsome host in input.groups.dbservers\n"
        "\tnot input.hostvars[host].ansible_user\n"
        '\tmsg := sprintf("%s has no ansible_user", [host])\n'
        "}\n"
    )
    root = repo({"inventory/hosts.ini": DOCS, "policy/inventory.rego": policy})
    run = validate(cli, root)
    messages = sorted(f["message"] for f in json.loads(run.out)["findings"])
    assert messages == [
        "one.example.com has no ansible_user",
        "three.example.com has no ansible_user",
    ]


def test_inventories_can_be_disabled_like_any_kind(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "inventory/hosts.ini": "[web\n",
            "cd-checks.yml": "syntax: {disable: [inventory]}\n",
            ".yamllint": YAMLLINT,
        }
    )
    assert validate(cli, root).code == 0
