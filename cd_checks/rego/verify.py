"""Run Rego unit tests, like `conftest verify`: every rule named `test_*` in every package.

Policies and `*_test.rego` files are loaded into the embedded engine (regorus);
a test passes when its rule evaluates to `true`; a `todo_test_*` rule is
skipped, as OPA does. A test that errors fails with the error as its message
(a builtin's error as such only with `show_builtin_errors`, as conftest: else
the test is undefined, and the error is given as why); a static mistake in any
policy is a `PolicyError`, as a compile error is for OPA. Results come back in file and line order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import replace
from typing import Any

from cd_checks.errors import PolicyError
from cd_checks.rego.embedded import (
    Compiled,
    RuleHead,
    conftest_packages,
    engine_message,
    is_builtin_error,
)
from cd_checks.rego.model import EngineOptions, PolicySource, TestResult

TEST_PREFIX = "test_"
SKIPPED_PREFIX = "todo_test_"


def run_tests(
    source: PolicySource, *, run: str | None = None, options: EngineOptions | None = None
) -> list[TestResult]:
    """Run every test whose `namespace.name` matches the regular expression `run` (all if None).

    In process: `cd_checks.rego.run_tests` runs this in a bounded child process.
    """
    return list(iter_tests(source, run=run, options=options))


def iter_tests(
    source: PolicySource,
    *,
    run: str | None = None,
    skip: Collection[tuple[str, str]] = (),
    on_test: Callable[[RuleHead], None] | None = None,
    options: EngineOptions | None = None,
) -> Iterator[TestResult]:
    """Each test's result as it comes; `skip` (namespace, name) pairs already settled,
    `on_test` hears of each test about to run."""
    pattern = _pattern(run)
    options = options or EngineOptions()
    compiled = Compiled(source, tests=True)
    conftest_packages(compiled.heads)  # the same mistakes `policy check` refuses
    if options.trace:
        compiled.enable_trace()
    for head in _tests(compiled.heads, pattern):
        if (head.namespace, head.name) in skip:
            continue
        if head.name.startswith(SKIPPED_PREFIX):
            yield TestResult(head.namespace, head.name, True, None, head.file, head.line, True)
            continue
        if on_test is not None:
            on_test(head)
        if options.trace:
            compiled.evaluation_trace()  # start this test's trace afresh
        result = _run_one(compiled, head, options)
        if options.trace:
            lines, outputs = compiled.evaluation_trace()
            result = replace(result, outputs=tuple(outputs), trace=tuple(lines))
        yield result


def _pattern(run: str | None) -> re.Pattern[str] | None:
    if run is None:
        return None
    try:
        return re.compile(run)
    except re.error as exc:
        raise PolicyError(f"invalid test name pattern {run!r}: {exc}") from exc


def _tests(heads: tuple[RuleHead, ...], pattern: re.Pattern[str] | None) -> list[RuleHead]:
    seen: dict[tuple[str, str], RuleHead] = {}
    for head in heads:
        named = head.name.startswith((TEST_PREFIX, SKIPPED_PREFIX))
        if not named or head.head not in ("Compr", "Default"):
            continue
        if pattern is not None and not pattern.search(f"{head.namespace}.{head.name}"):
            continue
        seen.setdefault((head.namespace, head.name), head)
    return sorted(seen.values(), key=lambda head: (head.file, head.line))


def _run_one(compiled: Compiled, head: RuleHead, options: EngineOptions) -> TestResult:
    try:
        value = compiled.eval_rule(f"data.{head.namespace}.{head.name}")
    except RuntimeError as exc:
        message = engine_message(exc)
        if not options.show_builtin_errors and is_builtin_error(message):
            # OPA leaves the expression undefined (conftest verify: a bare FAIL); the
            # error is still the best hint of why.
            message = f"undefined: a builtin failed ({message})"
        return _result(head, False, message)
    if value is True:
        return _result(head, True, None)
    return _result(head, False, _why(value))


def _why(value: Any) -> str:
    if value == "<undefined>":  # regorus' JSON for an undefined rule
        return "undefined (a condition in the test body was false)"
    if value is False:
        return "evaluated to false"
    return f"evaluated to {value!r}, not true"


def _result(head: RuleHead, passed: bool, message: str | None) -> TestResult:
    return TestResult(head.namespace, head.name, passed, message, head.file, head.line)
