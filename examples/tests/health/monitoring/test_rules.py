"""Health tests of the `monitoring` change type, run by `cd-checks rollout` after each wave.

Each test runs once per Prometheus server of the wave with testinfra's ansible
backend (`testinfra_backend: ansible`), which reads the host's
`prometheus_rules_dir` (and `promtool_cmd`) from the inventory. The rule files
of the deployed revision (this file runs from a worktree of it) must be in that
directory byte for byte, with no others, and `promtool check rules` must
accept them there.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[3] / "prometheus" / "rules"


@pytest.fixture(scope="module")
def rules_dir(host):
    return str(host.ansible.get_variables()["prometheus_rules_dir"]).rstrip("/")


@pytest.fixture(scope="module")
def wanted():
    """Rule file name -> sha256 of the revision's content."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(RULES.glob("*.yml"))}


def test_rule_files_are_deployed(host, rules_dir, wanted):
    for name, digest in wanted.items():
        deployed = host.file(f"{rules_dir}/{name}")
        assert deployed.exists, f"{rules_dir}/{name} is missing"
        assert deployed.sha256sum == digest, f"{rules_dir}/{name} is not the revision's"


def test_no_other_rule_files(host, rules_dir, wanted):
    present = set(host.file(rules_dir).listdir())
    assert {n for n in present if n.endswith(".yml")} == set(wanted)


def test_promtool_accepts_the_deployed_rules(host, rules_dir, wanted):
    promtool = str(host.ansible.get_variables().get("promtool_cmd", "promtool"))
    paths = [f"{rules_dir}/{name}" for name in sorted(wanted)]
    check = host.run(" ".join(["%s", "check", "rules", *["%s"] * len(paths)]), promtool, *paths)
    assert check.rc == 0, check.stdout + check.stderr
