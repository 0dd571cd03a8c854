"""Each format's exact output for the fixed report, compared with its golden file.

To regenerate the golden files after an intended change of a format, run
    UPDATE_GOLDEN=1 pytest tests/report/test_report_golden.py
and review the diff of tests/report/golden/ before committing it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cd_checks.findings import Report
from cd_checks.report import FORMATS, github

GOLDEN = Path(__file__).parent / "golden"

RENDERINGS: dict[str, Callable[[Report], str]] = {
    "report.text": FORMATS["text"],
    "report.color.text": lambda report: FORMATS["text"](report, color=True),
    "report.json": FORMATS["json"],
    "report.junit.xml": FORMATS["junit"],
    "report.sarif": FORMATS["sarif"],
    "report.github": FORMATS["github"],
    "report.step-summary.md": github.step_summary,
    "report.gitlab.json": FORMATS["gitlab"],
    "report.conftest.json": FORMATS["conftest-json"],
    "report.tap": FORMATS["tap"],
    "report.table": FORMATS["table"],
}
# The same formats for a run with applied conftest exceptions (and standard input).
EXCEPTED: dict[str, Callable[[Report], str]] = {
    name.replace("report.", "excepted.", 1): render for name, render in RENDERINGS.items()
}


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_output_matches_golden(name: str, report: Report) -> None:
    output = RENDERINGS[name](report)
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(output, encoding="utf-8", newline="")
    assert output == golden.read_bytes().decode("utf-8")


@pytest.mark.parametrize("name", sorted(EXCEPTED))
def test_exceptions_output_matches_golden(name: str, excepted_report: Report) -> None:
    output = EXCEPTED[name](excepted_report)
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(output, encoding="utf-8", newline="")
    assert output == golden.read_bytes().decode("utf-8")


def test_every_format_has_a_golden_file() -> None:
    assert set(FORMATS.values()) <= set(RENDERINGS.values())
