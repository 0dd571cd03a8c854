"""Rego policy engines behind one interface, with conftest's semantics.

`open_engine(source)` loads a policy set once and returns an `Evaluator`:
the conftest binary when it is on PATH (engine="auto") or asked for, else the
embedded regorus engine, run in a bounded child process (`sandbox`).
`run_tests(source)` runs the Rego unit tests like `conftest verify`.
Everything a caller needs is re-exported here; engine errors leave as
`PolicyError` or `ToolError`, never as library exceptions.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from cd_checks.errors import PolicyError
from cd_checks.rego import verify_output
from cd_checks.rego.model import (
    EngineName,
    EngineOptions,
    Evaluator,
    FileInfo,
    Outcome,
    PolicySource,
    QueryTrace,
    RuleError,
    RuleResult,
    TestResult,
)
from cd_checks.rego.sandbox import run_tests

__all__ = [
    "EngineOptions",
    "Evaluator",
    "FileInfo",
    "Outcome",
    "QueryTrace",
    "PolicyError",
    "PolicySource",
    "RuleError",
    "RuleResult",
    "TestResult",
    "boolean_rule_warnings",
    "open_engine",
    "run_tests",
    "verify_output",
]

CONFTEST_INSTALL = "https://www.conftest.dev/install/"


def boolean_rule_warnings(source: PolicySource, *, root: Path | None = None) -> tuple[str, ...]:
    """Lines to warn of deny/violation/warn rules that are booleans (conftest: always passed)."""
    from cd_checks.rego import embedded

    return embedded.boolean_rule_warnings(source, root=root)


def open_engine(
    source: PolicySource,
    *,
    engine: EngineName = "auto",
    which: Callable[[str], str | None] = shutil.which,
    wait: bool = True,
    show_builtin_errors: bool = False,
    trace: bool = False,
) -> Evaluator:
    """Load the policies of `source` into the chosen engine; PolicyError if they cannot be used.

    `wait=False` lets the embedded engine load in the background: a PolicyError
    then comes with its first use. `show_builtin_errors` and `trace` are conftest's
    flags (see `EngineOptions`); the conftest binary is run without them.
    """
    if engine not in ("auto", "embedded", "conftest"):
        raise PolicyError(f"unknown policy engine {engine!r} (choose auto, embedded or conftest)")
    executable = which("conftest") if engine != "embedded" else None
    if engine == "conftest" and executable is None:
        raise PolicyError(
            f"the conftest engine needs the conftest binary on PATH (install: {CONFTEST_INSTALL}),"
            " or use --engine embedded"
        )
    if executable is not None:
        from cd_checks.rego.conftest import ConftestEvaluator

        return ConftestEvaluator(source, executable)
    from cd_checks.rego.sandbox import BoundedEvaluator

    options = EngineOptions(show_builtin_errors=show_builtin_errors, trace=trace)
    return BoundedEvaluator(source, wait=wait, options=options)
