"""Running a builtin set over a corpus the way a user does, and reading what it marks.

A corpus directory holds realistic files; each finding the set must report is
marked on its line with `# expect: <RULE-ID>` (several: `# expect: A-001, B-002`).
`validate` runs on a copy of it with only that set on, at its default globs.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cd_checks.cli import main

EXPECT = re.compile(r"#\s*expect:\s*([A-Z]+-\d{3}(?:\s*,\s*[A-Z]+-\d{3})*)")

Site = tuple[str, int, str]  # path, line, rule id


@dataclass(frozen=True)
class Outcome:
    code: int
    findings: tuple[dict[str, object], ...]

    def policy(self) -> set[Site]:
        return {
            (str(f["path"]), int(str(f["line"])), str(f["rule"]))
            for f in self.findings
            if f["check"] == "policy"
        }

    def severity_of(self, rule: str) -> set[object]:
        return {f["severity"] for f in self.findings if f["rule"] == rule}

    def in_file(self, path: str) -> list[dict[str, object]]:
        return [f for f in self.findings if f["path"] == path]


def copy_corpus(corpus: Path, root: Path, config: str) -> Path:
    shutil.copytree(corpus, root)
    (root / "README.md").unlink()
    (root / "cd-checks.yml").write_text(config, "utf-8")
    return root


def validate(root: Path) -> Outcome:
    """`cd-checks validate` in-process, its JSON report written to a file."""
    report = root.parent / f"{root.name}.report.json"
    code = main(["-C", str(root), "validate", "--no-cache", "--format", "json", "-o", str(report)])
    assert code in (0, 1), code
    return Outcome(code, tuple(json.loads(report.read_text("utf-8"))["findings"]))


def marked(root: Path) -> set[Site]:
    """Every `# expect:` marker under `root`, as (path, line, rule)."""
    sites: set[Site] = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            lines = path.read_text("utf-8").splitlines()
        except UnicodeDecodeError:
            continue
        relative = path.relative_to(root).as_posix()
        for number, text in enumerate(lines, start=1):
            found = EXPECT.search(text)
            if found:
                sites |= {(relative, number, r.strip()) for r in found.group(1).split(",")}
    return sites
