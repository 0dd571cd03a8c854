"""`bench/precision DIR` runs every builtin set over a directory and prints what each rule found."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict

from cd_checks.builtin_policies import BUILTIN_SETS, rule_ids
from tests.conftest import REPO
from tests.policies.precision import marked

SCRIPT = REPO / "bench" / "precision"
CORPUS = REPO / "tests" / "policies" / "corpus"
RULE_LINE = re.compile(r"^  ([A-Z]+-\d{3}) +(\S+) +(\d+)$")
SITE_LINE = re.compile(r"^      (\S+):(\d+)  ")
SET_LINE = re.compile(r"^  ([a-z]+) +(\d+)$")


def test_precision_script_reports_the_corpus_marks_rule_by_rule() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(CORPUS), "--examples", "100"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts: dict[str, int] = {}
    sites: dict[str, set[tuple[str, int]]] = defaultdict(set)
    read: dict[str, int] = {}
    rule = ""
    for line in done.stdout.splitlines():
        if found := RULE_LINE.match(line):
            rule = found.group(1)
            counts[rule] = int(found.group(3))
        elif found := SITE_LINE.match(line):
            sites[rule].add((found.group(1), int(found.group(2))))
        elif found := SET_LINE.match(line):
            read[found.group(1)] = int(found.group(2))
    assert set(read) == set(BUILTIN_SETS)
    assert read["nginx"] > 0 and read["monitoring"] > 0 and read["ansible"] > 0
    assert read["patches"] == 0  # the corpus has no patch manifests
    assert "policy set 'patches' is on but matches no file" in done.stderr
    assert set(counts) == set(rule_ids())  # every rule, found or not
    # The monitoring and Ansible corpora mark each finding their sets must report:
    # the script lists exactly those, each at its file:line.
    expected: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for path, line, marked_rule in marked(CORPUS):
        expected[marked_rule].add((path, line))
    for rule_id, owner in rule_ids().items():
        if owner in ("monitoring", "ansible"):
            assert sites[rule_id] == expected[rule_id], rule_id
            assert counts[rule_id] == len(expected[rule_id]), rule_id
