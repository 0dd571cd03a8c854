"""What a user gets: the built wheel, installed with only its `rollout` extra into a fresh
virtual environment resolved from the declared ranges (today's releases, or the
constraints file when CD_CHECKS_CONSTRAINTS names one), runs a staged rollout of
`examples/` on a 3-host lab through the real testinfra gate.

Nothing from the test environment leaks in: the rollout runs the fresh venv's
`cd-checks` by its path, unactivated (as pipx or `.venv/bin/cd-checks` users do), with
only the system's directories on PATH, so `ansible-playbook` and pytest must be the
ones the extra installed beside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cd_checks.lab import Lab
from tests.conftest import EXAMPLES, REPO, git, init_repo
from tests.lab_fixture import lab_fleet

pytestmark = pytest.mark.lab

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _base_python() -> str:
    """The machine's own python3, as a user on stock Debian/Ubuntu has it."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else getattr(sys, "_base_executable", sys.executable)


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]  # noqa: S603
    assert done.returncode == 0, f"{argv[:4]} exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout and its `rollout` extra."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    # Build from a copy so the checkout's build/ and egg-info are neither used nor touched.
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", ".cd-checks", "build", "*.egg-info"),
    )
    dist = work / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(source)]
    )
    (wheel,) = dist.glob("cd_checks-*.whl")
    env_dir = work / "venv"
    _run([_base_python(), "-m", "venv", str(env_dir)])
    pip = [str(env_dir / "bin/python"), "-m", "pip", "install", "--quiet", "--upgrade"]
    constraints = os.environ.get("CD_CHECKS_CONSTRAINTS")
    if constraints:
        pip += ["--constraint", constraints]
    _run([*pip, "--disable-pip-version-check", f"{wheel}[rollout]"])
    return env_dir


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from lab_fleet(tmp_path_factory, hosts=3, staging=1, monitoring=True)


def _example_repo(root: Path) -> Path:
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".cd-checks", "bad-change", "ci"))
    config = root / "cd-checks.yml"
    # The example's own gate of its nginx type with a short bake, measured every second:
    # five samples a side for its canary-versus-baseline check.
    text = config.read_text()
    assert text.count("bake_seconds: 60") == 1 and "interval: 10s" in text
    text = text.replace("bake_seconds: 60", "bake_seconds: 5")
    config.write_text(text.replace("interval: 10s", "interval: 1s"))
    return init_repo(root)


def test_the_wheel_in_a_fresh_venv_rolls_out_the_example_through_testinfra(
    venv: Path, lab: Lab, tmp_path: Path
) -> None:
    root = _example_repo(tmp_path / "ops")
    revision = git(root, "rev-parse", "HEAD").strip()
    assert lab.monitoring is not None
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        # The lab's Prometheus, as `cd-checks lab up --monitoring` tells a user to export it.
        "CD_CHECKS_PROMETHEUS_URL": lab.monitoring.prometheus_url,
    }
    # The example's web site: its `nginx` change type (the example has three).
    argv = [str(venv / "bin/cd-checks"), "-C", str(root), "rollout", "run", "--all"]
    argv += ["--change", "nginx"]
    argv += ["--inventory", str(lab.inventory), "--format", "json"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, check=False)  # noqa: S603

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    checks = {
        check["check"].split("::")[-1]
        for wave in result["waves"]
        for host_checks in wave["gate"]["hosts"].values()
        for check in host_checks
    }
    assert "test_healthz_answers_200" in checks, checks  # the testinfra gate really ran
    verdicts = [wave["gate"]["metrics"]["verdict"] for wave in result["waves"]]
    assert verdicts == ["pass"] * len(result["waves"])  # and so did the metric gate (scipy)
    for host in lab.hosts:
        assert _served(f"http://{host.address}/") == (
            200,
            f"cd-checks example site on {host.name}, revision {revision}\n",
        )


def _served(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return response.status, response.read().decode()
