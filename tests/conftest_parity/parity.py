"""Running `cd-checks` on a translated conftest example, as a conftest user would.

Each fixture under `fixtures/` is one of conftest's `examples/` directories (or an
`acceptance.bats` case) written again in our own words, with the same structure and the
same outcome. A test copies it to a scratch directory, changes into it and runs the CLI
there with the arguments the conftest case uses, so relative paths (`-p policy`,
`deployment.yaml`) mean what they mean to conftest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cd_checks.cli import main
from tests.conftest import Run

FIXTURES = Path(__file__).parent / "fixtures"


def example(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of fixtures/NAME, made the working directory."""
    root = tmp_path / name.replace("/", "-")
    shutil.copytree(FIXTURES / name, root)
    monkeypatch.chdir(root)
    return root


def cd_checks(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """`cd-checks ARGS` in-process, in the current directory."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def process(
    root: Path, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
) -> Run:
    """`cd-checks ARGS` as a real process in ROOT (for stdin and colour)."""
    done = subprocess.run(
        [sys.executable, "-m", "cd_checks", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=300,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def policy_findings(run: Run) -> list[dict[str, Any]]:
    """The policy findings of a `--format json` run."""
    report = json.loads(run.out)
    return [f for f in report["findings"] if f["check"] == "policy"]


def severities(run: Run) -> Counter[str]:
    """How many policy findings of each severity: conftest's failures and warnings."""
    return Counter(str(f["severity"]) for f in policy_findings(run))


def messages(run: Run) -> list[str]:
    return sorted(str(f["message"]) for f in policy_findings(run))


def conftest_counts(run: Run) -> dict[str, int]:
    """conftest's summary counts from a `--format conftest-json` run."""
    results = json.loads(run.out)
    counts = {"successes": 0, "failures": 0, "warnings": 0, "exceptions": 0}
    for result in results:
        counts["successes"] += int(result.get("successes", 0))
        for kind in ("failures", "warnings", "exceptions"):
            counts[kind] += len(result.get(kind) or [])
    counts["tests"] = sum(counts.values())
    return counts
