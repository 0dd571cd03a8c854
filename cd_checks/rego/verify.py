"""Run Rego unit tests, like `conftest verify`: every rule named `test_*` in every package.

Policies and `*_test.rego` files are loaded into the embedded engine (regorus);
a test passes when its rule evaluates to `true`. A test that errors fails with
the error as its message; a static mistake in any policy is a `PolicyError`,
as a compile error is for OPA. Results come back in file and line order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

from cd_checks.errors import PolicyError
from cd_checks.rego.embedded import Compiled, RuleHead, conftest_packages, engine_message
from cd_checks.rego.model import PolicySource, TestResult

TEST_PREFIX = "test_"


def run_tests(source: PolicySource, *, run: str | None = None) -> list[TestResult]:
    """Run every test whose `namespace.name` matches the regular expression `run` (all if None).

    In process: `cd_checks.rego.run_tests` runs this in a bounded child process.
    """
    return list(iter_tests(source, run=run))


def iter_tests(
    source: PolicySource,
    *,
    run: str | None = None,
    skip: Collection[tuple[str, str]] = (),
    on_test: Callable[[RuleHead], None] | None = None,
) -> Iterator[TestResult]:
    """Each test's result as it comes; `skip` (namespace, name) pairs already settled,
    `on_test` hears of each test about to run."""
    pattern = _pattern(run)
    compiled = Compiled(source, tests=True)
    conftest_packages(compiled.heads)  # the same mistakes `policy check` refuses
    for head in _tests(compiled.heads, pattern):
        if (head.namespace, head.name) in skip:
            continue
        if on_test is not None:
            on_test(head)
        yield _run_one(compiled, head)


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
        if not head.name.startswith(TEST_PREFIX) or head.head not in ("Compr", "Default"):
            continue
        if pattern is not None and not pattern.search(f"{head.namespace}.{head.name}"):
            continue
        seen.setdefault((head.namespace, head.name), head)
    return sorted(seen.values(), key=lambda head: (head.file, head.line))


def _run_one(compiled: Compiled, head: RuleHead) -> TestResult:
    try:
        value = compiled.eval_rule(f"data.{head.namespace}.{head.name}")
    except RuntimeError as exc:
        return _result(head, False, engine_message(exc))
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
