"""Health tests of the `patches` change type, run by `cd-checks rollout` after each wave.

Each test runs once per host of the wave with testinfra's ansible backend
(`testinfra_backend: ansible`), which reads the host's groups from the
inventory. A host passes when every package of every manifest in patches/
whose target group it is in (`all`: every host) is installed at exactly the
pinned version. The manifests are those of the deployed revision: this file
is run from a worktree of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

PATCHES = Path(__file__).resolve().parents[3] / "patches"


def manifests() -> list[dict]:
    return [yaml.safe_load(p.read_text("utf-8")) for p in sorted(PATCHES.glob("*.yml"))]


@pytest.fixture(scope="module")
def pins(host):
    """(manifest, package, version) for every pin that applies to this host."""
    groups = {"all", *host.ansible.get_variables().get("group_names", ())}
    return [
        (manifest["name"], package["name"], str(package["version"]))
        for manifest in manifests()
        if manifest["target"]["group"] in groups
        for package in manifest["packages"]
    ]


def test_pinned_versions_are_installed(host, pins):
    wrong = []
    for manifest, name, version in pins:
        package = host.package(name)
        if not package.is_installed:
            wrong.append(f"{name} (manifest {manifest}) is not installed")
        elif package.version != version:
            wrong.append(f"{name} is {package.version}, manifest {manifest} pins {version}")
    assert not wrong, "; ".join(wrong)


def test_no_reboot_left_pending(host, pins):
    # The playbook reboots when a manifest allows it; a pending reboot after the
    # wave means the new libraries are not what the running services use.
    if pins:
        assert not host.file("/var/run/reboot-required").exists
