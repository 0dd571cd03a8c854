"""Ansible host patterns: cd-checks' own evaluation against ansible-core's, pattern by pattern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cd_checks.errors import ConfigError
from cd_checks.rollout import inventory, patterns

INI = """\
bastion
[web]
web1.example.com
web2.example.com
web3
[db]
db1
db2
[eu]
web1.example.com
db1
[site_a]
web3
[site_b]
[web3]
db2
[staging:children]
eu
[prod:children]
web
db
"""

YAML = """\
all:
  hosts:
    bastion: null
  children:
    web:
      hosts:
        web-1: null
        web-2: null
        web-3: null
      children:
        site_a:
          hosts:
            web-1: null
        site_b:
          hosts:
            web-2: null
    db:
      hosts:
        db-1: null
    monitoring:
      hosts:
        prom-1: null
"""

PATTERNS = (
    "all",
    "*",
    "web",
    "db",
    "!db",
    "all:!db",
    "all,!db",
    "web:db",
    "web,db",
    " web , db ",
    "web:&eu",
    "&eu:web",
    "web:!eu:&prod",
    "web:db:!eu:&staging",
    "staging:prod",
    "web3",
    "!web3",
    "&web3",
    "ungrouped",
    "web*",
    "web?",
    "*.example.com",
    "web1.example.com",
    "web1.example.com:!eu",
    "~web[12]",
    "~db",
    "~.*3$",
    "site_*",
    "site_b",
    "nope",
    "all:!nope",
    "nope:web",
    "WEB",
    "db:cafe",
    "!db1:!db2",
    "web-1",
    "site_a:site_b",
    "monitoring:!site_a",
    "web-[!3]",
    "[!w]*",
)


Both = tuple[inventory.Inventory, Any]


@pytest.fixture(scope="module", params=[("hosts", INI), ("hosts.yml", YAML)], ids=["ini", "yaml"])
def both(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Both:
    """The inventory as cd-checks reads it, and ansible-core's InventoryManager of the file."""
    pytest.importorskip("ansible")
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    name, text = request.param
    path = tmp_path_factory.mktemp("patterns") / name
    path.write_text(text)
    read = inventory.read_static(path)
    assert read is not None
    return read, InventoryManager(loader=DataLoader(), sources=[str(path)])


@pytest.mark.parametrize("pattern", PATTERNS)
def test_same_hosts_as_ansible_core(both: Both, pattern: str) -> None:
    read, manager = both
    ours = patterns.select(read, pattern)
    theirs = [host.name for host in manager.get_hosts(pattern)]
    assert set(ours) == set(theirs)
    # In inventory order, each host once.
    assert list(ours) == [h for h in read.hosts if h in theirs]


def small() -> inventory.Inventory:
    hosts = {n: inventory.Host(n, n) for n in ("a1", "a2", "b1", "db1")}
    groups = {
        "all": ("a1", "a2", "b1", "db1"),
        "ungrouped": (),
        "a": ("a2", "a1"),
        "b": ("b1",),
        "db": ("db1",),
    }
    return inventory.Inventory(Path("hosts.yml"), hosts, groups)


def test_results_in_inventory_order_whatever_the_pattern_order() -> None:
    assert patterns.select(small(), "db:b:a") == ("a1", "a2", "b1", "db1")


def test_exclusions_apply_after_unions_written_later() -> None:
    assert patterns.select(small(), "!a:a:b") == ("b1",)


def test_unknown_terms_are_named() -> None:
    assert patterns.unknown_terms(small(), "all:!dbb:&a") == ("!dbb",)
    assert patterns.unknown_terms(small(), "all:!db") == ()
    assert patterns.select(small(), "all:!dbb") == ("a1", "a2", "b1", "db1")


def test_an_empty_group_is_a_known_term() -> None:
    # Ansible matches an empty group without a warning: `all:!db` where `db` is empty is sound.
    empty = inventory.Inventory(
        Path("hosts.yml"), small().hosts, {**small().groups, "db": (), "cache": ()}
    )
    assert patterns.unknown_terms(empty, "all:!db:!dbb") == ("!dbb",)
    assert patterns.unknown_terms(empty, "cache") == ()
    assert patterns.select(empty, "all:!db") == ("a1", "a2", "b1", "db1")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("web[0]", "subscripts"),
        ("web[1:3]", "subscripts"),
        ("~web(", "missing \\)"),
        ("all:!", "names nothing"),
    ],
)
def test_bad_patterns_are_one_config_error(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        patterns.select(small(), pattern)
