"""The output formats of `cd-checks validate`: one module per format, one registry.

Each format module exports `render(report, *, color=False) -> str`; the CLI picks
one from `FORMATS` by name and writes the string where the user asked. Formats only
turn a `Report` into text: they never print, read the environment or touch files.
`conftest-json`, `tap` and `table` are conftest's shapes (`report.conftest_results`
groups a report the way conftest does). `github` also exports `step_summary(report)`
for $GITHUB_STEP_SUMMARY. Formats whose text can be written as it is made (text: a
file at a time; json: a few hundred findings at a time) also export `chunks(report,
*, color=False)`, listed in `STREAMS`; `render` is then the chunks joined.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from cd_checks.findings import Report
from cd_checks.report import conftest_json, github, gitlab, junit, sarif, table, tap, text
from cd_checks.report import json as json_format


class Renderer(Protocol):
    """Turns a report into the text of one output format."""

    def __call__(self, report: Report, *, color: bool = False) -> str: ...


class Streamer(Protocol):
    """Turns a report into the text of one output format, in pieces to write in turn."""

    def __call__(self, report: Report, *, color: bool = False) -> Iterator[str]: ...


FORMATS: dict[str, Renderer] = {
    "text": text.render,
    "json": json_format.render,
    "junit": junit.render,
    "sarif": sarif.render,
    "github": github.render,
    "gitlab": gitlab.render,
    "conftest-json": conftest_json.render,
    "tap": tap.render,
    "table": table.render,
}

STREAMS: dict[str, Streamer] = {
    "text": text.chunks,
    "json": json_format.chunks,
}

__all__ = ["FORMATS", "STREAMS", "Renderer", "Streamer"]
