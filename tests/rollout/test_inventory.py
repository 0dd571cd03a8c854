"""Ansible inventories, YAML and INI, as hosts and groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from cd_checks.errors import ConfigError, InputError
from cd_checks.rollout import inventory

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


def load(tmp_path: Path, name: str, text: str) -> inventory.Inventory:
    path = tmp_path / name
    path.write_text(text)
    return inventory.load(path)


@pytest.mark.parametrize(("name", "text"), [("hosts.yml", YAML), ("hosts", INI)])
def test_groups_hosts_and_vars(tmp_path: Path, name: str, text: str) -> None:
    inv = load(tmp_path, name, text)
    assert inv.group("production") == ("web01.eu", "web02.eu", "web03.eu", "web-us")
    assert inv.group("staging") == ("stage-1",)
    assert inv.host("stage-1").address == "10.0.0.1"
    assert inv.host("web02.eu").address == "web02.eu"
    assert inv.host("web02.eu").vars["region"] == "eu"
    assert str(inv.host("web-us").vars["nginx_port"]) == "8080"
    assert "stage-1" in inv.group("all")


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


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        inventory.load(tmp_path / "missing.yml")
    with pytest.raises(InputError, match="invalid YAML"):
        load(tmp_path, "bad.yml", "all: [")
    with pytest.raises(InputError, match="no hosts"):
        load(tmp_path, "empty.yml", "all: {}\n")
    with pytest.raises(InputError, match=r"bad.ini:2: expected key=value"):
        load(tmp_path, "bad.ini", "[g]\nhost oops\n")
