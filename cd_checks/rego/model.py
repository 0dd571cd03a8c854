"""The values every Rego engine speaks: what to load, what came out, and the engine protocol.

Engines (`embedded.py`, `conftest.py`) and the Rego unit-test runner
(`verify.py`) take a `PolicySource` and return these frozen values; nothing
here touches an engine, a file or a subprocess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

RegoVersion = Literal["v0", "v1"]
Kind = Literal["failure", "warning", "exception"]
EngineName = Literal["auto", "embedded", "conftest"]


@dataclass(frozen=True)
class PolicySource:
    """Where the policies and data documents live; picklable, so a worker can rebuild an engine.

    `paths` are directories (searched recursively) or single `.rego` files;
    `*_test.rego` files are loaded only by the unit-test runner. `data_paths`
    hold `.json`/`.yaml`/`.yml` documents merged at the root of `data`, as
    conftest's `--data` does; `extra_data` is merged last.
    """

    paths: tuple[Path, ...]
    data_paths: tuple[Path, ...] = ()
    rego_version: RegoVersion = "v1"
    extra_data: Mapping[str, Any] | None = None
    # The repository: `parse_config_file` and `parse_combined_config_files` read files
    # only below it (None: the working directory).
    root: Path | None = None


@dataclass(frozen=True)
class EngineOptions:
    """conftest's `--show-builtin-errors` and `--trace`, for the embedded engine.

    Without `show_builtin_errors`, a builtin that fails (`to_number("x")`, a bad
    `parse_config_file` path) leaves its rule body undefined for that document, as
    OPA does by default (the rule's other definitions still count); with it, the
    failure is a `RuleError`. OPA drops only the failing iteration of a body;
    regorus fails the whole body, so its other iterations' results are lost.
    `trace` records, per document, each query with its outcome and `print()` output.
    """

    show_builtin_errors: bool = False
    trace: bool = False


@dataclass(frozen=True)
class RuleResult:
    """One message from a `deny`/`violation`/`warn` rule, or one applied `exception`."""

    namespace: str
    rule: str
    kind: Kind
    message: str
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class RuleError:
    """A rule that failed while evaluating one document (e.g. a type error); one line."""

    namespace: str
    rule: str
    message: str


@dataclass(frozen=True)
class QueryTrace:
    """One query evaluated for one document, with `EngineOptions.trace` (conftest's --trace).

    regorus has no evaluation trace like OPA's: `lines` name each rule the query
    entered and the lines of it that were evaluated (from regorus' coverage, in file
    order, not evaluation order), then what the query returned; `outputs` hold what
    `print()` wrote while it ran (`file:line: text`).
    """

    query: str
    passed: bool
    lines: tuple[str, ...]
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileInfo:
    """`data.conftest.file` for one document: conftest's base name and absolute directory."""

    name: str
    dir: str


@dataclass(frozen=True)
class Outcome:
    """Everything the policies said about one document."""

    results: tuple[RuleResult, ...]
    errors: tuple[RuleError, ...]
    queries: tuple[QueryTrace, ...] = ()  # only with EngineOptions.trace
    # (namespace, count) of rules that passed, counted as conftest does (its "successes").
    successes: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class TestResult:
    """One Rego unit test (`test_*` rule), as `conftest verify` reports it."""

    __test__ = False  # not a pytest class

    namespace: str
    name: str
    passed: bool
    message: str | None
    file: str
    line: int
    skipped: bool = False  # a `todo_test_*` rule: not run, as OPA skips it
    outputs: tuple[str, ...] = ()  # what print() wrote, with EngineOptions.trace
    trace: tuple[str, ...] = ()  # rules entered and lines evaluated (QueryTrace.lines)


class Evaluator(Protocol):
    """A loaded policy set: build once per process, then evaluate many documents."""

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Packages that define `deny`, `violation` or `warn` rules, sorted."""
        ...

    def evaluate(
        self,
        documents: Sequence[Any],
        *,
        namespaces: Sequence[str] | None,
        files: Sequence[FileInfo | None] | None = None,
    ) -> list[Outcome]:
        """One Outcome per document (each is one `input`), same order; None: all namespaces.

        `namespaces` may hold conftest's globs (`ma*`); one that names nothing selects
        nothing. `files[i]` is `data.conftest.file` while document i is evaluated.
        """
        ...
