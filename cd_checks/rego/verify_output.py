"""conftest verify's output formats for Rego unit-test results: `cd-checks policy test -o NAME`.

conftest reports each test as a check result of its own: the test's file, an
empty namespace, one success or a failure (or skip) whose message is
`data.<package>.<test>`. These renderers give that in conftest's `stdout`,
`json`, `tap`, `table` and `junit` shapes, so tools that read conftest verify's
output keep working. They only format: pure functions from results to text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from cd_checks.rego.model import TestResult

OUTPUTS = ("stdout", "json", "tap", "table", "junit")


def message(result: TestResult) -> str:
    """conftest verify's message for a test: its full name."""
    return f"data.{result.namespace}.{result.name}"


def _state(result: TestResult) -> str:
    if result.skipped:
        return "skipped"
    return "success" if result.passed else "failure"


def render(
    name: str, results: Sequence[TestResult], *, trace: bool = False, hide_message: bool = False
) -> str:
    """`results` in conftest's output `name` (one of OUTPUTS)."""
    renderers: dict[str, Callable[[Sequence[TestResult]], str]] = {
        "stdout": lambda r: render_trace(r) if trace else render_stdout(r),
        "json": render_json,
        "tap": render_tap,
        "table": render_table,
        "junit": lambda r: render_junit(r, hide_message=hide_message),
    }
    return renderers[name](results)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def render_stdout(results: Sequence[TestResult]) -> str:
    """conftest's standard output: a FAIL line per failed test, then the summary."""
    lines = [f"FAIL - {r.file} -  - {message(r)}" for r in results if _state(r) == "failure"]
    failures = len(lines)
    skipped = sum(1 for r in results if r.skipped)
    passed = len(results) - failures - skipped
    summary = (
        f"{_plural(len(results), 'test')}, {passed} passed, 0 warnings, "
        f"{_plural(failures, 'failure')}, 0 exceptions, {skipped} skipped"
    )
    return "\n".join([*lines, "", summary]) + "\n"


def render_trace(results: Sequence[TestResult]) -> str:
    """conftest's --trace shape: each query, then what is known of its evaluation.

    regorus keeps no evaluation trace: TRAC lines name the rules entered and the
    lines evaluated (coverage, in file order), then the test's outcome; PRNT lines
    are what print() wrote.
    """
    lines: list[str] = []
    for result in results:
        lines.append(f"file: {result.file} | query: {message(result)}")
        lines += [f"TRAC  {line}" for line in result.trace]
        outcome = _state(result) + (f": {result.message}" if result.message else "")
        lines.append(f"TRAC  {outcome}")
        lines += [f"PRNT  {output}" for output in result.outputs]
    return "\n".join(lines) + ("\n" if lines else "")


def _check_result(result: TestResult) -> dict[str, Any]:
    entry: dict[str, Any] = {"filename": result.file, "namespace": ""}
    entry["successes"] = 1 if _state(result) == "success" else 0
    if result.skipped:
        entry["skipped"] = [{"msg": message(result)}]
    elif not result.passed:
        entry["failures"] = [{"msg": message(result)}]
    return entry


def render_json(results: Sequence[TestResult]) -> str:
    """conftest's `-o json`: its check results, indented with tabs."""
    return json.dumps([_check_result(r) for r in results], indent="\t") + "\n"


def render_tap(results: Sequence[TestResult]) -> str:
    """conftest's `-o tap`: a plan of one test per result, as conftest prints it."""
    lines: list[str] = []
    for result in results:
        where = f"- {result.file} -  -"
        lines.append("1..1")
        state = _state(result)
        if state == "failure":
            lines.append(f"not ok 1 {where} {message(result)}")
        elif state == "skipped":
            lines += ["# skip", f"ok 1 {where} {message(result)}"]
        else:
            lines += ["# successes", f"ok 1 {where} SUCCESS"]
    return "\n".join(lines) + ("\n" if lines else "")


HEADER = ("RESULT", "FILE", "NAMESPACE", "MESSAGE")


def render_table(results: Sequence[TestResult]) -> str:
    """conftest's `-o table`: one row per test (nothing when there are none)."""
    rows = [
        (_state(r), r.file, "", "SUCCESS" if _state(r) == "success" else message(r))
        for r in results
    ]
    if not rows:
        return ""
    widths = [max([len(HEADER[i]), *(len(row[i]) for row in rows)]) for i in range(4)]

    def rule(left: str, middle: str, right: str) -> str:
        return left + middle.join("─" * (width + 2) for width in widths) + right

    def line(cells: Sequence[str], *, centre: bool = False) -> str:
        fitted = [
            (" " * ((w - len(c)) // 2) + c).ljust(w) if centre else c.ljust(w)
            for c, w in zip(cells, widths, strict=True)
        ]
        return "│ " + " │ ".join(fitted) + " │"

    lines = [rule("┌", "┬", "┐"), line(HEADER, centre=True), rule("├", "┼", "┤")]
    lines += [line(row) for row in rows]
    lines.append(rule("└", "┴", "┘"))
    return "\n".join(lines) + "\n"


def render_junit(results: Sequence[TestResult], *, hide_message: bool = False) -> str:
    """conftest's `-o junit`: one suite (`conftest.`, verify's empty namespace)."""
    failures = sum(1 for r in results if _state(r) == "failure")
    skipped = sum(1 for r in results if r.skipped)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<testsuites>",
        f'\t<testsuite tests="{len(results)}" failures="{failures}" skipped="{skipped}" '
        'time="0.000" name="conftest.">',
    ]
    for result in results:
        state = _state(result)
        shown = (
            result.file
            if hide_message or state == "success"
            else (f"{result.file} - {message(result)}")
        )
        opening = f'\t\t<testcase classname="" name={quoteattr(shown)} time="0.000">'
        if state == "failure":
            body = f'<failure message="Failed" type="">{escape(message(result))}</failure>'
        elif state == "skipped":
            body = f'<skipped message="{escape(message(result))}"></skipped>'
        else:
            body = ""
        lines.append(f"{opening}{body}</testcase>")
    lines += ["\t</testsuite>", "</testsuites>"]
    return "\n".join(lines) + "\n"
