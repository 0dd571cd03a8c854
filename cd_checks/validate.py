"""`cd-checks validate`: choose files, check each once, gather one Report.

The flow is one way: files -> parse (syntax) -> schema -> policy -> Report.
Each file is read and parsed once; its documents feed the schema and
policy checks. Results are cached by content (the file's bytes plus a
fingerprint of everything that can change a verdict; entries authenticated,
never taken from the checkout: `cd_checks.result_cache`), and work is spread
over the CPU cores when enough files need checking to pay for the workers.
This module never prints or exits; what the user should know besides the
report (a cache not used) goes to the `warn` callback of `run`.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cd_checks import __version__, bounded, files, guard, nginx, result_cache, state_dir
from cd_checks import config as config_module
from cd_checks.checks import changes, rollout, schema, syntax
from cd_checks.checks.policy import (
    BuiltinScope,
    Entry,
    Matcher,
    PolicyRunner,
    PolicySetup,
    whole_documents,
    within,
)
from cd_checks.config import Config
from cd_checks.documents import Parsed
from cd_checks.errors import CdChecksError, ConfigError, InputError, PolicyError
from cd_checks.findings import Finding, Report
from cd_checks.rego import PolicySource, boolean_rule_warnings

YAMLLINT_FILES = (".yamllint", ".yamllint.yaml", ".yamllint.yml")
# Below this many files and bytes, starting worker processes costs more than it saves (bench/).
PARALLEL_THRESHOLD = 48
PARALLEL_BYTES = 2 * 2**20
# A worker is handed files largest first, a chunk at a time: a big file alone, small
# ones up to this many bytes or files together (a round trip per file costs ~0.1 ms).
CHUNK_BYTES = 64 * 2**10
CHUNK_FILES = 16
# A file to check fully (True), or to read for the cross-file checks only (False).
Task = tuple[str, bool]
# conftest's name for standard input, kept as the file name of its findings.
STDIN = "-"
# Bumped when what a cached entry holds changes (2: applied conftest exceptions are kept;
# 3: findings carry policy-result metadata, and successes are kept).
FINDINGS_FORMAT = 3
# A line that may open a play (`- hosts: web`, `- import_playbook: x.yml`).
PLAY_LINE = re.compile(rb"^[ \t-]*(?:hosts|(?:ansible\.builtin\.)?import_playbook)[ \t]*:", re.M)


@dataclass(frozen=True)
class ValidateOptions:
    """What the user asked for; the CLI builds it from flags."""

    root: Path
    paths: tuple[str, ...] = ()
    config_path: Path | None = None
    changed_since: str | None = None
    combine: bool | None = None
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    engine: str | None = None
    rego_version: str | None = None
    builtin: tuple[str, ...] = ()
    use_cache: bool = True
    # The result cache's HMAC key (result_cache.secret); without one there is no cache.
    cache_key: bytes | None = None
    jobs: int | None = None
    today: datetime.date = field(default_factory=datetime.date.today)
    inventory: Path | None = None  # used instead of rollout.inventory (`rollout run --inventory`)
    # The clock freeze windows are read against (`changes.<type>.freeze`).
    now: datetime.datetime = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
    )
    # conftest test's flags (empty/None: not given). -p/--policy and -d/--data replace
    # policy.paths and policy.data; `parser` reads every file as that kind.
    policies: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    parser: str | None = None
    ignore: str | None = None  # a regular expression: listed files it matches are skipped
    stdin: bytes | None = None  # the text of `-`, checked as `stdin_filename`
    stdin_filename: str = STDIN
    trace: bool = False
    show_builtin_errors: bool = False
    strict: bool = False  # OPA's strict mode for the user's policies (`rego.strict`)
    # conftest.toml's settings (`config.load_conftest`): below cd-checks.yml's own keys.
    conftest: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckSpec:
    """Everything a (worker) process needs to check a file; picklable."""

    root: Path
    yamllint_text: str
    yamllint_path: str | None
    max_lint_bytes: int
    disabled: frozenset[str]
    nginx_globs: tuple[str, ...]
    template_globs: tuple[str, ...]
    schemas: tuple[tuple[tuple[str, ...], str], ...]
    config_path: str
    policy: PolicySetup | None
    want_documents: bool
    cache_dir: Path | None = None
    fingerprint: str = ""
    cache_key: bytes = b""
    inventories: tuple[str, ...] = ()  # named by rollout.inventory and ansible.cfg files
    nginx_roots: tuple[str, ...] = ()  # the repository's nginx.conf files (`cd_checks.nginx`)
    # A builtin set's schema that only change types ask for: the types' files it reads.
    schema_within: tuple[tuple[str, tuple[str, ...]], ...] = ()
    parser: str | None = None  # --parser: the kind of every file that is read
    named: frozenset[str] = frozenset()  # files named on the command line


class Checker:
    """The per-process state: yamllint config, schema validators, policy engines, cache."""

    def __init__(self, spec: CheckSpec) -> None:
        import yaml
        from yamllint.config import YamlLintConfig, YamlLintConfigError

        self.spec = spec
        try:
            # yamllint resolves `extends:` and `ignore-from-file:` paths against the
            # current directory; cd-checks runs as if started at the repository root.
            # yamllint reads its config with PyYAML unbounded: refuse a bomb first
            # (a syntax error it reports itself, in its words).
            with contextlib.suppress(yaml.YAMLError):
                bounded.load_yaml(spec.yamllint_text, bounded.SETTINGS)
            with _working_directory(spec.root):
                conf = YamlLintConfig(content=spec.yamllint_text)
        except (YamlLintConfigError, OSError, bounded.ParseProblem, RecursionError) as exc:
            where = spec.yamllint_path or "yamllint defaults"
            raise ConfigError(f"{where}: invalid yamllint config: {exc}") from exc
        self.yamllint_conf = conf
        self.nginx = files.matcher(spec.nginx_globs)
        self.templates = files.matcher(spec.template_globs)
        # With the default globs, a file under conf.d/ or sites-*/ may be Apache's.
        defaults = spec.nginx_globs == config_module.DEFAULT_NGINX_GLOBS
        self._nginx_places = files.matcher(config_module.NGINX_PLACES) if defaults else None
        self._kinds: dict[str, str | None] = {}
        self.syntax = syntax.SyntaxOptions(conf, spec.max_lint_bytes, nginx=self._nginx_layout())
        self.schema_rules, self.schema_problems = schema.load_rules(
            spec.root, spec.schemas, spec.config_path
        )
        limits = dict(spec.schema_within)
        self.schema_specs: list[tuple[Matcher, schema.SchemaRule]] = [
            (within(r.globs, limits.get(r.schema_path, ())), r) for r in self.schema_rules
        ]
        self.policy = PolicyRunner(spec.policy) if spec.policy else None
        self.cache = (
            result_cache.Cache(spec.cache_dir, spec.fingerprint, spec.cache_key)
            if spec.cache_dir
            else None
        )

    def kind(self, path: str) -> str | None:
        """The kind of file `path` is checked as; None: not checked at all."""
        if path not in self._kinds:
            self._kinds[path] = self._kind(path)
        return self._kinds[path]

    def _kind(self, path: str) -> str | None:
        return None if self.not_checked(path) else self._natural_kind(path) or self.spec.parser

    def _natural_kind(self, path: str) -> str | None:
        nginx = self.nginx.match_file(path) and self._reads_as_nginx(path)
        kind = "nginx" if nginx else syntax.kind_of(path, self.spec.inventories)
        if kind is not None and self.spec.parser is not None:
            return self.spec.parser  # --parser reads every file it would read as that kind
        return kind

    def not_checked(self, path: str) -> str | None:
        """Why `path` is not checked at all (the kind of file it is, a setting); None: it is.
        A file named on the command line with no kind is read as `--parser`'s kind."""
        if self.templates.match_file(path):
            # not what it renders to until rendered (`syntax.templates`)
            return "a template (syntax.templates), not what it renders to"
        kind = self._natural_kind(path)
        if kind is None and self.spec.parser is not None and path in self.spec.named:
            kind = self.spec.parser
        if kind is None:
            return f"no parser reads this kind of file (name one with --parser: {_parsers()})"
        if kind in self.spec.disabled:
            return f"syntax.disable turns {kind} files off"
        if kind == "yaml" and self.yamllint_conf.is_file_ignored(path):
            # yamllint's `ignore:` (e.g. Jinja templates named .yml)
            return "yamllint's ignore setting skips it"
        return None

    def _reads_as_nginx(self, path: str) -> bool:
        if self._nginx_places is None or self._nginx_places.match_file(path):
            return True
        try:
            with (self.spec.root / path).open("rb") as handle:
                return syntax.reads_as_nginx(handle.read(4096))
        except OSError:
            return True  # the check reports it unreadable

    def _nginx_layout(self) -> nginx.Layout:
        """NGINX includes and context. The nginx set reports a file's directives where
        that file is evaluated on its own, so an included site is not blamed twice."""
        from cd_checks.builtin_policies import BUILTIN_SETS

        package = BUILTIN_SETS["nginx"].package
        scopes = self.spec.policy.scopes if self.spec.policy else ()
        scope = next((s.reader(s.globs) for s in scopes if s.package == package), None)
        return nginx.Layout(
            self.spec.root,
            self.spec.nginx_roots,
            is_nginx=lambda p: self.kind(p) == "nginx",
            alone=lambda p: scope is not None and scope.match_file(p) and self.kind(p) == "nginx",
            max_bytes=self.spec.max_lint_bytes,
            documents=scope is not None,
        )

    def combined_reads(self, path: str) -> bool:
        """Whether the cross-file checks read this file's documents."""
        return self.policy is not None and self.policy.combined_reads(path)

    def cached(self, path: str, *, lint: bool = True) -> Checked | None:
        """The result cache's answer for one file (see `check`); None: it needs checking."""
        return self._guarded(path, lint=lint, from_cache=True)

    def check(self, path: str, *, lint: bool = True) -> Checked:
        """All checks of one file, read once; the cache (asked first, with `cached`) is
        given the result. With the documents the cross-file checks read, when they read it.

        `lint=False`: only the documents, for a file this run does not check (PR mode),
        parsed without linting; no findings but a failure's.
        Whatever one file raises is that file's finding and the run goes on
        (`cd_checks.guard`); a user error of the whole run stays one error line.
        """
        checked = self._guarded(path, lint=lint, from_cache=False)
        assert checked is not None  # only the cache misses
        return checked

    def _guarded(self, path: str, *, lint: bool, from_cache: bool) -> Checked | None:
        try:
            return self._check_file(path, lint=lint, from_cache=from_cache)
        except CdChecksError:
            raise
        except Exception as exc:  # noqa: BLE001 - one file's failure is that file's finding
            return Checked(path, [guard.finding_for(path, exc, full=self.spec.root / path)])

    def _check_file(self, path: str, *, lint: bool, from_cache: bool) -> Checked | None:
        kind = self.kind(path)
        if kind is None:
            return Checked(path, [])
        full = self.spec.root / path
        try:
            data = full.read_bytes()
        except OSError as exc:
            if not lint:
                raise
            message = f"cannot read: {exc.strerror or exc}"
            return Checked(
                path, [Finding(path, None, None, "syntax", "unreadable", "error", message)]
            )
        keep = self.combined_reads(path)
        digest = _digest(data) if keep else ""
        # An NGINX file's verdict also depends on the files it includes and is included in.
        context = self.syntax.nginx.inputs(path) if kind == "nginx" and self.syntax.nginx else b""
        key = self.cache.key(path, data + context) if self.cache else None
        if from_cache:
            hit = self.cache.lookup(key) if self.cache and key else None
            # An entry without the documents this run needs is checked again, keeping them.
            if hit is None or (keep and not hit.stored):
                return None
            return Checked(path, hit.findings if lint else [], hit.documents, digest)
        source = syntax.Source(path, full, data)
        if not lint:
            return Checked(path, [], _documents_of(self.documents_only(source, kind)), digest)
        findings, parsed = self._check(source, kind)
        documents = _documents_of(parsed) if keep else None
        if self.cache and key:
            self.cache.put(key, findings, documents=documents, keep_documents=keep)
        return Checked(path, findings, documents, digest)

    def check_stdin(self, name: str, data: bytes) -> Checked:
        """Standard input, checked as a file called `name` (conftest reads it as YAML
        unless --parser says otherwise); with its documents when the cross-file checks
        read them."""
        kind = self.spec.parser or syntax.kind_of(name) or "yaml"
        source = syntax.Source(name, self.spec.root / name, data)
        try:
            findings, parsed = self._check(source, kind)
        except CdChecksError:
            raise
        except Exception as exc:  # noqa: BLE001 - as a file's failure: its finding
            return Checked(name, [guard.finding_for(name, exc, full=source.full)])
        keep = parsed is not None and self.combined_reads(name)
        return Checked(name, findings, _documents_of(parsed) if keep else None, _digest(data))

    def documents_only(self, source: syntax.Source, kind: str) -> Parsed | None:
        """Parse without linting: the documents alone, for a file this run does not check."""
        return syntax.parse(source, kind, replace(self.syntax, lint=False))[0]

    def _check(self, source: syntax.Source, kind: str) -> tuple[list[Finding], Parsed | None]:
        schemas = [rule for spec, rule in self.schema_specs if spec.match_file(source.path)]
        policy = self.policy if self.policy and self.policy.reads(source.path) else None
        # A file no schema or policy reads is linted, and its documents are not kept.
        wanted = self.syntax if schemas or policy else replace(self.syntax, documents=False)
        parsed, findings = syntax.parse(source, kind, wanted)
        if parsed is None:
            return findings, None
        for rule in schemas:
            findings += schema.check(source.path, parsed, rule)
        if policy is not None:
            findings += policy.check(source.path, parsed)
        return findings, parsed


@dataclass(frozen=True)
class Checked:
    """One file's findings and, when the cross-file checks read the file, its documents
    (None: none to read, e.g. a syntax error) with the digest of the bytes they came from.
    Small and picklable: what a worker sends back, never a node tree."""

    path: str
    findings: list[Finding]
    documents: result_cache.Documents | None = None
    digest: str = ""


def _documents_of(parsed: Parsed | None) -> result_cache.Documents | None:
    return result_cache.Documents(parsed.kind, parsed.documents) if parsed is not None else None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# One Checker per worker process, built once by the pool initializer: the
# policy engines and validators are costly to build and cannot be pickled.
_WORKER: Checker | None = None


def _worker_init(spec: CheckSpec) -> None:
    global _WORKER
    _WORKER = Checker(spec)


def _worker_check(tasks: Sequence[Task]) -> list[Checked]:
    """The chunk's results (the main process asked the cache first: these are misses)."""
    assert _WORKER is not None
    return [_WORKER.check(path, lint=lint) for path, lint in tasks]


def run(options: ValidateOptions, *, warn: Callable[[str], None] | None = None) -> Report:
    """Validate the repository at `options.root`; raise CdChecksError on user errors.

    `warn` gets a line for what changes no verdict but the user should know
    (the result cache not used, or entries of it that failed verification).
    """
    if options.trace:  # the trace is written where the policies run: here, every file
        options = replace(options, use_cache=False, jobs=1)
    config = config_module.load(options.root, options.config_path)
    named_files = _named_files(options.root, options.paths)
    spec = replace(build_spec(config, options), named=named_files)
    paths = options.paths
    # Only `-` named: standard input is all there is to check, never the repository.
    stdin_only = options.stdin is not None and not paths
    # Named files that decide other files' verdicts (a hook passing the changed
    # files: a schema, a policy, the config) re-check everything, as in PR mode.
    if paths and _names_a_verdict_input(options.root, paths, _verdict_inputs(spec, config)):
        paths = ()
    everything = (
        files.Selection((), ())
        if stdin_only
        else files.select(options.root, paths=paths, include=config.include, exclude=config.exclude)
    )
    everything = _not_ignored(everything, options.ignore, named_files)
    selection = everything
    named = _named_inventories(config, everything.paths)
    spec = replace(spec, inventories=named, nginx_roots=_nginx_roots(config, options, everything))
    touched: set[str] | None = set(everything.paths) if paths else None
    if options.changed_since is not None:
        changed = files.select(
            options.root,
            paths=paths,
            include=config.include,
            exclude=config.exclude,
            changed_since=options.changed_since,
        )
        # A change to a schema, policy, data file or config can fail files the PR
        # did not touch: then every file is checked (the cache keeps that cheap).
        changed = _not_ignored(changed, options.ignore, named_files)
        touched = set(changed.paths)
        if not touched & _verdict_inputs(spec, config):
            selection = changed
    spec = _with_cache(spec, config, options, warn)
    if options.strict and spec.policy is not None and spec.policy.user is not None:
        from cd_checks.rego import strict

        strict.enforce(spec.policy.user, root=options.root)
    checker = Checker(spec)
    if warn is not None and spec.policy is not None and spec.policy.user is not None:
        # conftest counts a boolean deny as passed: say so once, when the policies load.
        for line in boolean_rule_warnings(spec.policy.user, root=options.root):
            warn(line)
    if warn is not None and not paths and not stdin_only:
        # The whole repository was listed, also in PR mode: a set that reads none of it
        # has globs that miss this layout. (Named files are only part of it.)
        for line in _idle_sets(checker, everything.paths):
            warn(line)
    candidates = [p for p in selection.paths if checker.kind(p) is not None]
    if selection is not everything and checker.syntax.nginx is not None:
        # PR mode: a changed snippet or nginx.conf changes the verdict of the sites it reaches.
        chosen = set(candidates)
        others = [p for p in everything.paths if p not in chosen and checker.kind(p) == "nginx"]
        if others:
            candidates += checker.syntax.nginx.dependents(selection.paths, others)
    # Cross-file policies see the whole repository, also in PR mode: the files this run
    # does not check are read for them too (from the cache when it has their documents).
    chosen = set(candidates)
    combined = [p for p in everything.paths if checker.kind(p) and checker.combined_reads(p)]
    tasks = [(p, True) for p in candidates] + [(p, False) for p in combined if p not in chosen]
    results = _check_all(checker, tasks, options.jobs)
    findings: list[Finding] = list(checker.schema_problems)
    for path, _ in tasks:
        findings += results[path].findings
    listed = set(selection.paths)
    for path in sorted(named_files & listed):
        why = checker.not_checked(path)
        findings += [_not_checked(path, why)] if why else []
    if paths and options.changed_since is None:
        findings += _empty_directories(options.root, paths, candidates)
    read = [results[p] for p in combined]
    if options.stdin is not None:  # conftest's `-`, named as --stdin-filename says
        piped = checker.check_stdin(options.stdin_filename, options.stdin)
        findings += piped.findings
        candidates.append(piped.path)
        read += [piped] if piped.documents is not None else []
    if checker.policy is not None and spec.want_documents:
        findings += checker.policy.check_combined(_entries(checker, read))
    if checker.cache is not None and checker.cache.rejected and warn is not None:
        warn(result_cache.rejected_warning(checker.cache.rejected))
    findings += [_escaping_link(p) for p in selection.escaping_links]
    findings += selection.problems
    if not stdin_only:  # the repository's own config is checked when it is what was named
        findings += _config_checks(config, spec, options, findings, everything.paths, touched)
    whole_repository = not paths and options.changed_since is None and not stdin_only
    findings = _apply_exceptions(findings, config, options.today, whole_repository)
    findings += _traces(checker)
    report = Report.build(findings, len(candidates), paths=candidates)
    namespaces = spec.policy.user_namespaces if spec.policy and spec.policy.user else None
    return replace(report, namespaces=tuple(namespaces or ()))


def _traces(checker: Checker) -> list[Finding]:
    """--trace's lines, as the policy check wrote them (`PolicyRunner.traces`)."""
    lines: list[str] = list(getattr(checker.policy, "traces", None) or [])
    return [Finding("", None, None, "policy", "trace", "trace", line) for line in lines]


def _config_checks(
    config: Config,
    spec: CheckSpec,
    options: ValidateOptions,
    findings: list[Finding],
    paths: Sequence[str],
    touched: set[str] | None,
) -> list[Finding]:
    """The rollout section's and the change types' findings."""
    reported = rollout.unparsed(findings)
    found = rollout.check(
        config, spec.config_path, changed=touched, reported=reported, inventory=options.inventory
    )
    found += changes.check(
        config,
        spec.config_path,
        paths=paths,
        changed=touched,
        changed_since=options.changed_since is not None,
        now=options.now,
        reported=reported,
        inventory=options.inventory,
    )
    return found


def parser_names() -> tuple[str, ...]:
    """The names --parser takes: conftest's parser names (`cd_checks.parsers`) that the
    syntax check reads, and nginx."""
    try:
        from cd_checks.parsers import PARSER_NAMES
    except ImportError:  # before the parsers module: the kinds cd-checks always read
        PARSER_NAMES = ("ini", "json", "toml", "yaml")
    return tuple(sorted(n for n in {*PARSER_NAMES, "nginx"} if n in syntax.PARSERS))


def _parsers() -> str:
    return ", ".join(parser_names())


def _named_files(root: Path, given: Sequence[str]) -> frozenset[str]:
    """The repo-relative paths of the files (not directories) named on the command line."""
    named = set()
    for path in given:
        full = root / path  # an absolute `path` stays as it is
        if not full.is_file():
            continue
        try:
            named.add(full.resolve().relative_to(root.resolve()).as_posix())
        except (ValueError, OSError):
            continue  # outside the repository: files.select reports it
    return frozenset(named)


def _not_ignored(
    selection: files.Selection, pattern: str | None, named: frozenset[str]
) -> files.Selection:
    """conftest's --ignore: listed files whose path the regular expression matches
    (anywhere in it) are skipped; a file named on the command line never is."""
    if not pattern:
        return selection
    try:
        ignored = re.compile(pattern)
    except re.error as exc:
        raise InputError(f"--ignore {pattern!r}: not a regular expression: {exc}") from exc
    kept = tuple(p for p in selection.paths if p in named or not ignored.search(p))
    return replace(selection, paths=kept)


def _empty_directories(root: Path, given: Sequence[str], checked: Sequence[str]) -> list[Finding]:
    """A warning for each directory named on the command line in which no file is
    checked (conftest says "no files found"): it is not passed as if it were clean."""
    found = []
    for path in given:
        full = root / path
        try:
            relative = full.resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError):
            continue  # outside the repository: files.select reports it
        if not full.is_dir() or relative == ".":
            continue
        if not any(p.startswith(relative + "/") for p in checked):
            why = f"no file in this directory is of a kind cd-checks reads ({_parsers()})"
            found.append(_not_checked(relative, why))
    return found


def _not_checked(path: str, why: str) -> Finding:
    message = f"not checked: {why}"
    return Finding(path, None, None, "syntax", "not-checked", "warning", message)


def _named_inventories(config: Config, paths: Sequence[str]) -> tuple[str, ...]:
    """The inventories `rollout:`, `defaults:` and each change type name, and ansible.cfg's."""
    sections = [config.section("rollout"), config.section("defaults")]
    sections += [t for t in config.section("changes").values() if isinstance(t, dict)]
    configured = [s.get("inventory") for s in sections if isinstance(s.get("inventory"), str)]
    named = [
        name
        for inventory in configured or [None]
        for name in syntax.named_inventories(config.root, inventory, paths)
    ]
    return tuple(dict.fromkeys(named))


def _with_cache(
    spec: CheckSpec,
    config: Config,
    options: ValidateOptions,
    warn: Callable[[str], None] | None,
) -> CheckSpec:
    """`spec` with the result cache, unless not wanted, without a key, or not to be trusted."""
    if not options.use_cache or not options.cache_key:
        return spec
    cache_dir = options.root / state_dir.NAME / "cache"
    refused = result_cache.refusal(options.root, cache_dir)
    if refused is not None:
        if warn is not None:
            warn(refused)
        return spec
    return replace(
        spec,
        cache_dir=cache_dir,
        fingerprint=fingerprint(spec, config),
        cache_key=options.cache_key,
    )


def _nginx_roots(
    config: Config, options: ValidateOptions, everything: files.Selection
) -> tuple[str, ...]:
    """The repository's nginx.conf files, in which an included file is looked up.
    A hook names only the changed files: then the repository is listed for them."""
    listed = everything.paths
    matched = files.matcher(config.nginx_globs)
    if options.paths and any(matched.match_file(p) for p in listed):
        listed = files.select(options.root, include=config.include, exclude=config.exclude).paths
    return nginx.roots(listed, matched.match_file)


def _idle_sets(checker: Checker, paths: Sequence[str]) -> list[str]:
    """A line for each builtin set that is on and reads no file of `paths`."""
    scopes = checker.spec.policy.scopes if checker.spec.policy else ()
    lines = []
    for scope in scopes:
        if _reads_any(checker, scope, paths):
            continue
        plays = " (nor a YAML file holding a play)" if scope.playbook_globs else ""
        keys = f"policy.builtin_files.{scope.name}"
        if scope.name == "nginx":  # its files must be read as NGINX first
            keys = f"syntax.nginx and {keys}"
        if scope.within:
            plays += f" among the files of the change types that ask for it ({_some(scope.within)})"
        lines.append(
            f"policy set {scope.name!r} is on but matches no file{plays}; its globs: "
            f"{_some(g for g in scope.globs if not g.startswith('!'))}; "
            f"set {keys} to where its files are, or turn the set off"
        )
    return lines


def _some(globs: Iterable[str], shown: int = 8) -> str:
    """The first globs of a set, enough to see where it looks (policies/README.md has all)."""
    listed = list(globs)
    more = f" and {len(listed) - shown} more" if len(listed) > shown else ""
    return ", ".join(listed[:shown]) + more


def _reads_any(checker: Checker, scope: BuiltinScope, paths: Sequence[str]) -> bool:
    read = scope.reader((*scope.globs, *scope.rule_globs()))
    if any(checker.kind(p) is not None for p in paths if read.match_file(p)):
        return True
    if not scope.playbook_globs:
        return False
    plays = scope.reader(scope.playbook_globs)
    candidates = (p for p in paths if plays.match_file(p) and checker.kind(p) == "yaml")
    return any(_may_hold_play(checker.spec.root / p) for p in candidates)


def _may_hold_play(full: Path) -> bool:
    """Whether a YAML file may be a playbook: a play's keys start a line (enough to
    not warn; the policy check reads the file properly)."""
    try:
        with full.open("rb") as handle:
            return PLAY_LINE.search(handle.read(1 << 16)) is not None
    except OSError:
        return False


def _check_all(checker: Checker, tasks: list[Task], jobs: int | None) -> dict[str, Checked]:
    """Every task's result, by path: the cache's answers first, here; the rest in worker
    processes when there is enough of it to pay for starting them."""
    results: dict[str, Checked] = {}
    if checker.cache is not None:
        for path, lint in tasks:
            found = checker.cached(path, lint=lint)
            if found is not None:
                results[path] = found
        tasks = [task for task in tasks if task[0] not in results]
    sizes = {path: _size(checker.spec.root / path) for path, _ in tasks}
    workers = min(jobs if jobs is not None else (os.cpu_count() or 1), len(tasks))
    enough = len(tasks) >= PARALLEL_THRESHOLD or sum(sizes.values()) >= PARALLEL_BYTES
    if workers <= 1 or not enough:
        results.update((path, checker.check(path, lint=lint)) for path, lint in tasks)
        return results
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_worker_init, initargs=(checker.spec,)
    ) as pool:
        pending = [pool.submit(_worker_check, chunk) for chunk in _chunks(tasks, sizes)]
        for future in as_completed(pending):
            results.update((c.path, c) for c in future.result())
    return results


def _chunks(tasks: list[Task], sizes: dict[str, int]) -> list[list[Task]]:
    """Tasks largest file first, in chunks of about CHUNK_BYTES: the big files are spread
    over the workers first and the small ones fill in, so all finish near the same time."""
    chunks: list[list[Task]] = []
    current: list[Task] = []
    weight = 0
    for task in sorted(tasks, key=lambda t: sizes[t[0]], reverse=True):
        current.append(task)
        weight += sizes[task[0]]
        if weight >= CHUNK_BYTES or len(current) >= CHUNK_FILES:
            chunks.append(current)
            current, weight = [], 0
    return chunks + [current] if current else chunks


def _size(full: Path) -> int:
    try:
        return full.stat().st_size
    except OSError:
        return 0  # the check reports it


def _entries(checker: Checker, checked: Sequence[Checked]) -> list[Entry]:
    """The combined input: each file's documents, placed again in the file when needed."""
    entries: list[Entry] = []
    for result in checked:
        if result.documents is None:
            continue
        documents = result.documents
        again = functools.partial(_trees_again, checker, result.path, documents.kind, result.digest)
        parsed = Parsed(documents.kind, documents.documents, reread=again)
        entries += whole_documents(result.path, parsed)
    return entries


def _trees_again(checker: Checker, path: str, kind: str, digest: str) -> tuple[Any, ...]:
    """The node trees of a file whose documents came from a worker or the cache, to place
    a cross-file finding; none when the file changed since (unplaced beats misplaced)."""
    full = checker.spec.root / path
    try:
        data = full.read_bytes()
    except OSError:
        return ()
    if _digest(data) != digest:
        return ()
    return syntax.node_trees(syntax.Source(path, full, data), kind, checker.spec.max_lint_bytes)


def _verdict_inputs(spec: CheckSpec, config: Config) -> set[str]:
    """Repo-relative paths of the files that decide other files' verdicts."""
    inputs = {*_inputs_of(spec), config.root / config.policy.exceptions}
    if config.source is not None:
        inputs.add(config.source)
    relative = set()
    for path in inputs:
        try:
            relative.add(path.resolve().relative_to(config.root.resolve()).as_posix())
        except ValueError:
            continue  # shipped policies, outside the repository
    return relative


def _names_a_verdict_input(root: Path, paths: Sequence[str], inputs: set[str]) -> bool:
    """True when one of the named files is a schema, policy, config or other verdict input."""
    for given in paths:
        full = root / given  # an absolute `given` stays as it is
        if not full.is_file():
            continue  # directories name what to check, not what decides
        try:
            relative = full.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue  # outside the repository: files.select reports it
        if relative in inputs:
            return True
    return False


def _escaping_link(path: str) -> Finding:
    return Finding(
        path,
        None,
        None,
        "syntax",
        "symlink-outside",
        "warning",
        "symbolic link points outside the repository; not followed",
    )


def _apply_exceptions(
    findings: list[Finding], config: Config, today: datetime.date, whole_repository: bool
) -> list[Finding]:
    from cd_checks import exceptions

    shown = config.policy.exceptions
    loaded, problems = exceptions.load(config.root / shown, display=shown)
    if not loaded and not problems:
        return findings
    kept = exceptions.apply(
        findings,
        loaded,
        today=today,
        exceptions_path=shown,
        report_unused=whole_repository,
        record=True,
    )
    return [*kept, *problems]


def build_spec(config: Config, options: ValidateOptions) -> CheckSpec:
    yamllint_path, yamllint_text = _yamllint_config(config)
    setup = _policy_setup(config, options)
    schemas = [(m.globs, m.schema) for m in config.schemas] + _builtin_schemas(config, options)
    return CheckSpec(
        root=config.root,
        yamllint_text=yamllint_text,
        yamllint_path=yamllint_path,
        max_lint_bytes=int(config.max_size_mb * 2**20),
        disabled=frozenset(config.syntax_disabled),
        nginx_globs=config.nginx_globs,
        template_globs=config.template_globs,
        schemas=tuple(schemas),
        config_path=_config_path(config),
        policy=setup,
        want_documents=bool(setup and PolicyRunner.wants(setup)),
        schema_within=_schema_within(config, options),
        parser=options.parser,
    )


def _config_path(config: Config) -> str:
    if config.source is None:
        return config_module.CONFIG_NAME
    try:
        return config.source.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(config.source)


def _yamllint_config(config: Config) -> tuple[str | None, str]:
    if config.yamllint:
        full = config.root / config.yamllint
        if not full.is_file():
            raise ConfigError(f"syntax.yamllint: file not found: {config.yamllint}")
        return config.yamllint, full.read_text("utf-8")
    for name in YAMLLINT_FILES:
        if (config.root / name).is_file():
            return name, (config.root / name).read_text("utf-8")
    return None, "extends: default"


def _enabled_sets(config: Config, options: ValidateOptions) -> list[str]:
    from cd_checks.builtin_policies import BUILTIN_SETS

    names = list(dict.fromkeys([*config.policy.builtin, *options.builtin]))
    unknown = [n for n in names if n not in BUILTIN_SETS]
    if unknown:
        known = ", ".join(sorted(BUILTIN_SETS))
        raise ConfigError(f"policy.builtin: unknown set {unknown[0]!r} (known: {known})")
    return names


def _builtin_schemas(config: Config, options: ValidateOptions) -> list[tuple[tuple[str, ...], str]]:
    from cd_checks.builtin_policies import BUILTIN_SETS, schema_path

    mapped = []
    for name in [*_enabled_sets(config, options), *_type_sets(config, options)]:
        path = schema_path(name)
        if path is not None:
            globs = config.policy.builtin_files.get(name, BUILTIN_SETS[name].files)
            mapped.append((tuple(globs), os.path.relpath(path, config.root)))
    return mapped


def _type_sets(config: Config, options: ValidateOptions) -> dict[str, tuple[str, ...]]:
    """The builtin sets only change types ask for (`changes.<type>.policy`, not on in
    `policy.builtin`), each with the files of those types: the set reads only these."""
    enabled = set(_enabled_sets(config, options))
    return {n: g for n, g in changes.policy_sets(config).items() if n not in enabled}


def _schema_within(
    config: Config, options: ValidateOptions
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    from cd_checks.builtin_policies import schema_path

    limits = []
    for name, globs in _type_sets(config, options).items():
        path = schema_path(name)
        if path is not None:
            limits.append((os.path.relpath(path, config.root), globs))
    return tuple(limits)


def _policy_setup(config: Config, options: ValidateOptions) -> PolicySetup | None:
    from cd_checks.builtin_policies import BUILTIN_SETS, policies_dir, rule_ids

    policy = _with_flags(config, options)
    rego_version: Any = options.rego_version or policy.rego_version
    user = None
    if policy.paths:
        user = PolicySource(
            paths=tuple(config.root / p for p in policy.paths),
            data_paths=tuple(config.root / p for p in policy.data),
            rego_version=rego_version,
        )
    limited = _type_sets(config, options)
    sets = [*_enabled_sets(config, options), *limited]
    builtin = None
    scopes: list[BuiltinScope] = []
    if sets:
        base = policies_dir()
        library = (base / "lib",) if (base / "lib").is_dir() else ()
        builtin = PolicySource(
            paths=tuple(base / name for name in sets) + library,
            extra_data={"cd_checks": {"config": policy.builtin_data}},
        )
        owner = rule_ids()
        for name in sets:
            known = BUILTIN_SETS[name]
            globs = tuple(policy.builtin_files.get(name, known.files))
            plays = () if name in policy.builtin_files else known.playbook_files
            rules = tuple((r, s) for r, s in policy.rules.items() if owner.get(r) == name)
            scopes.append(
                BuiltinScope(
                    known.package,
                    known.combined_package,
                    globs,
                    plays,
                    name,
                    rules,
                    within=limited.get(name, ()),
                )
            )
    if user is None and builtin is None:
        return None
    all_namespaces = options.all_namespaces or policy.all_namespaces
    namespaces = None if all_namespaces else (options.namespaces or policy.namespaces)
    combine = policy.combine if options.combine is None else options.combine
    engine = options.engine or policy.engine
    setup = PolicySetup(user, namespaces, builtin, tuple(scopes), engine, combine)
    return _with_engine_options(setup, options)


# cd-checks.yml's `policy` keys and the conftest.toml keys (conftest's flag names) they take.
_CONFTEST_POLICY_KEYS = {
    "paths": "policy",
    "data": "data",
    "namespaces": "namespace",
    "all_namespaces": "all-namespaces",
    "combine": "combine",
    "rego_version": "rego-version",
}


def _with_flags(config: Config, options: ValidateOptions) -> config_module.PolicyConfig:
    """The policy settings after conftest's ways of giving them: the flags -p and -d
    replace policy.paths and policy.data; conftest.toml fills what cd-checks.yml leaves
    unsaid (flags > CONFTEST_* variables, which the CLI reads > cd-checks.yml >
    conftest.toml > defaults)."""
    said = config.raw.get("policy") or {}
    unsaid = {
        key: options.conftest[name]
        for key, name in _CONFTEST_POLICY_KEYS.items()
        if key not in said and name in options.conftest
    }
    for key in ("paths", "data", "namespaces"):
        if key in unsaid:
            unsaid[key] = tuple(unsaid[key])
    policy = replace(config.policy, **unsaid)
    if options.policies:
        policy = replace(policy, paths=options.policies)
    if options.data:
        policy = replace(policy, data=options.data)
    return policy


def _with_engine_options(setup: PolicySetup, options: ValidateOptions) -> PolicySetup:
    """--trace and --show-builtin-errors for the engine, when the policy check takes them
    (`cd_checks.rego.model.EngineOptions` on `PolicySetup.engine_options`)."""
    if not (options.trace or options.show_builtin_errors):
        return setup
    from cd_checks.rego import model

    # Guarded: the engine's options arrive with the engine's own change.
    engine_options: Any = getattr(model, "EngineOptions", None)
    if engine_options is None or "engine_options" not in {f.name for f in fields(setup)}:
        flag = "--trace" if options.trace else "--show-builtin-errors"
        raise PolicyError(f"{flag} is not supported by this cd-checks yet")
    chosen = engine_options(show_builtin_errors=options.show_builtin_errors, trace=options.trace)
    return replace(setup, engine_options=chosen)  # type: ignore[call-arg,unused-ignore]


def fingerprint(spec: CheckSpec, config: Config) -> str:
    """A digest of everything besides a file's own bytes that can change its findings."""
    import yamllint

    digest = hashlib.sha256()
    # ansible-core reads inventories: another release can change their verdict.
    versions = [
        __version__,
        FINDINGS_FORMAT,
        yamllint.__version__,
        _regorus_version(),
        _version_of("ansible-core"),
    ]
    digest.update(json.dumps(versions).encode())
    digest.update(json.dumps(config.raw, sort_keys=True, default=str).encode())
    # Paths are hashed relative to the repository (and to the shipped policies),
    # so a cache restored into another checkout directory still answers.
    shown = _portable(repr(replace(spec, cache_dir=None, fingerprint="", cache_key=b"")), spec.root)
    digest.update(shown.encode())
    for path in _inputs_of(spec):
        digest.update(b"\0" + _portable(path.as_posix(), spec.root).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError as exc:  # the loader that needs the file says so, as one error line
            digest.update(f"unreadable: {exc.strerror}".encode())
    return digest.hexdigest()


def _portable(text: str, root: Path) -> str:
    from cd_checks.builtin_policies import policies_dir

    return text.replace(str(root), "<repo>").replace(str(policies_dir()), "<builtin>")


def _yamllint_files(spec: CheckSpec) -> list[Path]:
    """The yamllint config file and the files it extends or reads ignores from."""
    import yaml

    files: list[Path] = []
    texts = [spec.yamllint_text]
    while texts:
        try:
            conf = bounded.load_yaml(texts.pop(), bounded.SETTINGS)
        except (yaml.YAMLError, ValueError):
            continue  # the Checker reports a broken yamllint config
        if not isinstance(conf, dict):
            continue
        named = [conf.get("extends")]
        ignore_from = conf.get("ignore-from-file")
        named += ignore_from if isinstance(ignore_from, list) else [ignore_from]
        for name in named:
            path = spec.root / name if isinstance(name, str) else None
            if path is not None and path.is_file() and path not in files:
                files.append(path)
                texts.append(path.read_text("utf-8", "replace"))
    if spec.yamllint_path:
        files.append(spec.root / spec.yamllint_path)
    return files


def _regorus_version() -> str:
    return _version_of("gordon-to-regorus")


def _version_of(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _inputs_of(spec: CheckSpec) -> list[Path]:
    suffixes = (".rego", ".json", ".yml", ".yaml")
    found: set[Path] = set(_yamllint_files(spec))
    for _, schema_path in spec.schemas:
        found.update(schema.referenced_files(spec.root / schema_path, root=spec.root))
    for source in (spec.policy.user, spec.policy.builtin) if spec.policy else ():
        for root in (*source.paths, *source.data_paths) if source else ():
            if root.is_file():
                found.add(root)
            elif root.is_dir():
                found.update(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes)
    return sorted(found)
