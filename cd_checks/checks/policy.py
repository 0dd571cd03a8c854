"""Policy checks: Rego policies over parsed documents, with conftest semantics.

Users' own policies (`policy.paths`) see every parsed document as conftest
hands it over (an empty file or document is a null input; a file's top-level
list is split into its members; `data.conftest.file` names the file); each
enabled builtin set sees only the non-empty documents of the files its globs
match. Results become findings: deny/violation are errors, warn are warnings,
an applied conftest exception is a finding of level `exception`, and each rule
that passed one of level `success` (conftest's count of successes). A result
object's `path` puts the finding on that node's line and column; its `rule`
is the stable id shown on the finding. A builtin rule's findings then take
the user's settings for that id (`policy.rules`: severity, files, exclude).
Which engine evaluates is decided in `cd_checks.rego`; this module only maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path
from typing import Any, Protocol

import pathspec

from cd_checks.config import RuleSetting, RuleSeverity
from cd_checks.documents import Parsed
from cd_checks.errors import PolicyError
from cd_checks.files import matcher
from cd_checks.findings import Finding, Severity
from cd_checks.rego import (
    EngineOptions,
    Evaluator,
    FileInfo,
    Outcome,
    PolicySource,
    open_engine,
)
from cd_checks.rego.extensions import file_info

# Kinds whose one document is a list conftest hands over whole: its parsers wrap a
# Dockerfile's commands and an ignore file's entries in one more list.
WHOLE_LIST_KINDS = ("dockerfile", "ignore")
# Keys only a play has at its top: a tasks file never does.
PLAY_KEYS = ("hosts", "import_playbook", "ansible.builtin.import_playbook")


@dataclass(frozen=True)
class BuiltinScope:
    package: str
    combined_package: str | None
    globs: tuple[str, ...]
    playbook_globs: tuple[str, ...] = ()  # read only when the file holds a playbook
    name: str = ""
    rules: tuple[tuple[str, RuleSetting], ...] = ()  # `policy.rules` of this set's rules
    # A set only change types ask for (`changes.<type>.policy`): it reads only their files.
    within: tuple[str, ...] = ()

    def rule_globs(self) -> tuple[str, ...]:
        """Files a rule of the set was given (`files:`) beyond the set's globs."""
        return tuple(g for _, setting in self.rules for g in setting.files or ())

    def reader(self, globs: Sequence[str]) -> Matcher:
        """The files of `globs` this set reads: all of them, or those `within` names too."""
        return within(globs, self.within)


class Matcher(Protocol):
    def match_file(self, file: str) -> bool: ...


@dataclass(frozen=True)
class _Both:
    first: pathspec.GitIgnoreSpec
    second: pathspec.GitIgnoreSpec

    def match_file(self, file: str) -> bool:
        return bool(self.first.match_file(file) and self.second.match_file(file))


def within(globs: Sequence[str], limit: Sequence[str]) -> Matcher:
    """A matcher of `globs`; with `limit`, of the files both match."""
    spec = matcher(globs)
    return _Both(spec, matcher(limit)) if limit else spec


@dataclass(frozen=True)
class Tuning:
    """One builtin rule's settings, its globs compiled."""

    severity: RuleSeverity | None
    files: pathspec.GitIgnoreSpec | None
    exclude: pathspec.GitIgnoreSpec | None

    @classmethod
    def of(cls, setting: RuleSetting) -> Tuning:
        files = matcher(setting.files) if setting.files is not None else None
        return cls(setting.severity, files, matcher(setting.exclude) if setting.exclude else None)

    def applied(self, finding: Finding, *, in_scope: bool) -> Finding | None:
        """The finding as the user set the rule up; None when it is not wanted.
        `in_scope`: the set reads the finding's file by its own globs."""
        wanted = self.files.match_file(finding.path) if self.files is not None else in_scope
        if not wanted or self.severity == "off":
            return None
        if self.exclude is not None and self.exclude.match_file(finding.path):
            return None
        if self.severity is None:
            return finding
        return replace(finding, severity=self.severity)


@dataclass(frozen=True)
class PolicySetup:
    """Everything needed to build the evaluators, picklable for worker processes."""

    user: PolicySource | None
    user_namespaces: tuple[str, ...] | None  # None: all namespaces
    builtin: PolicySource | None
    scopes: tuple[BuiltinScope, ...]
    engine: str
    combine: bool
    # The repository: `data.conftest.file.dir` is absolute (None: the working directory).
    root: Path | None = None
    engine_options: EngineOptions = EngineOptions()  # --show-builtin-errors, --trace


@dataclass(frozen=True)
class Entry:
    """One document of one file, as handed to a combined evaluation."""

    path: str
    index: int
    parsed: Parsed
    element: int | None = None  # an element of a top-level list, conftest-style

    @property
    def contents(self) -> Any:
        if self.index >= len(self.parsed.documents):
            return None  # an empty file: conftest's input is null
        document = self.parsed.documents[self.index]
        return document if self.element is None else document[self.element]

    def locate(self, where: Sequence[Any]) -> tuple[int, int | None] | None:
        prefix = [] if self.element is None else [self.element]
        return self.parsed.locate(self.index, [*prefix, *where])


def whole_documents(path: str, parsed: Parsed) -> list[Entry]:
    """One entry per document a policy reads, as conftest hands them over: an empty
    document (`---` with nothing after it) and an empty file are one null input each.
    A document refused while parsing (its finding says why) is none."""
    if not parsed.documents:
        return [Entry(path, 0, parsed)]
    return [
        Entry(path, i, parsed)
        for i, document in enumerate(parsed.documents)
        if document is not None or _empty_document(parsed, i)
    ]


def _empty_document(parsed: Parsed, index: int) -> bool:
    """A null document parsed from the text (it has a node), not one refused (none)."""
    return parsed.locate(index, []) is not None


def _non_empty(entries: Sequence[Entry]) -> list[Entry]:
    """The entries the shipped sets read: they are written for documents, not null."""
    return [entry for entry in entries if entry.contents is not None]


def holds_playbook(document: Any) -> bool:
    """A list with a play (`hosts`, or `import_playbook`): ansible-lint's test for a playbook."""
    return isinstance(document, list) and any(
        isinstance(play, dict) and any(k in play for k in PLAY_KEYS) for play in document
    )


def conftest_inputs(entries: Sequence[Entry]) -> list[Entry]:
    """conftest evaluates each element of a file's top-level list as an input of its own
    (and combines them one by one); users' policies are written for that. A file of
    several documents is a list of them: a document that is a list stays one input."""
    split: list[Entry] = []
    for _, group in groupby(entries, key=lambda entry: entry.path):
        documents = list(group)
        only = documents[0].contents if len(documents) == 1 else None
        if isinstance(only, list) and documents[0].parsed.kind not in WHOLE_LIST_KINDS:
            split += [replace(documents[0], element=k) for k in range(len(only))]
        else:
            split += documents
    return split


class PolicyRunner:
    """The evaluators of one process: built once, then fed document after document."""

    def __init__(self, setup: PolicySetup) -> None:
        self.setup = setup
        # Both load at once, in their own processes, while files are parsed.
        self.user: Evaluator | None = (
            open_engine(
                setup.user,
                engine=_engine_for(setup),
                wait=False,
                show_builtin_errors=setup.engine_options.show_builtin_errors,
                trace=setup.engine_options.trace,
            )
            if setup.user
            else None
        )
        self.builtin: Evaluator | None = (
            open_engine(setup.builtin, engine="embedded", wait=False) if setup.builtin else None
        )
        self._scopes = [(scope, scope.reader(scope.globs)) for scope in setup.scopes]
        self._playbook_scopes = [
            (scope, scope.reader(scope.playbook_globs))
            for scope in setup.scopes
            if scope.playbook_globs
        ]
        # Sets one of whose rules was given files of its own: they read those files too.
        self._rule_scopes = [
            (scope, scope.reader(scope.rule_globs()))
            for scope in setup.scopes
            if scope.rule_globs()
        ]
        self._combined_scopes = [
            (scope, spec, scope.reader(scope.rule_globs()))
            for scope, spec in self._scopes
            if scope.combined_package
        ]
        self._tuning = {
            rule: Tuning.of(setting) for scope in setup.scopes for rule, setting in scope.rules
        }
        # With EngineOptions.trace: conftest's --trace lines of users' policies, in the
        # order files were checked in this process (`trace_lines`).
        self.traces: list[str] = []

    def check(self, path: str, parsed: Parsed) -> list[Finding]:
        """Per-document policies; skipped for users' policies in combine mode (conftest does)."""
        entries = whole_documents(path, parsed)
        documents = _non_empty(entries)
        findings: list[Finding] = []
        if self.user is not None and not self.setup.combine:
            inputs = conftest_inputs(entries)
            outcomes = self.user.evaluate(
                [e.contents for e in inputs],
                namespaces=self.setup.user_namespaces,
                files=[self._file(path)] * len(inputs),
            )
            findings += _findings(inputs, outcomes, exceptions=True)
            self.traces += trace_lines(path, outcomes)
        if self.builtin is None or not documents:
            return findings
        packages = [s.package for s, spec in self._scopes if spec.match_file(path)]
        if self._playbook_scopes and any(holds_playbook(e.contents) for e in documents):
            plays = [s.package for s, spec in self._playbook_scopes if spec.match_file(path)]
            packages += [p for p in plays if p not in packages]
        found = self._builtin(path, parsed, documents, packages)
        findings += self._tuned(found, lambda _: True)
        extra = [s.package for s, spec in self._rule_scopes if spec.match_file(path)]
        extra = [p for p in extra if p not in packages]
        found = self._builtin(path, parsed, documents, extra)
        findings += self._tuned(found, lambda _: False)
        return findings

    def _builtin(
        self, path: str, parsed: Parsed, documents: list[Entry], packages: list[str]
    ) -> list[Finding]:
        if self.builtin is None or not packages:
            return []
        # The shipped sets read whole documents (a playbook is a list of plays), an
        # NGINX file as nginx reads it (`Parsed.in_context`). A snippet included in
        # five servers is one problem at one line, not five.
        seen = (
            _non_empty(whole_documents(path, parsed.in_context)) if parsed.in_context else documents
        )
        outcomes = self.builtin.evaluate([e.contents for e in seen], namespaces=packages)
        found = _findings(seen, outcomes)
        return list(dict.fromkeys(found)) if parsed.in_context else found

    def _tuned(self, found: Sequence[Finding], in_scope: Callable[[str], bool]) -> list[Finding]:
        """Builtin findings as `policy.rules` sets their rules up. `in_scope(path)`: the
        set reads that file by its own globs, not only for a rule's `files:`."""
        kept: list[Finding] = []
        for finding in found:
            tuning = self._tuning.get(finding.rule)
            if tuning is None:
                kept += [finding] if in_scope(finding.path) else []
                continue
            tuned = tuning.applied(finding, in_scope=in_scope(finding.path))
            kept += [tuned] if tuned is not None else []
        return kept

    def reads(self, path: str) -> bool:
        """Whether a policy reads this file's documents, per file or combined."""
        if self.user is not None:
            return True
        scopes = (*self._scopes, *self._playbook_scopes, *self._rule_scopes)
        return any(spec.match_file(path) for _, spec in scopes) or self.combined_reads(path)

    def combined_reads(self, path: str) -> bool:
        """Whether check_combined reads this file's documents (a run keeps only those)."""
        if self.user is not None and self.setup.combine:
            return True
        return any(
            scope.combined_package and (spec.match_file(path) or extra.match_file(path))
            for scope, spec, extra in self._combined_scopes
        )

    @staticmethod
    def wants(setup: PolicySetup) -> bool:
        """Whether check_combined has work: users' --combine, or a builtin cross-file package."""
        return setup.combine or any(s.combined_package for s in setup.scopes)

    def check_combined(self, entries: Sequence[Entry]) -> list[Finding]:
        """conftest's --combine: one input, a list of {path, contents} for every document.

        Users' policies get it only with --combine, as in conftest. A builtin set's
        cross-file package (e.g. MON-007, one alert name in two files) is written
        for that input alone, so it runs whenever its set is on.
        """
        findings: list[Finding] = []
        if self.user is not None and self.setup.combine and entries:
            users = conftest_inputs(entries)
            findings += self._combined(self.user, users, self.setup.user_namespaces)
        for scope, spec in self._scopes:
            if self.builtin is None or not scope.combined_package:
                continue
            extra = scope.reader(scope.rule_globs())
            chosen = [
                e
                for e in _non_empty(entries)
                if spec.match_file(e.path) or extra.match_file(e.path)
            ]
            if chosen:
                found = self._combined(self.builtin, chosen, [scope.combined_package])
                findings += self._tuned(found, _within(spec))
        return findings

    def _file(self, path: str) -> FileInfo:
        """`data.conftest.file` while the documents of `path` are evaluated."""
        return file_info(path, self.setup.root)

    def _combined(
        self, evaluator: Evaluator, entries: Sequence[Entry], namespaces: Sequence[str] | None
    ) -> list[Finding]:
        document = [{"path": e.path, "contents": e.contents} for e in entries]
        # conftest names the combined input "Combined" (data.conftest.file too).
        files = [self._file("Combined")] if evaluator is self.user else None
        (outcome,) = evaluator.evaluate([document], namespaces=namespaces, files=files)
        self.traces += trace_lines("Combined", [outcome])
        found = _passed("Combined", outcome) if evaluator is self.user else []
        for result in outcome.results:
            if result.kind == "exception":
                if evaluator is self.user:
                    found.append(_excepted(".", result))
                continue
            where = _path_of(result.metadata)
            entry = entries[where[0]] if where and _is_index(where[0], entries) else None
            if entry is None:
                found.append(_make(".", None, result, shown=evaluator is self.user))
                continue
            position = entry.locate(where[2:]) if where[1:2] == ["contents"] else None
            found.append(_make(entry.path, position, result, shown=evaluator is self.user))
        found += [_error(".", e.namespace, e.rule, e.message) for e in outcome.errors]
        return found


def _within(spec: Matcher) -> Callable[[str], bool]:
    """Whether a combined finding's file is one of the set's (`.`: the input as a whole)."""
    return lambda path: path == "." or spec.match_file(path)


def _engine_for(setup: PolicySetup) -> Any:
    """conftest splits a top-level list into separate inputs, which would break the
    combined input (one list of {path, contents}), so combine mode runs embedded."""
    if not setup.combine:
        return setup.engine
    if setup.engine == "conftest":
        raise PolicyError("--combine runs on the embedded engine; use --engine auto or embedded")
    return "embedded"


def _is_index(value: Any, entries: Sequence[Entry]) -> bool:
    return isinstance(value, int) and 0 <= value < len(entries)


def _path_of(metadata: Any) -> list[Any]:
    path = metadata.get("path") if isinstance(metadata, dict) else None
    return list(path) if isinstance(path, list) else []


def _findings(
    inputs: Sequence[Entry], outcomes: Sequence[Outcome], *, exceptions: bool = False
) -> list[Finding]:
    """Findings of the outcomes; with `exceptions` (a user's policies), an applied conftest
    exception is a finding of level `exception` (conftest's EXCP line), else it is dropped,
    and a result's metadata stays on its finding."""
    found = []
    for entry, outcome in zip(inputs, outcomes, strict=True):
        found += _passed(entry.path, outcome) if exceptions else []
        for result in outcome.results:
            if result.kind == "exception":
                found += [_excepted(entry.path, result)] if exceptions else []
                continue
            where = _path_of(dict(result.metadata))
            position = entry.locate(where) if where else None
            found.append(_make(entry.path, position, result, shown=exceptions))
        found += [_error(entry.path, e.namespace, e.rule, e.message) for e in outcome.errors]
    return found


def _passed(path: str, outcome: Outcome) -> list[Finding]:
    """conftest's successes of one document: a finding of level `success` per passed rule
    (formats only count them)."""
    return [
        Finding(path, None, None, "policy", f"{namespace}.passed", "success", "")
        for namespace, count in outcome.successes
        for _ in range(count)
    ]


def _excepted(path: str, result: Any) -> Finding:
    """An applied exception: the excepted rule, and conftest's message (its query)."""
    rule = f"{result.namespace}.{result.rule}"
    return Finding(path, None, None, "policy", rule, "exception", result.message)


def trace_lines(path: str, outcomes: Sequence[Outcome]) -> list[str]:
    """conftest's --trace output for one file: `file: F | query: Q`, then each line.

    regorus has no evaluation trace: the lines say what each query returned, and
    `PRNT` lines hold what `print()` wrote while it ran.
    """
    lines: list[str] = []
    for outcome in outcomes:
        for query in outcome.queries:
            lines.append(f"file: {path} | query: {query.query}")
            lines += [f"TRAC  {line}" for line in query.lines]
            lines += [f"PRNT  {output}" for output in query.outputs]
    return lines


def _make(
    path: str, position: tuple[int, int | None] | None, result: Any, *, shown: bool = False
) -> Finding:
    """`shown`: a user's policy result, whose metadata formats show (conftest-json); the
    built-in sets' keys (path, rule) only place and name the finding."""
    metadata = dict(result.metadata)
    line, column = position if position else (_loc_line(path, metadata.get("_loc")), None)
    rule = metadata.get("rule") if isinstance(metadata.get("rule"), str) else None
    severity: Severity = "warning" if result.kind == "warning" else "error"
    return Finding(
        path,
        line,
        column,
        "policy",
        rule or f"{result.namespace}.{result.rule}",
        severity,
        result.message,
        metadata if shown else {},
    )


def _loc_line(path: str, loc: Any) -> int | None:
    """The line of a result's conftest `_loc` when it names this file (or no file)."""
    if not isinstance(loc, dict) or loc.get("file") not in (None, "", path):
        return None
    line = loc.get("line")
    return line if isinstance(line, int) and not isinstance(line, bool) and line > 0 else None


def _error(path: str, namespace: str, rule: str, message: str) -> Finding:
    return Finding(
        path,
        None,
        None,
        "policy",
        f"{namespace}.{rule}",
        "error",
        f"rule {namespace}.{rule} failed to evaluate: {message}",
    )
