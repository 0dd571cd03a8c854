"""examples/README.md, "A pull request that touches one alert rule file": the scenario it
describes, made in a scratch copy of examples/, prints exactly the output the README shows
(commit hashes aside), so the README cannot go stale as the example changes."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.conftest import EXAMPLES, Run, git, init_repo

README = EXAMPLES / "README.md"
RULES = "prometheus/rules/nginx.rules.yml"
HASHES = re.compile(r"^scope of [0-9a-f]{12}\.\.\.[0-9a-f]{12}:", re.M)


def readme_output() -> str:
    """The ```text block of the README's alert-rule section."""
    text = README.read_text("utf-8")
    section = text.split("## A pull request that touches one alert rule file", 1)[1]
    assert "cd-checks scope --changed-since main" in section
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block is not None, "the section shows no output"
    return block.group(1)


def alert_rule_pull_request(root: Path) -> Path:
    """The example on `main`, and a checked-out branch that changes `for: 10m` to
    `for: 5m` in the first alert of prometheus/rules/nginx.rules.yml."""
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".cd-checks"))
    init_repo(root)
    git(root, "checkout", "-q", "-b", "alert-sooner")
    rules = root / RULES
    text = rules.read_text("utf-8")
    assert "for: 10m" in text
    rules.write_text(text.replace("for: 10m", "for: 5m", 1), "utf-8")
    git(root, "commit", "-q", "-am", "NginxHighErrorRate fires after 5 minutes")
    return root


def test_the_readme_shows_what_scope_prints_for_one_alert_rule_file(
    cli: Callable[..., Run], tmp_path: Path
) -> None:
    root = alert_rule_pull_request(tmp_path / "ops")
    run = cli("-C", root, "scope", "--changed-since", "main")

    assert run.code == 0, run.err
    shown = readme_output()
    assert HASHES.search(shown) and HASHES.search(run.out)
    assert HASHES.sub("scope of REF...REV:", run.out) == HASHES.sub("scope of REF...REV:", shown)
    # What the README's prose says about it: only the monitoring type and its two hosts.
    assert "change type monitoring:" in run.out
    assert "change type nginx" not in run.out and "change type patches" not in run.out
    hosts = set(re.findall(r"[\w.-]+\.example\.internal", run.out))
    assert hosts == {"mon-01.example.internal", "mon-02.example.internal"}
    assert "warning" not in run.out
