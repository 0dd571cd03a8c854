"""The `tap` format: conftest's `--output tap` (Test Anything Protocol).

For each file and namespace with results (`report.conftest_results`): a plan
line `1..N`, then `not ok` for each failure, `# warnings` and `not ok` for each
warning, `# exceptions` and `ok` for each applied exception, `# successes` and
`ok ... SUCCESS` for each success, numbered on; each line reads
`not ok 1 - FILE - NAMESPACE - MESSAGE` (standard input: `not ok 1 - - NAMESPACE - ...`).
A file with no results prints nothing (conftest stops at the first such file;
this goes on to the next). Control characters in messages are escaped.
"""

from __future__ import annotations

from collections.abc import Iterator

from cd_checks.findings import Report
from cd_checks.report.conftest_results import STDIN, CheckResult, check_results
from cd_checks.report.escaping import defuse_text, escape_controls, quote_path


def render(report: Report, *, color: bool = False) -> str:
    return defuse_text("".join(line + "\n" for r in check_results(report) for line in _lines(r)))


def _lines(result: CheckResult) -> Iterator[str]:
    if not result.total:
        return
    where = "-" if result.filename == STDIN else f"- {quote_path(result.filename)}"
    prefix = f"{where} - {escape_controls(result.namespace, keep='')} -"
    yield f"1..{result.total}"
    sections = [
        ("", "not ok", [f.message for f in result.failures]),
        ("# warnings", "not ok", [f.message for f in result.warnings]),
        ("# exceptions", "ok", [f.message for f in result.exceptions]),
        ("# successes", "ok", ["SUCCESS"] * result.successes),
    ]
    counter = 1
    for heading, status, messages in sections:
        if heading and messages:
            yield heading
        for message in messages:
            yield f"{status} {counter} {prefix} {escape_controls(message, keep='')}"
            counter += 1
