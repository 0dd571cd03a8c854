"""Health tests of the `patches` change type, run by `cd-checks rollout` after each wave.

Each test runs once per host of the wave with testinfra's ansible backend
(`testinfra_backend: ansible`), which reads the host's groups from the
inventory. A host passes when every package of every manifest in patches/
whose target group it is in (`all`: every host) is installed at exactly the
pinned version. The manifests are those of the deployed revision: this file
is run from a worktree of it.

On a `cd-checks lab` host (host var `lab_packages_file`) the playbook records
the versions in that file instead of installing them, since every lab host is
the machine the lab runs on; the tests read that file there.
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def lab_record(host):
    """The lab host's record of installed versions ({} before the first patch), or None
    for a real host."""
    path = host.ansible.get_variables().get("lab_packages_file")
    if path is None:
        return None
    record = host.file(str(path))
    return json.loads(record.content_string) if record.exists else {}


def installed_version(host, lab_record, name):
    if lab_record is not None:
        return lab_record.get(name)
    package = host.package(name)
    return package.version if package.is_installed else None


def test_pinned_versions_are_installed(host, pins, lab_record):
    wrong = []
    for manifest, name, version in pins:
        found = installed_version(host, lab_record, name)
        if found is None:
            wrong.append(f"{name} (manifest {manifest}) is not installed")
        elif found != version:
            wrong.append(f"{name} is {found}, manifest {manifest} pins {version}")
    assert not wrong, "; ".join(wrong)


def test_no_reboot_left_pending(host, pins, lab_record):
    # The playbook reboots when a manifest allows it; a pending reboot after the
    # wave means the new libraries are not what the running services use. (A lab
    # host never reboots: its /var/run is the lab machine's.)
    if pins and lab_record is None:
        assert not host.file("/var/run/reboot-required").exists
