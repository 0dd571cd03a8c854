"""The example repository's `patches` change type on a real lab fleet, as the README runs it.

playbooks/patch.yml installs pinned package versions with apt and may reboot: on a
`cd-checks lab` host (every one of them is this very machine) it must do neither, and
record the pins in the host's `lab_packages_file` instead, where the example's health
tests (testinfra, ansible backend) read them. A first patch goes through every stage of
the type (staging, canary, production, monitoring); a second manifest version follows it.
The machine's own packages are untouched throughout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cd_checks.lab import Lab
from tests.conftest import REPO, git, init_repo
from tests.lab_fixture import lab_fleet
from tests.rollout.cli_boot import BOOT

pytestmark = pytest.mark.lab

MANIFEST = "patches/2026-11-openssl.yml"
PINNED = "3.0.15-1~deb12u1"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=3, staging=1)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/ with short bakes (the shipped type bakes 30 s per wave)."""
    root = tmp_path_factory.mktemp("example") / "ops"
    shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns(".cd-checks"))
    config = root / "cd-checks.yml"
    text = config.read_text()
    health = "testinfra: tests/health/patches/\n      testinfra_backend: ansible\n"
    slow = health + "      bake_seconds: 30\n      retries: 2\n"
    assert slow in text
    config.write_text(text.replace(slow, health + "      bake_seconds: 1\n      retries: 1\n"))
    assert yaml.safe_load(config.read_text())["changes"]["patches"]["health"]["bake_seconds"] == 1
    init_repo(root)
    return root


def run(lab: Lab, repo: Path, *args: str) -> tuple[int, str, str]:
    """`cd-checks -C REPO ARGS --inventory LAB` in a process of its own (ansible forks)."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", BOOT, "-C", str(repo), *args, "--inventory", str(lab.inventory)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def machine_packages() -> str:
    """What dpkg says is installed here (the lab hosts are this machine)."""
    return subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "openssl", "libssl3"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def recorded(lab: Lab) -> dict[str, dict[str, str]]:
    inventory = yaml.safe_load(lab.inventory.read_text())
    files = {
        name: Path(host_vars["lab_packages_file"])
        for group in inventory["all"]["children"].values()
        for name, host_vars in (group.get("hosts") or {}).items()
        if host_vars and "lab_packages_file" in host_vars
    }
    return {name: json.loads(path.read_text()) for name, path in files.items() if path.exists()}


def test_patches_go_through_every_stage_without_touching_the_machine(lab: Lab, repo: Path) -> None:
    before = machine_packages()
    args = ("rollout", "run", "--change", "patches", "--all")
    code, out, err = run(lab, repo, *args, "--format", "json")
    assert code == 0, out + err
    result = json.loads(out)
    assert result["stages"] == ["staging", "canary", "production", "monitoring"]
    hosts = sorted(h.name for h in lab.hosts)
    # Every lab host is in `web` (staging or production): each got the manifest's pins.
    pins = {"openssl": PINNED, "libssl3": PINNED}
    assert recorded(lab) == dict.fromkeys(hosts, pins)
    assert machine_packages() == before  # apt never ran, nothing was installed

    # The next manifest version follows the same path; the health tests check the new pin.
    manifest = repo / MANIFEST
    manifest.write_text(manifest.read_text().replace(PINNED, "3.0.16-1~deb12u1"))
    git(repo, "commit", "-qam", "openssl 3.0.16")
    code, out, err = run(lab, repo, *args)
    assert code == 0, out + err
    assert "rollout succeeded" in out
    newer = {"openssl": "3.0.16-1~deb12u1", "libssl3": "3.0.16-1~deb12u1"}
    assert recorded(lab) == dict.fromkeys(hosts, newer)
    assert machine_packages() == before
