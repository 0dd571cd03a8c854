"""Ansible inventories as a rollout reads them: YAML here, INI and directories as Ansible does."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from cd_checks.errors import ConfigError, InputError
from cd_checks.rollout import inventory
from tests.checks.inventory_samples import BROKEN, DOCS, KUBESPRAY
from tests.conftest import init_repo, write_tree
from tests.rollout.cli_boot import main
from tests.rollout.repo_files import YAMLLINT

YAML = """\
all:
  vars: {nginx_port: 80}
  children:
    staging:
      hosts:
        stage-1: {ansible_host: 10.0.0.1}
    production:
      children:
        eu:
          hosts:
            web[01:03].eu: null
          vars: {region: eu}
        us:
          hosts:
            web-us: {ansible_host: 10.1.0.1, nginx_port: 8080}
"""

INI = """\
# comment
bastion ansible_host=10.9.9.9

[staging]
stage-1 ansible_host=10.0.0.1

[eu]
web[01:03].eu

[us]
web-us ansible_host=10.1.0.1 nginx_port=8080

[production:children]
eu
us

[eu:vars]
region=eu
"""


@pytest.fixture(params=["ansible", "own"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test twice: with ansible-core, and as a validate-only install without it."""
    if request.param == "own":
        monkeypatch.setattr(inventory._AnsiblePlugins, "load", classmethod(lambda cls: None))
        monkeypatch.setattr(inventory, "_ansible_inventory_program", lambda env: None)
    return str(request.param)


def load(tmp_path: Path, name: str, text: str) -> inventory.Inventory:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return inventory.load(path, env=os.environ, cwd=tmp_path)


@pytest.mark.parametrize(("name", "text"), [("hosts.yml", YAML), ("hosts", INI)])
def test_groups_hosts_and_vars(tmp_path: Path, reader: str, name: str, text: str) -> None:
    inv = load(tmp_path, name, text)
    assert inv.group("production") == ("web01.eu", "web02.eu", "web03.eu", "web-us")
    assert inv.group("staging") == ("stage-1",)
    assert inv.host("stage-1").address == "10.0.0.1"
    assert inv.host("web02.eu").address == "web02.eu"
    assert inv.host("web02.eu").vars["region"] == "eu"
    assert str(inv.host("web-us").vars["nginx_port"]) == "8080"
    assert "stage-1" in inv.group("all")


def test_ansible_docs_inventory(tmp_path: Path, reader: str) -> None:
    inv = load(tmp_path, "inventory/hosts.ini", DOCS)
    assert len(inv.group("webservers")) == 23 and "web17.example.com" in inv.group("webservers")
    assert inv.group("southeast") == ("host1", "host2", "host3")  # children declared later
    assert inv.group("usa") == ("host1", "host2", "host3")
    assert inv.group("ungrouped") == ("mail.example.com",)
    bar = inv.host("bar.example.com")
    assert (bar.address, bar.vars["ansible_port"]) == ("192.0.2.50", 2222)
    assert inv.host("badwolf.example.com").vars["ansible_port"] == 5309  # host:port
    assert inv.host("two.example.com").vars["ansible_user"] == "admin"
    host2 = inv.host("host2").vars
    assert host2["motd"] == "Welcome to Atlanta, GA" and host2["http_port"] == 303
    assert host2["greeting"] == "hello from the south"  # [atlanta:vars], quotes removed
    assert inv.host("host3").vars["escape_pods"] == 2


def test_kubespray_sample(tmp_path: Path, reader: str) -> None:
    inv = load(tmp_path, "inventory/mycluster/inventory.ini", KUBESPRAY)
    assert inv.group("k8s_cluster") == ("node1", "node2", "node3", "node4")
    assert inv.group("calico_rr") == ()
    assert inv.host("node3").address == "95.54.0.14"
    assert "ip" not in inv.host("node3").vars  # `# ip=...` is a comment


def test_directory_with_group_and_host_vars_as_ansible_reads_it(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "inventory/prod/hosts": "[web]\nweb-1\nweb-2\n\n[db]\ndb-1 ansible_host=10.0.0.9\n",
            "inventory/prod/more.yml": "web:\n  hosts:\n    web-3:\n",
            "inventory/prod/group_vars/web.yml": "ansible_user: deploy\nansible_port: 2222\n",
            "inventory/prod/host_vars/web-2.yml": "ansible_host: 192.0.2.2\n",
            "inventory/prod/README.md": "not an inventory\n",
        },
    )
    inv = inventory.load(tmp_path / "inventory/prod", env=os.environ, cwd=tmp_path)
    assert set(inv.group("web")) == {"web-1", "web-2", "web-3"}
    web2 = inv.host("web-2")
    assert (web2.address, web2.vars["ansible_user"], web2.vars["ansible_port"]) == (
        "192.0.2.2",
        "deploy",
        2222,
    )
    assert inv.host("db-1").address == "10.0.0.9" and "ansible_user" not in inv.host("db-1").vars


def test_plain_yaml_lists(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.yaml", "staging: [a, b]\nproduction: [c]\n")
    assert inv.group("staging") == ("a", "b") and inv.group("all") == ("a", "b", "c")


def test_ranges() -> None:
    assert inventory.expand("db-[a:c]") == ["db-a", "db-b", "db-c"]
    assert inventory.expand("n[8:10]") == ["n8", "n9", "n10"]
    assert inventory.expand("n[0:4:2]") == ["n0", "n2", "n4"]


def test_unknown_group_names_the_known_ones(tmp_path: Path) -> None:
    inv = load(tmp_path, "hosts.yml", YAML)
    with pytest.raises(ConfigError, match="no group 'canary'.*production"):
        inv.group("canary")


@pytest.mark.parametrize(("what", "text", "line", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_ini_names_file_and_line(
    tmp_path: Path, reader: str, what: str, text: str, line: int, words: str
) -> None:
    with pytest.raises(inventory.InventoryError) as raised:
        load(tmp_path, "hosts.ini", text)
    assert raised.value.problem.line == line
    assert f"hosts.ini:{line}: " in str(raised.value) and words in str(raised.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        inventory.load(tmp_path / "missing.yml")
    with pytest.raises(InputError, match="no such file"):
        inventory.load(tmp_path / "missing.ini")
    with pytest.raises(InputError, match=r"bad.yml:3: invalid YAML"):
        load(tmp_path, "bad.yml", "all:\n  hosts: {a: 1\nweb: {}\n")
    with pytest.raises(InputError, match="no hosts"):
        load(tmp_path, "empty.yml", "all: {}\n")
    with pytest.raises(InputError, match="no hosts"):
        load(tmp_path, "empty.ini", "[web]\n# web-1\n")


def test_static_read_never_runs_a_script(tmp_path: Path) -> None:
    script = tmp_path / "inventory.py"
    script.write_text(f"#!{sys.executable}\nimport pathlib; pathlib.Path('ran').touch()\n")
    script.chmod(0o755)
    assert inventory.read_static(script) is None
    plugin = tmp_path / "aws_ec2.yml"
    plugin.write_text("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")
    assert inventory.read_static(plugin) is None
    assert not (tmp_path / "ran").exists()


def test_a_dynamic_inventory_runs_for_the_rollout_as_for_ansible(tmp_path: Path) -> None:
    script = tmp_path / "inventory.py"
    listing = {"web": {"hosts": ["w1", "w2"]}, "_meta": {"hostvars": {"w1": {"ansible_port": 22}}}}
    script.write_text(f"#!{sys.executable}\nprint({json.dumps(json.dumps(listing))})\n")
    script.chmod(0o755)
    inv = inventory.load(script, env=os.environ, cwd=tmp_path)
    assert inv.group("web") == ("w1", "w2") and inv.host("w1").vars["ansible_port"] == 22


# -- the CLI, on a git repository whose inventory is INI -------------------------------

DEPLOY = """\
import pathlib, sys
hosts, fleet = sys.argv[1].split(","), pathlib.Path(sys.argv[2])
for host in hosts:
    (fleet / host).write_text("deployed")
"""


def ini_repository(tmp_path: Path) -> tuple[Path, Path]:
    root, fleet = tmp_path / "repo", tmp_path / "fleet"
    fleet.mkdir()
    section = {
        "inventory": "inventory/hosts.ini",
        "apply": {"command": [sys.executable, "deploy.py", "{hosts}", str(fleet)]},
        "stages": [
            {"name": "staging", "hosts": "atlanta"},
            {"name": "production", "hosts": "webservers", "waves": ["10%", "100%"]},
        ],
    }
    write_tree(
        root,
        {
            "cd-checks.yml": yaml.safe_dump({"rollout": section}),
            "deploy.py": DEPLOY,
            "inventory/hosts.ini": DOCS,
            ".gitignore": ".cd-checks/\n",
            ".yamllint": YAMLLINT,
        },
    )
    init_repo(root)
    return root, fleet


def test_rollout_plan_and_run_on_an_ini_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, validate called this inventory broken INI and `rollout run` refused to deploy."""
    root, fleet = ini_repository(tmp_path)
    assert main(["-C", str(root), "rollout", "plan", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [len(w) for s in plan["stages"] for w in s["waves"]] == [2, 3, 20]
    assert "badwolf.example.com" in plan["stages"][1]["waves"][1]  # `host:port` is the host
    code = main(["-C", str(root), "rollout", "run", "--all"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert len(list(fleet.iterdir())) == 25
