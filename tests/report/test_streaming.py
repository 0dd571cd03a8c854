"""Text and JSON are written as they are rendered, and stay exactly what they were.

The JSON format writes its findings with the C encoder a batch at a time; the
document must still be, byte for byte, `json.dumps(..., indent=2)` of the report
(scripts diff these), whatever the messages hold. The text format yields a
file's findings at a time, each piece whole lines.
"""

from __future__ import annotations

import json

from cd_checks.findings import Finding, Report
from cd_checks.report import FORMATS, STREAMS, text
from cd_checks.report import json as json_format
from cd_checks.report.escaping import defuse_json

AWKWARD = [
    "plain",
    'a "quote" and \\',
    "},\n      {",
    "line\nbreak",
    "tab\there",
    "é ☃ \u200b",
    "##[x",
]


def report(count: int) -> Report:
    findings = [
        Finding(
            f"dir/f{i % 7}.yml" if i % 5 else f"we ird/{AWKWARD[i % len(AWKWARD)]}.yml",
            None if i % 3 == 0 else i,
            None if i % 4 == 0 else i % 80 + 1,
            "syntax" if i % 2 else "policy",
            f"rule-{i % 11}",
            "error" if i % 3 else "warning",
            AWKWARD[i % len(AWKWARD)] * (1 + i % 2),
        )
        for i in range(count)
    ]
    return Report.build(findings, 42)


def indented(report: Report) -> str:
    document = {
        "version": json_format.VERSION,
        "summary": {"files": report.files, "errors": report.errors, "warnings": report.warnings},
        "findings": [f.to_dict() for f in report.findings],
    }
    return defuse_json(json.dumps(document, indent=2, ensure_ascii=False)) + "\n"


def test_json_is_exactly_the_indented_dump_across_batches() -> None:
    for count in (0, 1, 2, json_format.BATCH, json_format.BATCH + 1, 2 * json_format.BATCH + 7):
        rendered = json_format.render(report(count))
        assert rendered == indented(report(count)), count
        assert len(json.loads(rendered)["findings"]) == count


def test_streamed_pieces_join_to_the_rendered_report() -> None:
    for name, chunks in STREAMS.items():
        for count in (0, 3, 1200):
            for color in (False, True):
                pieces = list(chunks(report(count), color=color))
                assert "".join(pieces) == FORMATS[name](report(count), color=color), name
    pieces = list(text.chunks(report(1200)))
    assert len(pieces) == len(report(1200).by_path()) + 1  # a file at a time, then the summary
    assert all(piece.endswith("\n") for piece in pieces)
