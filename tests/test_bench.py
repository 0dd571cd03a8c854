"""bench/vs_yamllint.py runs on a repository and prints its figures (the figures are not tested:
they are measured on the machine that runs it, see the README's Speed section)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def test_the_benchmark_prints_cold_warm_and_pr_mode_against_yamllint() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "vs_yamllint.py"),
            "--kube-prometheus",
            "--scale",
            "0.02",
            "--runs",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("repository: generated, shaped like kube-prometheus")
    assert re.search(r"\(\d+ YAML files, [\d.]+ MB of YAML\)", lines[0])
    figures = r"\s+[\d.]+\s+[\d.]+\s+\d+\s+[\d.]+x\s+[\d.]+x$"
    for label in (
        r"yamllint alone \(same YAML files\)",
        r"cd-checks validate --no-cache \(cold\)",
        r"cd-checks validate \(cache warm\)",
        r"cd-checks validate --changed-since HEAD~1",
    ):
        assert any(re.match(label + r".*" + figures, line) for line in lines), (label, lines)
    assert re.search(r"yamllint alone.*\s1\.00x\s+1\.00x$", done.stdout, re.M)
