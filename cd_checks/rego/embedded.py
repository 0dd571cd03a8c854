"""The in-process Rego engine: regorus (Microsoft's Rust Rego), with conftest semantics.

Policies are parsed once into one regorus `Engine`. Each document is one
`input`, a top-level list too (callers split multi-document files themselves,
and combined inputs are lists), and costs one evaluation per rule, so one rule
that errors on a document (a type error) becomes a `RuleError` while the
others still run.
Static mistakes (syntax, unsafe variables, unknown functions, Rego v0 text in
v1 mode or the reverse) are `PolicyError`s with `file:line:col`. regorus'
`RuntimeError`s never leave this module (see NOTES.md for why regorus).
Builtins that reach the network (`http.send`, `net.lookup_ip_addr`) and OPA
builtins regorus lacks are an evaluation error of the rule that calls them,
never a silent empty result and never the end of the run. A builtin that fails
on its arguments leaves the rule undefined, as in OPA, unless
`show_builtin_errors`; conftest's own builtins come from `extensions`.
This engine runs inside `cd_checks.rego.sandbox`'s bounded child process;
`stopped` rules (ones that crashed or overran it there) are not evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regorus

from cd_checks.errors import PolicyError
from cd_checks.rego import extensions, semantics
from cd_checks.rego.loader import PolicyFile, load_data, policy_files
from cd_checks.rego.model import (
    EngineOptions,
    FileInfo,
    Outcome,
    PolicySource,
    QueryTrace,
    RegoVersion,
    RuleError,
    RuleResult,
)

_LOCATION = re.compile(r"-->\s*(?P<where>\S+:\d+:\d+)")
_ERROR_LINE = re.compile(r"^error:\s*(?P<text>.*)$", re.MULTILINE)
# Errors regorus only finds while evaluating, but that OPA reports at compile time.
_DEBUG_TAIL = re.compile(r"\s*\(path \[.*\], scopes \[.*\]\)$")
_STATIC = (
    "is unsafe",
    "could not find function",
    "rule conflicts with",
    "previous value is not an object",  # a package and a data document at the same path
)
_V0_HINT = "`if` keyword is required"
_V1_KEYWORDS = re.compile(r"\bif\b|\bcontains\b(?!\s*\()")
_V1_IMPORTS = re.compile(r"^\s*import\s+(rego\.v1|future\.keywords)\b", re.MULTILINE)
_STRINGS_AND_COMMENTS = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|#[^\n]*')
# OPA builtins that reach the network, and their arity. cd-checks runs offline and
# gives the same answer everywhere: a rule that calls one fails to evaluate.
NETWORK_BUILTINS = {"http.send": 1, "net.lookup_ip_addr": 1}
_EXTENSION_ERROR = re.compile(r"extension '[^']*' raises Python error: \w+: ")
OFFLINE = "which cd-checks does not evaluate (no network)"
_MISSING = re.compile(r"could not find function (?P<name>[\w.]+)")
# Evaluation errors that are not a builtin's: reported even without show_builtin_errors
# (OPA reports conflicts; the others are limits of regorus or of cd-checks).
_NOT_BUILTIN = (
    "used before definition",
    "multiple outputs",
    "rule conflicts with",
    extensions.GAP,
    OFFLINE,
)


def engine_message(exc: BaseException) -> str:
    """regorus' multi-line error as one line: `file:line:col: message`, backtrace dropped."""
    text = str(exc).split("Stack backtrace:")[0]
    where = _LOCATION.search(text)
    error = _ERROR_LINE.search(text)
    message = error.group("text").strip() if error else " ".join(text.split())
    message = _EXTENSION_ERROR.sub("", _DEBUG_TAIL.sub("", message))
    return f"{where.group('where')}: {message}" if where else message


def is_static_error(message: str) -> bool:
    """A mistake OPA refuses at compile time. A call of an OPA builtin that regorus
    lacks is not one: only the rules that make it fail (`unsupported_builtin`)."""
    return any(marker in message for marker in _STATIC) and unsupported_builtin(message) is None


def unsupported_builtin(message: str) -> str | None:
    """The OPA builtin a "could not find function" error names, if it is one."""
    missing = _MISSING.search(message)
    if missing is None or missing.group("name") not in extensions.OPA_BUILTINS:
        return None
    return missing.group("name")


def is_builtin_error(message: str) -> bool:
    """A builtin that failed on its arguments (OPA: undefined unless strict)."""
    return unsupported_builtin(message) is None and not any(m in message for m in _NOT_BUILTIN)


def _gap_message(message: str, name: str) -> str:
    where = message.split(": could not find function")[0]
    return f"{where}: {name} is an OPA builtin {extensions.GAP} (regorus)"


@dataclass(frozen=True)
class RuleHead:
    """One rule definition as the parser saw it."""

    namespace: str
    name: str
    head: str  # "Set", "Compr", "Func" or "Default"
    plain: bool  # the head is a bare name, not a ref like `deny.x` or `deny[x]`
    file: str
    line: int
    valued: bool = True  # False: `name[x] if {...}` / `name if {...}`, no `:=`/`=` value


@dataclass(frozen=True)
class Package:
    """The conftest-relevant rules of one Rego package."""

    namespace: str
    rules: tuple[str, ...]  # deny/violation/warn rules, in order of first definition
    has_exception: bool


class Compiled:
    """A regorus engine holding every policy of a source, plus what the parser found.

    With `file_slot`, `data.conftest.file` is whatever the slot holds when a rule runs.
    """

    def __init__(
        self,
        source: PolicySource,
        *,
        tests: bool,
        file_slot: extensions.FileSlot | None = None,
        split: bool = False,
    ) -> None:
        """With `split`, each definition of a deny/violation/warn rule gets a name of its
        own (`split_names`), so one can be evaluated without the others."""
        files = policy_files(source.paths, tests=tests)
        self.engine = _new_engine(source.rego_version)
        self.split_names: dict[tuple[str, str], list[str]] | None = {} if split else None
        for index, policy in enumerate(files):
            _add_policy(
                self.engine,
                policy,
                source.rego_version,
                index=index,
                root=source.root,
                split_names=self.split_names,
            )
        self.heads = tuple(_rule_heads(self.engine))
        self.defined = tuple(sorted({head.namespace for head in self.heads} | _packages(self)))
        data = load_data(source.data_paths, source.extra_data)
        self._add_data(data)
        if file_slot is not None and not _defines_conftest_file(self.heads, data):
            self.engine.add_extension(extensions.FILE_FUNCTION, 0, file_slot.read)
            self.engine.add_policy(extensions.FILE_MODULE, extensions.file_module())

    def enable_trace(self) -> None:
        """Record, per query, what `print()` wrote and which rule lines were evaluated
        (regorus' coverage: the nearest it has to OPA's trace)."""
        self.engine.set_gather_prints(True)
        self.engine.set_enable_coverage(True)
        self._rule_lines = _rule_lines(self.engine)

    def evaluation_trace(self) -> tuple[list[str], list[str]]:
        """The trace lines and print() output since the last call."""
        report = json.loads(self.engine.get_coverage_report_as_json())
        self.engine.clear_coverage_data()
        lines: list[str] = []
        for file in report.get("files", []):
            covered = sorted(file.get("covered", []))
            code = str(file.get("code", "")).split("\n")
            for path, first, last, name in getattr(self, "_rule_lines", ()):
                inside = [n for n in covered if first <= n <= last] if path == file["path"] else []
                if inside:
                    lines.append(f"Enter {name} ({path}:{first})")
                    lines += [f"| Eval {path}:{n}: {code[n - 1].strip()}" for n in inside]
        return lines, list(self.engine.take_prints())

    def _add_data(self, data: dict[str, Any]) -> None:
        if data:
            try:
                self.engine.add_data_json(json.dumps(data, default=str))
            except RuntimeError as exc:
                raise PolicyError(f"cannot load data documents: {engine_message(exc)}") from exc

    def eval_rule(self, path: str) -> Any:
        """The JSON value of rule `path`; static mistakes raise PolicyError, others RuntimeError
        (a call of an OPA builtin regorus lacks says so)."""
        try:
            return json.loads(self.engine.eval_rule_as_json(path))
        except RuntimeError as exc:
            message = engine_message(exc)
            if is_static_error(message):
                raise PolicyError(message) from exc
            missing = unsupported_builtin(message)
            if missing is not None:
                raise RuntimeError(_gap_message(message, missing)) from exc
            raise


def _defines_conftest_file(heads: Sequence[RuleHead], data: dict[str, Any]) -> bool:
    """A policy or data document of the user's own at `data.conftest.file` wins."""
    conftest = data.get("conftest")
    if isinstance(conftest, dict) and "file" in conftest:
        return True
    return any(h.namespace == "conftest" and h.name == "file" for h in heads)


def _packages(compiled: Compiled) -> set[str]:
    return {name.removeprefix("data.") for name in compiled.engine.get_packages()}


def _new_engine(version: RegoVersion) -> Any:
    engine = regorus.Engine()
    if version == "v0":
        engine.set_rego_v0(True)
    for name, arity in NETWORK_BUILTINS.items():
        # regorus yields nothing for http.send and does not know net.lookup_ip_addr.
        engine.add_extension(name, arity, _offline(name))
    for extension in extensions.common():
        engine.add_extension(extension.name, extension.arity, extension.function)
    return engine


def _offline(name: str) -> Callable[..., Any]:
    def refuse(*_: Any) -> Any:
        raise RuntimeError(f"uses {name}, {OFFLINE}")

    return refuse


def _add_policy(
    engine: Any,
    policy: PolicyFile,
    version: RegoVersion,
    *,
    index: int,
    root: Path | None,
    split_names: dict[tuple[str, str], list[str]] | None = None,
) -> None:
    if version == "v0" and _looks_like_v1(policy.text):
        raise PolicyError(
            f"{policy.name}: looks like Rego v1 syntax (`if`/`contains` without "
            "`import rego.v1`); rerun with --rego-version v1, or add `import rego.v1`"
        )
    try:
        wanted = split_names is not None or extensions.needs_module(policy.text)
        module = first_parse(policy, version) if wanted else None
        rewritten = extensions.rewrite(
            policy.name, policy.text, index=index, root=root, module=module
        )
        for extension in rewritten.extensions:
            engine.add_extension(extension.name, extension.arity, extension.function)
        text = rewritten.text
        if split_names is not None and module is not None:
            text = _split_definitions(text, module, index, split_names)
        engine.add_policy(policy.name, text)
    except RuntimeError as exc:
        message = engine_message(exc)
        if version == "v1" and _V0_HINT in message and _parses_as_v0(policy):
            raise PolicyError(
                f"{message}: the file looks like Rego v0 syntax; rerun with "
                "--rego-version v0, or port it to Rego v1 (`deny contains msg if {...}`)"
            ) from exc
        raise PolicyError(message) from exc


def _split_definitions(
    text: str, module: dict[str, Any], index: int, names: dict[tuple[str, str], list[str]]
) -> str:
    """`text` with each deny/violation/warn definition named apart (`cd_split_<i>_<n>`)."""
    namespace = _ref_text(module["package"]["refr"])
    data = bytearray(text.encode("utf-8"))
    spans: list[tuple[int, int, str]] = []
    for number, rule in enumerate(module.get("rules", [])):
        var = _definition_name(rule)
        if var is None or semantics.rule_kind(str(var["value"])) is None:
            continue
        fresh = f"cd_split_{index}_{number}"
        names.setdefault((namespace, str(var["value"])), []).append(fresh)
        spans.append((int(var["span"]["start"]), int(var["span"]["end"]), fresh))
    for start, end, fresh in sorted(spans, reverse=True):  # from the end: offsets hold
        data[start:end] = fresh.encode("ascii")
    return data.decode("utf-8")


def _definition_name(rule: dict[str, Any]) -> dict[str, Any] | None:
    """The Var node naming a set or complete rule definition (None: another kind)."""
    head: dict[str, Any] = rule.get("Spec", {}).get("head", {})
    for kind, spec in head.items():
        var = spec.get("refr", {}).get("Var") if kind in ("Set", "Compr") else None
        return var if isinstance(var, dict) else None
    return None


def first_parse(policy: PolicyFile, version: RegoVersion) -> dict[str, Any] | None:
    """The AST of `policy` alone; None if it does not parse (the real parse says why)."""
    scratch = _new_engine(version)
    try:
        scratch.add_policy(policy.name, policy.text)
    except RuntimeError:
        return None
    (module,) = json.loads(scratch.get_ast_as_json())
    return dict(module["ast"])


def _looks_like_v1(text: str) -> bool:
    """v1 keywords in a v0 file without the import that enables them would be misread as names."""
    if _V1_IMPORTS.search(text):
        return False
    return bool(_V1_KEYWORDS.search(_STRINGS_AND_COMMENTS.sub('""', text)))


def _parses_as_v0(policy: PolicyFile) -> bool:
    try:
        _new_engine("v0").add_policy(policy.name, policy.text)
    except RuntimeError:
        return False
    return True


def _rule_lines(engine: Any) -> list[tuple[str, int, int, str]]:
    """(file, first line, last line, `data.<package>.<rule>`) of every rule definition."""
    found = []
    for module in json.loads(engine.get_ast_as_json()):
        file = module["source"]["file"]
        if file == extensions.FILE_MODULE:
            continue  # data.conftest.file is data in conftest, no rule to trace
        text = str(module["source"].get("contents", "")).encode("utf-8")
        namespace = _ref_text(module["ast"]["package"]["refr"])
        for rule in module["ast"]["rules"]:
            head = _rule_head(namespace, file, rule)
            span = (rule.get("Spec") or rule.get("Default") or {}).get("span", {})
            last = text[: int(span.get("end", 0))].count(b"\n") + 1
            found.append((file, head.line, max(last, head.line), f"data.{namespace}.{head.name}"))
    return found


def _rule_heads(engine: Any) -> Iterator[RuleHead]:
    for module in json.loads(engine.get_ast_as_json()):
        file = module["source"]["file"]
        namespace = _ref_text(module["ast"]["package"]["refr"])
        for rule in module["ast"]["rules"]:
            yield _rule_head(namespace, file, rule)


def _rule_head(namespace: str, file: str, rule: dict[str, Any]) -> RuleHead:
    valued = True
    if "Default" in rule:
        body = rule["Default"]
        head, refr = "Default", body["refr"]
    else:
        body = rule["Spec"]
        head, spec = next(iter(body["head"].items()))
        refr = spec["refr"]
        valued = head != "Compr" or spec.get("assign") is not None
    line = body["span"]["line"]
    return RuleHead(namespace, _base_name(refr), head, "Var" in refr, file, line, valued)


def _base_name(refr: dict[str, Any]) -> str:
    while "Var" not in refr:
        refr = next(iter(refr.values()))["refr"]
    return str(refr["Var"]["value"])


def _ref_text(refr: dict[str, Any]) -> str:
    """A package path such as `cd_checks.nginx` from its parsed reference."""
    kind, node = next(iter(refr.items()))
    if kind == "Var":
        return str(node["value"])
    if kind == "RefDot":
        return f"{_ref_text(node['refr'])}.{node['field'][1]}"
    index = next(iter(node["index"].values()))["value"]
    return f"{_ref_text(node['refr'])}[{json.dumps(index)}]"


def conftest_packages(heads: Sequence[RuleHead]) -> dict[str, Package]:
    """Packages with failure/warning rules. As conftest: a set (`deny contains msg`) or a
    complete rule (`violation := [...]`, a boolean `deny if {...}`); `deny[msg] if {...}`
    (Rego v1: an object, not a set) is refused with conftest's words."""
    rules: dict[str, list[str]] = {}
    exceptions: set[str] = set()
    for head in heads:
        if head.name == semantics.EXCEPTION_RULE:
            exceptions.add(head.namespace)
        if semantics.rule_kind(head.name) is None:
            continue
        if not head.plain or head.head == "Func":
            raise PolicyError(_refusal(head))
        names = rules.setdefault(head.namespace, [])
        if head.name not in names:
            names.append(head.name)
    return {ns: Package(ns, tuple(names), ns in exceptions) for ns, names in rules.items()}


def boolean_rule_warnings(source: PolicySource, *, root: Path | None = None) -> tuple[str, ...]:
    """One line per boolean deny/violation/warn definition (`deny if {...}`, `deny := true`).

    conftest counts such a rule as a passed test whatever its value (its
    tests/problematic-if; issue #864), so it never fails or warns: cd-checks does
    the same and says so, as this line, when the policies load. A file that does not
    parse gives no line (loading it says why). Files are named relative to `root`
    (default: `source.root`) when inside it.
    """
    root = root or source.root
    try:
        files = policy_files(source.paths, tests=False)
    except PolicyError:
        return ()
    lines: list[str] = []
    for policy in files:
        module = first_parse(policy, source.rego_version)
        if module is None:
            continue
        namespace = _ref_text(module["package"]["refr"])
        for rule in module.get("rules", []):
            head = _rule_head(namespace, shown_name(policy.name, root), rule)
            kind = semantics.rule_kind(head.name)
            if kind is not None and head.plain and _is_boolean(rule):
                never = "fails" if kind == "failure" else "warns"
                lines.append(
                    f"{head.file}:{head.line}: {head.name} is a boolean rule: conftest counts it"
                    f" as passed, it never {never}; write {head.name} contains msg if {{ ... }}"
                )
    return tuple(lines)


def shown_name(name: str, root: Path | None) -> str:
    """A policy's name relative to the repository, when it lies inside it."""
    if root is None or not Path(name).is_absolute():
        return name
    path = Path(name)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else name


def _is_boolean(rule: dict[str, Any]) -> bool:
    """A complete rule without a value (`deny if ...`) or with a literal true/false."""
    compr = rule.get("Spec", {}).get("head", {}).get("Compr")
    if not isinstance(compr, dict):
        return False
    assign = compr.get("assign")
    return assign is None or "Bool" in (assign.get("value") or {})


def _refusal(head: RuleHead) -> str:
    if head.head == "Compr" and not head.valued:
        return (
            f"{head.file}:{head.line}: rule is using 'if' keyword without 'contains' keyword "
            f"(in Rego v1 `{head.name}[msg] if` builds an object): "
            f"write `{head.name} contains msg if {{ ... }}`"
        )
    return (
        f"{head.file}:{head.line}: rule '{head.name}' must be a set of messages: "
        f"write `{head.name} contains msg if {{ ... }}`"
    )


# Called with (namespace, rule, "file:line") before each rule is evaluated.
RuleHook = Callable[[str, str, str], None]


class EmbeddedEvaluator:
    """Evaluate documents in process with regorus. Build once; `evaluate` is cheap per document.

    `stopped` maps (namespace, rule) to why that rule is not evaluated any more
    (each document gets that RuleError); `on_rule` hears of each rule about to run.
    `options`: conftest's --show-builtin-errors and --trace (see `EngineOptions`).
    """

    def __init__(
        self,
        source: PolicySource,
        *,
        stopped: Mapping[tuple[str, str], str] | None = None,
        on_rule: RuleHook | None = None,
        options: EngineOptions | None = None,
    ) -> None:
        self._source = source
        self._file = extensions.FileSlot()
        self._compiled = Compiled(source, tests=False, file_slot=self._file)
        self._split: Compiled | None = None  # built when a builtin error first needs it
        self._input = "{}"
        self._packages = conftest_packages(self._compiled.heads)
        self.namespaces: tuple[str, ...] = tuple(sorted(self._packages))
        # Definitions of deny/violation/warn rules per namespace: conftest's test count.
        self._definitions = {
            ns: sum(1 for h in self._compiled.heads if h.namespace == ns and h.name in p.rules)
            for ns, p in self._packages.items()
        }
        self._stopped = dict(stopped or {})
        self._on_rule = on_rule
        self._options = options or EngineOptions()
        self._queries: list[QueryTrace] = []
        if self._options.trace:
            self._compiled.enable_trace()
        self._where = {
            (h.namespace, h.name): f"{h.file}:{h.line}" for h in reversed(self._compiled.heads)
        }
        self._check_statically()

    def _check_statically(self) -> None:
        """Evaluate every rule once on `{}` so unsafe variables fail now, not per document."""
        self._compiled.engine.set_input_json("{}")
        for package in self._packages.values():
            names = package.rules + ((semantics.EXCEPTION_RULE,) if package.has_exception else ())
            for rule in names:
                if (package.namespace, rule) in self._stopped:
                    continue
                self._announce(package.namespace, rule)
                try:
                    self._compiled.eval_rule(f"data.{package.namespace}.{rule}")
                except RuntimeError:
                    continue  # depends on the input: reported per document
        if self._options.trace:
            self._compiled.evaluation_trace()  # what the load check evaluated: not a query's

    def _announce(self, namespace: str, rule: str) -> None:
        if self._on_rule is not None:
            self._on_rule(namespace, rule, self._where.get((namespace, rule), "?"))

    def select(self, namespaces: Sequence[str] | None) -> tuple[str, ...]:
        """The namespaces to evaluate (conftest's globs expanded; unknown ones select none)."""
        return semantics.select_namespaces(
            namespaces, defined=self._compiled.defined, with_rules=self.namespaces
        )

    def evaluate(
        self,
        documents: Sequence[Any],
        *,
        namespaces: Sequence[str] | None,
        files: Sequence[FileInfo | None] | None = None,
    ) -> list[Outcome]:
        selected = self.select(namespaces)
        infos = list(files) if files is not None else [None] * len(documents)
        return [self._document(d, selected, f) for d, f in zip(documents, infos, strict=True)]

    def evaluate_json(
        self, text: str, selected: tuple[str, ...], file: FileInfo | None = None
    ) -> Outcome:
        """One document given as JSON text (already checked to be JSON)."""
        self._input = text
        try:
            self._compiled.engine.set_input_json(text)
        except RuntimeError as exc:
            return _unusable(
                f"the document cannot be given to Rego as input: {engine_message(exc)}"
            )
        return self._rules(selected, file)

    def _document(self, document: Any, selected: tuple[str, ...], file: FileInfo | None) -> Outcome:
        problem = self._set_input(document)
        if problem is not None:
            return _unusable(problem)
        return self._rules(selected, file)

    def _rules(self, selected: tuple[str, ...], file: FileInfo | None) -> Outcome:
        self._file.value = file
        self._queries = []
        found: list[RuleResult | RuleError] = []
        passed: list[tuple[str, int]] = []
        for namespace in selected:
            values: list[Any] = []
            found.extend(self._namespace(self._packages[namespace], values))
            excepted = sum(
                1
                for r in found
                if r.namespace == namespace and isinstance(r, RuleResult) and r.kind == "exception"
            )
            count = semantics.successes(self._definitions[namespace], values, excepted)
            passed += [(namespace, count)] if count else []
        return Outcome(
            tuple(r for r in found if isinstance(r, RuleResult)),
            tuple(r for r in found if isinstance(r, RuleError)),
            tuple(self._queries),
            tuple(passed),
        )

    def _set_input(self, configuration: Any) -> str | None:
        """Hand the document to regorus; a reason if it cannot be (e.g. NaN is not JSON)."""
        try:
            text = json.dumps(configuration, default=str, allow_nan=False)
            self._input = text
            self._compiled.engine.set_input_json(text)
        except (ValueError, RuntimeError) as exc:
            return f"the document cannot be given to Rego as input: {engine_message(exc)}"
        return None

    def _namespace(self, package: Package, values: list[Any]) -> Iterator[RuleResult | RuleError]:
        """The package's results for the current input; `values` gets each rule's value."""
        exceptions: Any = None
        if package.has_exception:
            exceptions = yield from self._rule(package.namespace, semantics.EXCEPTION_RULE)
        for rule in package.rules:
            matches = semantics.exception_matches(exceptions, rule)
            if matches:
                yield from semantics.exception_results(package.namespace, rule, matches)
                continue
            value = yield from self._rule(package.namespace, rule)
            if value is not None:
                values.append(value)
                yield from semantics.rule_results(package.namespace, rule, value)

    def _rule(self, namespace: str, rule: str) -> Generator[RuleError, None, Any]:
        """The rule's value, or None: after yielding the RuleError it raised, or when a
        builtin failed and show_builtin_errors is off (the rule is undefined, as in OPA)."""
        stopped = self._stopped.get((namespace, rule))
        if stopped is not None:
            yield RuleError(namespace, rule, stopped)
            return None
        self._announce(namespace, rule)
        query = f"data.{namespace}.{rule}"
        try:
            value = self._compiled.eval_rule(query)
        except RuntimeError as exc:
            message = engine_message(exc)
            ignored = not self._options.show_builtin_errors and is_builtin_error(message)
            note = "undefined: a builtin failed (ignored without --show-builtin-errors)"
            self._trace(query, True, f"{note}: {message}" if ignored else f"error: {message}")
            if not ignored:
                yield RuleError(namespace, rule, message)
            # Only the failing definition fails: the others' results stand.
            return self._by_definition(namespace, rule)
        passed = not (isinstance(value, list) and value) or rule == semantics.EXCEPTION_RULE
        self._trace(query, passed, _describe(value))
        return value

    def _by_definition(self, namespace: str, rule: str) -> Any:
        """A rule whose evaluation failed, one definition at a time: OPA leaves only a
        body whose builtin failed undefined, and a rule that regorus cannot evaluate
        (an unsupported builtin) is an error of its definition, not of its siblings."""
        if self._split is None:
            self._split = Compiled(self._source, tests=False, file_slot=self._file, split=True)
        names = (self._split.split_names or {}).get((namespace, rule), [])
        if len(names) < 2:
            return None
        self._split.engine.set_input_json(self._input)
        values = []
        for name in names:
            try:
                values.append(self._split.eval_rule(f"data.{namespace}.{name}"))
            except (RuntimeError, PolicyError):
                continue  # this definition is the one that failed
        members = [v for v in values if isinstance(v, list)]
        if members:
            return list({json.dumps(m, sort_keys=True): m for v in members for m in v}.values())
        return next((v for v in values if v != "<undefined>"), None)

    def _trace(self, query: str, passed: bool, line: str) -> None:
        if self._options.trace:
            lines, outputs = self._compiled.evaluation_trace()
            self._queries.append(QueryTrace(query, passed, (*lines, line), tuple(outputs)))


def _describe(value: Any) -> str:
    """A rule's value in one line, for --trace."""
    if value == "<undefined>":
        return "undefined"
    text = json.dumps(value, default=str)
    text = text if len(text) <= 200 else text[:197] + "..."
    if not isinstance(value, list):
        return f"{text} (not a set or array: passes)"
    return f"{len(value)} result{'s' if len(value) != 1 else ''}: {text}"


def _unusable(problem: str) -> Outcome:
    return Outcome((), (RuleError("*", "*", problem),))
