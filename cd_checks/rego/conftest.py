"""The conftest binary as a Rego engine, run as a subprocess when it is on PATH.

Each `evaluate` writes the documents and the merged data (data files plus
`extra_data`, merged by `loader.load_data` exactly as for the embedded engine)
to a temporary directory and runs one `conftest test --output json --no-fail`
over them. conftest stops at the first evaluation error, so after a failed
batch each document is rerun alone and a failing one gets a `RuleError`. The
policies are test-run once on `{}` when the evaluator is built, so compile
errors are a `PolicyError` up front. One difference from the embedded engine
is conftest's own: it evaluates each member of a top-level list document as a
separate input, and its `data.conftest.file` names the temporary file. This
module never parses Rego beyond finding package and rule
names; conftest does the rest.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cd_checks.errors import PolicyError, ToolError
from cd_checks.rego import semantics
from cd_checks.rego.loader import PolicyFile, load_data, policy_files
from cd_checks.rego.model import FileInfo, Kind, Outcome, PolicySource, RuleError, RuleResult

TIMEOUT_SECONDS = 600
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_RULE = re.compile(r"^([A-Za-z_]\w*)\b", re.MULTILINE)
_KINDS: tuple[tuple[str, Kind], ...] = (
    ("failures", "failure"),
    ("warnings", "warning"),
    ("exceptions", "exception"),
)


def scan_rules(files: Sequence[PolicyFile]) -> dict[str, list[str]]:
    """Package -> conftest rule names (and `exception`) defined at the start of a line."""
    packages: dict[str, list[str]] = {}
    for policy in files:
        package = _PACKAGE.search(policy.text)
        if package is None:
            raise PolicyError(f"{policy.name}: no package declaration")
        names = packages.setdefault(package.group(1), [])
        for name in _RULE.findall(policy.text):
            wanted = semantics.rule_kind(name) or name == semantics.EXCEPTION_RULE
            if wanted and name not in names:
                names.append(name)
    return packages


class ConftestEvaluator:
    """Evaluate documents with `conftest test`, read into the same values as the embedded engine."""

    def __init__(self, source: PolicySource, executable: str) -> None:
        self._source = source
        self._executable = executable
        self._last_error = ""
        self._packages = scan_rules(policy_files(source.paths, tests=False))
        self._rules = {
            ns: [n for n in names if semantics.rule_kind(n)] for ns, names in self._packages.items()
        }
        self.namespaces: tuple[str, ...] = tuple(sorted(ns for ns, r in self._rules.items() if r))
        self._data = load_data(source.data_paths, source.extra_data)
        self._check_compiles()

    def _check_compiles(self) -> None:
        with tempfile.TemporaryDirectory(prefix="cd-checks-conftest-") as tmp:
            args = self._command(Path(tmp), [self._write(Path(tmp), 0, {})], None)
            completed = self._run(args)
        if completed.returncode != 0:
            raise PolicyError(f"conftest cannot load the policies: {_stderr_line(completed)}")

    def evaluate(
        self,
        documents: Sequence[Any],
        *,
        namespaces: Sequence[str] | None,
        files: Sequence[FileInfo | None] | None = None,
    ) -> list[Outcome]:
        # `files` is not passed on: conftest sets data.conftest.file from the temporary
        # file it reads (document-NNNNNN.json in a temporary directory).
        del files
        selected = semantics.select_namespaces(
            namespaces, defined=self._packages, with_rules=self.namespaces
        )
        if not documents:
            return []
        if namespaces is not None and not selected:  # conftest: 0 tests, nothing to run
            return [Outcome((), ()) for _ in documents]
        outcomes = self._batch(documents, namespaces, selected)
        if outcomes is not None:
            return outcomes
        return [self._alone(document, namespaces, selected) for document in documents]

    def _alone(
        self, document: Any, namespaces: Sequence[str] | None, selected: tuple[str, ...]
    ) -> Outcome:
        outcomes = self._batch([document], namespaces, selected)
        if outcomes is not None:
            return outcomes[0]
        label = selected[0] if len(selected) == 1 else "*"
        return Outcome((), (RuleError(label, "*", self._last_error),))

    def _batch(
        self,
        documents: Sequence[Any],
        namespaces: Sequence[str] | None,
        selected: tuple[str, ...],
    ) -> list[Outcome] | None:
        """Outcomes for `documents` in one conftest run, or None if conftest failed."""
        with tempfile.TemporaryDirectory(prefix="cd-checks-conftest-") as tmp:
            files = [self._write(Path(tmp), i, doc) for i, doc in enumerate(documents)]
            ns_args = None if namespaces is None else selected
            completed = self._run(self._command(Path(tmp), files, ns_args))
        if completed.returncode != 0:
            self._last_error = _stderr_line(completed)
            return None
        return self._parse(completed.stdout, [f.name for f in files])

    def _write(self, directory: Path, index: int, document: Any) -> Path:
        path = directory / f"document-{index:06d}.json"
        path.write_text(json.dumps(document, default=str), "utf-8")
        return path

    def _command(
        self, directory: Path, files: Sequence[Path], namespaces: Sequence[str] | None
    ) -> list[str]:
        args = [self._executable, "test", "--no-color", "--no-fail", "--output", "json"]
        args += ["--parser", "json", "--rego-version", self._source.rego_version]
        for policy in self._source.paths:
            args += ["--policy", str(policy)]
        if self._data:
            data_file = directory / "data" / "data.json"
            data_file.parent.mkdir()
            data_file.write_text(json.dumps(self._data, default=str), "utf-8")
            args += ["--data", str(data_file.parent)]
        if namespaces is None:
            args.append("--all-namespaces")
        for namespace in namespaces or ():
            args += ["--namespace", namespace]
        return args + [str(f) for f in files]

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(  # noqa: S603 - argument list, executable found by which()
                args, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ToolError(f"cannot run conftest ({self._executable}): {exc}") from exc

    def _parse(self, stdout: str, names: list[str]) -> list[Outcome]:
        try:
            checks = json.loads(stdout)
        except json.JSONDecodeError as exc:
            raise ToolError(f"conftest printed output that is not JSON: {exc}") from exc
        if not isinstance(checks, list):
            raise ToolError("conftest printed JSON that is not a list of results")
        found: dict[str, list[RuleResult]] = {name: [] for name in names}
        passed: dict[str, list[tuple[str, int]]] = {name: [] for name in names}
        for check in checks:
            name = Path(str(check.get("filename", ""))).name
            if name in found:
                found[name].extend(self._results(check))
                count = check.get("successes")
                if isinstance(count, int) and count > 0:
                    passed[name].append((str(check.get("namespace") or "main"), count))
        return [Outcome(tuple(found[n]), (), (), tuple(passed[n])) for n in names]

    def _results(self, check: Mapping[str, Any]) -> list[RuleResult]:
        namespace = str(check.get("namespace") or "main")
        results: list[RuleResult] = []
        seen: dict[str, int] = {}
        for key, kind in _KINDS:
            for item in check.get(key) or ():
                results.append(self._result(namespace, kind, item, seen))
        return results

    def _result(
        self, namespace: str, kind: Kind, item: Mapping[str, Any], seen: dict[str, int]
    ) -> RuleResult:
        message = str(item.get("msg", ""))
        metadata = dict(item.get("metadata") or {})
        query = str(metadata.pop("query", ""))
        if kind == "exception":
            rule = self._excepted_rule(namespace, message, seen)
        else:
            prefix = f"data.{namespace}."
            fallback = "deny" if kind == "failure" else "warn"
            rule = query[len(prefix) :] if query.startswith(prefix) else fallback
        return RuleResult(namespace, rule, kind, message, metadata)

    def _excepted_rule(self, namespace: str, message: str, seen: dict[str, int]) -> str:
        """Which rule an exception (message `data.ns.exception[_][_] == "name"`) stands for."""
        rules = self._rules.get(namespace, [])
        candidates = [r for r in rules if semantics.exception_query(namespace, r) == message]
        if not candidates:
            return semantics.EXCEPTION_RULE
        index = seen.get(message, 0)
        seen[message] = index + 1
        return candidates[index % len(candidates)]


def _stderr_line(completed: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in completed.stderr.splitlines() if line.strip()]
    text = lines[-1] if lines else f"exit status {completed.returncode}"
    return text.removeprefix("Error: ")
