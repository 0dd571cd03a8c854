"""The `github` format's step summary cap and its paths from the GitHub workspace."""

from __future__ import annotations

from pathlib import Path

from cd_checks.findings import Finding, Report
from cd_checks.report import FORMATS, github

MIB = 2**20


def many(count: int, *, message: str = "trailing spaces") -> Report:
    findings = [
        Finding(f"dir/file{n % 97}.yml", n + 1, 1, "syntax", "trailing-spaces", "warning", message)
        for n in range(count)
    ]
    findings.append(Finding("z.yml", 1, 1, "policy", "NGINX-001", "error", "the one error"))
    return Report.build(findings, 97)


def test_summary_of_thousands_of_findings_shows_the_first_rows_then_a_count() -> None:
    summary = github.step_summary(many(9000))
    rows = [line for line in summary.splitlines() if line.startswith("| :")]
    assert len(rows) == github.SUMMARY_ROWS
    assert rows[0].startswith("| :x: error | `z.yml:1:1`")  # errors first, though last by path
    assert "1 error, 9000 warnings in 97 files" in summary
    assert "... and 8951 more findings:" in summary
    assert len(summary.encode()) < 50_000


def test_summary_stays_far_below_githubs_limit_with_huge_messages() -> None:
    summary = github.step_summary(many(5000, message="|\n" * 100_000))
    assert len(summary.encode()) < MIB / 4


def test_summary_under_the_cap_has_every_finding_and_no_count() -> None:
    summary = github.step_summary(many(github.SUMMARY_ROWS - 1))
    assert len([line for line in summary.splitlines() if line.startswith("| :")]) == 50
    assert "more finding" not in summary


def test_from_workspace_prefixes_paths_of_a_root_below_the_checkout(tmp_path: Path) -> None:
    root = tmp_path / "checkout" / "ops"
    root.mkdir(parents=True)
    report = Report.build([Finding("a.yml", 2, 3, "syntax", "yaml", "error", "bad")], 1)
    moved = github.from_workspace(report, root, str(tmp_path / "checkout"))
    assert FORMATS["github"](moved).startswith("::error file=ops/a.yml,line=2,col=3,")
    assert '"uri": "ops/a.yml"' in FORMATS["sarif"](moved)
    # At the checkout's root, outside it, or outside GitHub: paths stay as they are.
    for workspace in (str(root), str(tmp_path / "elsewhere"), None, ""):
        assert github.from_workspace(report, root, workspace) == report
