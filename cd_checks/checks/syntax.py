"""Syntax checks by file kind, and the one parse each file gets.

YAML goes through yamllint (its rules and config honoured) and is then
composed once with libyaml, keeping the node tree for locating findings.
JSON, TOML, INI and NGINX (crossplane) parse errors become findings with
line and column; Ansible INI inventories are not INI, they are read the way
Ansible reads them (`cd_checks.rollout.inventory`). INI and the other kinds
conftest reads (Dockerfiles, Terraform/HCL, dotenv, properties, XML, JSONC,
ignore files) are parsed by `cd_checks.parsers` into conftest's shapes, each
kind named after its conftest parser. An NGINX file's
includes are resolved as nginx does (`cd_checks.nginx`): a missing file or a
loop is a finding at the include line, and the file as nginx reads it goes
to the nginx policy set. The parsed documents are returned for the schema
and policy checks. Bad bytes (binary, invalid
UTF-8, alias bombs, deep nesting, files too large to lint) become findings,
never exceptions.
"""

from __future__ import annotations

import configparser
import json
import posixpath
import re
import sys
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from cd_checks import bounded, parsers
from cd_checks.checks import yamllint_run
from cd_checks.documents import Parsed, to_json_compatible
from cd_checks.findings import Finding, Severity
from cd_checks.nginx import Layout
from cd_checks.rollout.inventory import ignored_in_directory

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXTENSIONS = {
    ".yml": "yaml",
    ".yaml": "yaml",
    ".json": "json",
    ".toml": "toml",
    ".ini": "ini",
}
# `.cfg` is INI only for these well-known names: haproxy.cfg or a Nagios
# object file is not INI, and would fail an INI parse.
INI_NAMES = frozenset({"ansible.cfg", "setup.cfg", "tox.cfg", "pip.cfg", "mypy.cfg"})
# Ansible inventories by name and place, as Ansible's docs and kubespray lay them out:
# `hosts`, `hosts.ini`, `inventory*.ini`, any `.ini` under inventory/ or inventories/.
INVENTORY_DIRS = frozenset({"inventory", "inventories"})
INVENTORY_NAME_PREFIXES = ("hosts", "inventory")
# Suffixes a file named by `rollout.inventory` or ansible.cfg keeps its own kind for.
STRUCTURED_SUFFIXES = frozenset({".yml", ".yaml", ".json", ".toml"})
VARS_DIRS = frozenset({"group_vars", "host_vars"})
# Kinds found by conftest's own naming rules (`parsers.parser_for`), after every rule above:
# Dockerfile*, *.tf, .env, .gitignore, ... (YAML, JSON, TOML and INI keep the rules above).
CONFTEST_KINDS = frozenset({"dockerfile", "dotenv", "hcl1", "hcl2", "ignore", "jsonc"})
CONFTEST_KINDS |= {"edn", "properties", "xml"}
# conftest reads any `dockerfile.*` as a Dockerfile; in a repository `dockerfile.py` is a
# module, `Dockerfile.j2` a template and `Dockerfile.dockerignore` BuildKit's ignore file.
NOT_DOCKERFILE = frozenset(
    {".py", ".go", ".rs", ".js", ".ts", ".rb", ".sh", ".md", ".txt", ".rst", ".j2", ".jinja"}
    | {".jinja2", ".tmpl", ".tpl", ".template", ".bak", ".orig", ".swp", ".json", ".yml"}
    | {".yaml", ".toml", ".lock", ".dockerignore"}
)
# Files beside the group_vars/host_vars files that are notes or leftovers, not variables.
NOT_VARS_SUFFIXES = frozenset({".md", ".txt", ".rst", ".j2", ".bak", ".orig", ".swp", ".sample"})


@dataclass(frozen=True)
class Source:
    """One file's bytes, read once. `path` is repo-relative posix, `full` the real path."""

    path: str
    full: Path
    data: bytes


@dataclass(frozen=True)
class SyntaxOptions:
    yamllint_conf: Any  # yamllint.config.YamlLintConfig
    max_lint_bytes: int
    lint: bool = True  # False: parse YAML without yamllint (documents for a combined input)
    documents: bool = True  # False: no schema or policy reads the file; YAML values not kept
    nginx: Layout | None = None  # NGINX includes and context; None: each file alone


def finding(
    source: Source,
    line: int | None,
    column: int | None,
    rule: str,
    message: str,
    severity: Severity = "error",
) -> Finding:
    return Finding(source.path, line, column, "syntax", rule, severity, message)


def kind_of(path: str, inventories: Collection[str] = ()) -> str | None:
    """The file kind by name (NGINX files are chosen by globs, elsewhere).

    `inventories` are the repo-relative files and directories named as Ansible
    inventories by `rollout.inventory` or an ansible.cfg (see `named_inventories`).
    """
    if is_inventory(path, inventories):
        return "inventory"
    name = path.rsplit("/", 1)[-1]
    if name in INI_NAMES:
        return "ini"
    kind = EXTENSIONS.get(Path(name).suffix.lower())
    if kind is None and (is_ansible_vars(path) or is_prometheus_rules(path)):
        return "yaml"
    if kind is None:
        return _named_kind(name.lower())
    return kind


def _named_kind(name: str) -> str | None:
    kind = parsers.parser_for(name)
    suffix = Path(name).suffix
    if kind == "dockerfile" and name.startswith("dockerfile.") and suffix in NOT_DOCKERFILE:
        kind = "ignore" if suffix == ".dockerignore" else None
    return kind if kind in CONFTEST_KINDS else None


def is_ansible_vars(path: str) -> bool:
    """A group_vars/ or host_vars/ file Ansible reads as YAML though it has no `.yml`.

    Right in the directory a file is named after its group or host, dots and all
    (`group_vars/web`, `host_vars/db1.example.com`); in a group's or host's own
    directory Ansible reads files without an extension (`group_vars/web/vault`).
    Hidden files, editor backups and notes are not read.
    """
    parts = path.split("/")
    name = parts[-1]
    if len(parts) < 2 or name.startswith(".") or name.endswith("~"):
        return False
    if parts[-2] in VARS_DIRS:
        return Path(name).suffix.lower() not in NOT_VARS_SUFFIXES
    return bool(VARS_DIRS & set(parts[:-2])) and Path(name).suffix == ""


def is_prometheus_rules(path: str) -> bool:
    """A Prometheus rule file named `.rules` (`alert.rules`, `prometheus/node.rules`).

    udev, polkit and audit `.rules` files are no YAML: only a name or a directory that
    says Prometheus makes one a rule file.
    """
    parts = path.lower().split("/")
    name = parts[-1]
    if not name.endswith(".rules"):
        return False
    return "prometheus" in parts[:-1] or "alert" in name or "record" in name


def is_inventory(path: str, named: Collection[str] = ()) -> bool:
    """True for an Ansible INI inventory (YAML, JSON and TOML ones keep their own kind)."""
    parts = path.split("/")
    suffix = Path(parts[-1]).suffix.lower()
    if suffix in STRUCTURED_SUFFIXES or VARS_DIRS & set(parts[:-1]):
        return False
    if path in named:
        return True
    for directory in named:
        inside = path.removeprefix(directory.rstrip("/") + "/")
        if inside != path:  # in a named directory: the files Ansible reads there
            return not any(ignored_in_directory(part) for part in inside.split("/"))
    by_name = parts[-1].lower().startswith(INVENTORY_NAME_PREFIXES)
    in_inventory_dir = bool(INVENTORY_DIRS & set(parts[:-1]))
    if suffix == ".ini":
        return by_name or in_inventory_dir
    # Without a suffix only where an inventory lives: a `hosts` file under a role's
    # files/ is more likely an /etc/hosts than an inventory.
    return suffix == "" and by_name and (len(parts) == 1 or in_inventory_dir)


def named_inventories(root: Path, configured: str | None, paths: Iterable[str]) -> tuple[str, ...]:
    """Inventories named by `rollout.inventory` and by `inventory =` in each ansible.cfg.

    ansible.cfg paths are relative to the file's own directory and may be a
    comma-separated list, as Ansible reads them; paths outside the repository
    are left out.
    """
    named = [configured] if configured else []
    for path in paths:
        if path.rsplit("/", 1)[-1] == "ansible.cfg":
            base = posixpath.dirname(path)
            named += [posixpath.join(base, entry) for entry in _cfg_inventories(root / path)]
    inside = (posixpath.normpath(entry) for entry in named)
    return tuple(
        dict.fromkeys(e for e in inside if not e.startswith(("/", "../", "~")) and e != "..")
    )


def _cfg_inventories(full: Path) -> list[str]:
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        parser.read_string(full.read_text("utf-8"))
        value = parser.get("defaults", "inventory", fallback="")
    except (OSError, UnicodeDecodeError, configparser.Error):
        return []  # a broken ansible.cfg is reported by its own INI check
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def parse(source: Source, kind: str, options: SyntaxOptions) -> tuple[Parsed | None, list[Finding]]:
    """Check the syntax of `source` as `kind`; return its documents (None when unusable)."""
    if b"\0" in source.data[:8192]:
        return None, [finding(source, None, None, "binary", f"binary file, not {kind}")]
    nul = source.data.find(b"\0")
    if nul >= 0:  # past the first 8 KB that tell binary files apart
        line, column = _position_of_offset(source.data, nul)
        return None, [
            finding(source, line, column, "binary", f"a NUL byte: binary data, not {kind}")
        ]
    try:
        text = source.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position_of_offset(source.data, exc.start)
        return None, [finding(source, line, column, "encoding", f"invalid UTF-8: {exc.reason}")]
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return PARSERS[kind](source, text, options)
    except RecursionError:
        return None, [finding(source, None, None, "too-deep", "nesting too deep to parse")]
    except bounded.ParseProblem as problem:
        return None, [_problem(source, problem)]


def _problem(source: Source, problem: bounded.ParseProblem) -> Finding:
    return finding(source, problem.line, problem.column, problem.rule, problem.message)


def node_trees(source: Source, kind: str, max_bytes: int) -> tuple[yaml.Node | None, ...]:
    """The node trees `parse` keeps to place findings, composed again from the same bytes
    (documents that came from a worker process or the result cache have none); () when
    the file has none (not YAML or JSON, too large, unreadable as YAML)."""
    if kind not in ("yaml", "json", "hcl2") or (kind == "yaml" and len(source.data) > max_bytes):
        return ()
    try:
        text = source.data.decode("utf-8").removeprefix("\ufeff")
        if kind == "json":
            return (_json_nodes(text),)
        if kind == "hcl2":
            return (_hcl2_tree(text, parsers.parse_text("hcl2", text)[0]),)
        return tuple(d.node if d.problem is None else None for d in bounded.read_yaml(text))
    except (UnicodeDecodeError, yaml.YAMLError, bounded.ParseProblem, RecursionError):
        return ()
    except parsers.ParseError:
        return ()


def _position_of_offset(data: bytes, offset: int) -> tuple[int, int]:
    before = data[:offset]
    line_start = before.rfind(b"\n") + 1
    return before.count(b"\n") + 1, len(before[line_start:].decode("utf-8", "replace")) + 1


def parse_yaml(
    source: Source, text: str, options: SyntaxOptions
) -> tuple[Parsed | None, list[Finding]]:
    # Composed and measured before yamllint: its pure-Python scanner takes minutes
    # on deep flow nesting that libyaml refuses in a millisecond.
    try:
        read = bounded.read_yaml(text)
    except yaml.MarkedYAMLError as exc:
        return None, _yaml_syntax_error(source, text, options, exc)
    except yaml.YAMLError as exc:  # a character YAML does not allow
        return None, [_problem(source, bounded.reader_problem(exc, text))]
    problems = [d.problem for d in read if d.problem is not None]
    # A huge file's node trees would outlive their use (its findings go unlocated), and a
    # file no schema or policy reads needs none: they go before yamllint's scan, so a
    # worker holds one file's parse at a time.
    keep = options.documents and len(source.data) <= options.max_lint_bytes
    nodes = tuple(d.node if keep and d.problem is None else None for d in read)
    values = tuple(d.value if options.documents else None for d in read)
    del read
    too_deep = any(_is_too_deep(problem) for problem in problems)
    findings = _yamllint(source, text, options) if options.lint and not too_deep else []
    if any(f.rule == "syntax" for f in findings):
        return None, findings
    findings += [_problem(source, problem) for problem in problems]
    return Parsed("yaml", values, nodes), findings


def _yaml_syntax_error(
    source: Source, text: str, options: SyntaxOptions, error: yaml.MarkedYAMLError
) -> list[Finding]:
    """yamllint says what libyaml refused in its words; libyaml's words when it does not."""
    findings = _yamllint(source, text, options) if options.lint else []
    if any(f.rule == "syntax" for f in findings):
        return findings
    mark = error.problem_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    return [*findings, finding(source, line, column, "syntax", error.problem or str(error))]


def _is_too_deep(problem: bounded.ParseProblem | None) -> bool:
    return problem is not None and problem.rule == "too-deep"


def _yamllint(source: Source, text: str, options: SyntaxOptions) -> list[Finding]:
    if len(source.data) > options.max_lint_bytes:
        return [_too_large(source, options.max_lint_bytes)]
    found = []
    try:
        # `yamllint.linter.run`'s answer, scanning the text once instead of twice.
        problems = yamllint_run.problems(text, options.yamllint_conf, source.path)
    except yaml.YAMLError as exc:  # a character PyYAML's reader refuses and libyaml took
        return [_problem(source, bounded.reader_problem(exc, text))]
    for problem in problems:
        severity: Severity = "error" if problem.level == "error" else "warning"
        rule = problem.rule or "syntax"
        message = problem.desc
        if not problem.rule:  # yamllint reports a parse error as "syntax error: ... (syntax)"
            message = message.removeprefix("syntax error: ").removesuffix(" (syntax)")
        found.append(finding(source, problem.line, problem.column, rule, message, severity))
    return found


def _too_large(source: Source, limit: int) -> Finding:
    size_mb, limit_mb = len(source.data) / 2**20, limit / 2**20
    return finding(
        source,
        None,
        None,
        "too-large",
        f"{size_mb:.1f} MB is over files.max_size_mb ({limit_mb:g}): "
        "parsed, but yamllint's style rules were not run",
        "warning",
    )


def parse_json(
    source: Source, text: str, options: SyntaxOptions
) -> tuple[Parsed | None, list[Finding]]:
    if not text.strip():
        return None, [finding(source, 1, 1, "syntax", "empty file: expected a JSON value")]
    try:
        document, duplicates = bounded.load_json(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one value a line (NDJSON): a document each, as conftest
            return parse_with_parser("json", source, text)
        return None, [finding(source, exc.lineno, exc.colno, "syntax", exc.msg)]
    found = [_problem(source, duplicate) for duplicate in duplicates]
    return Parsed("json", (document,), (_json_nodes(text),)), found


def _json_nodes(text: str) -> yaml.Node | None:
    """JSON is (almost) YAML: compose it to locate nodes; None where libyaml disagrees."""
    try:
        return yaml.compose(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return None


_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_toml(
    source: Source, text: str, options: SyntaxOptions
) -> tuple[Parsed | None, list[Finding]]:
    try:
        document = bounded.load_toml(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line, column = (int(match[1]), int(match[2])) if match else (None, None)
        return None, [
            finding(source, line, column, "syntax", _TOML_POSITION.sub("", message).strip())
        ]
    return Parsed("toml", (to_json_compatible(document),)), []


def parse_ini(
    source: Source, text: str, options: SyntaxOptions
) -> tuple[Parsed | None, list[Finding]]:
    """INI as conftest reads it (`cd_checks.parsers.text`): typed values, keys keep their case."""
    return parse_with_parser("ini", source, text)


def parse_with_parser(kind: str, source: Source, text: str) -> tuple[Parsed | None, list[Finding]]:
    """A kind `cd_checks.parsers` reads: its documents, or its parse error as a finding."""
    try:
        documents = parsers.parse_text(kind, text, source.path)
    except parsers.NotRead as exc:
        message = f"not checked: {exc.message}"
        return None, [finding(source, exc.line, exc.column, "not-checked", message, "warning")]
    except parsers.ParseError as exc:
        return None, [finding(source, exc.line, exc.column, "syntax", exc.message)]
    if kind == "hcl2":  # a policy result's `path` lands on its block's or attribute's line
        return Parsed(kind, tuple(documents), (_hcl2_tree(text, documents[0]),)), []
    return Parsed(kind, tuple(documents)), []


def _hcl2_tree(text: str, document: Any) -> yaml.Node:
    """A node tree of the HCL2 document whose marks are the HCL lines, for `Parsed.locate`."""
    from cd_checks.parsers.hcl import hcl2_lines

    return _located(document, (), hcl2_lines(text), (1, 1))


def _located(
    value: Any,
    path: tuple[str | int, ...],
    where: dict[tuple[str | int, ...], tuple[int, int]],
    parent: tuple[int, int],
) -> yaml.Node:
    here = where.get(path, parent)
    mark = yaml.Mark("", 0, here[0] - 1, here[1] - 1, None, 0)
    if isinstance(value, dict):
        pairs = [
            (
                _located(str(key), (*path, key), where, here),
                _located(item, (*path, key), where, here),
            )
            for key, item in value.items()
        ]
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs, mark, mark)
    if isinstance(value, list):
        items = [_located(item, (*path, i), where, here) for i, item in enumerate(value)]
        return yaml.SequenceNode("tag:yaml.org,2002:seq", items, mark, mark)
    return yaml.ScalarNode("tag:yaml.org,2002:str", str(value), mark, mark)


def _conftest_kind(
    kind: str,
) -> Callable[[Source, str, SyntaxOptions], tuple[Parsed | None, list[Finding]]]:
    return lambda source, text, options: parse_with_parser(kind, source, text)


def parse_inventory(
    source: Source, text: str, options: SyntaxOptions
) -> tuple[Parsed | None, list[Finding]]:
    """An Ansible inventory, read by ansible-core's own inventory plugins.

    Without ansible-core (a validate-only install, no `rollout` extra) the file
    is read by cd-checks' reader of the same rules, so it is still checked and
    never reported as an INI error; no finding nags about the missing extra,
    since its verdict rarely differs (`cd_checks.rollout.inventory`).
    """
    from cd_checks.errors import CdChecksError
    from cd_checks.rollout import inventory

    try:
        found = inventory.read_static(source.full)
    except inventory.InventoryError as exc:
        line = exc.problem.line
        return None, [finding(source, line, 1 if line else None, "inventory", exc.problem.message)]
    except CdChecksError as exc:
        return None, [finding(source, None, None, "inventory", str(exc))]
    if found is None:  # a script or plugin config: nothing to read without running it
        return Parsed("inventory", ()), []
    return Parsed("inventory", (to_json_compatible(inventory.to_document(found)),)), []


def reads_as_nginx(head: bytes) -> bool:
    """Whether a file's first directive is NGINX's: lowercase, not Apache's `<VirtualHost>`
    or `ServerName`, not an INI `[section]` (supervisor's conf.d), not YAML or JSON."""
    for raw in head.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        return re.match(r"[a-z_][a-z0-9_]*(?:[\s;{]|$)", line) is not None
    return True  # comments only: nothing any program would read


# A file whose top level has none of these is a fragment included inside `http {}`
# (a conf.d site file); it is checked in that context.
NGINX_MAIN_CONTEXT = frozenset({"http", "events", "stream", "mail", "user", "worker_processes"})


def parse_nginx(
    source: Source, text: str, options: SyntaxOptions
) -> tuple[Parsed | None, list[Finding]]:
    loose = _crossplane(source.full, check_ctx=False)
    errors = _nginx_errors(source, loose)
    if errors:
        return None, errors
    top_level = {d["directive"] for d in loose["parsed"]}
    if not top_level or top_level & NGINX_MAIN_CONTEXT:
        checked = _crossplane(source.full, check_ctx=True)
        directives = checked["parsed"]
    else:
        checked, directives = _parse_fragment(text)
    errors = _nginx_errors(source, checked)
    if errors:
        return None, errors
    parsed = Parsed("nginx", ({"directives": _conftest_shape(directives)},))
    if options.nginx is None:
        return parsed, []
    # Users' policies get the file alone (as conftest parses it); the nginx set gets
    # it as nginx reads it: includes spliced in, inside the nginx.conf that includes it.
    view = options.nginx.view(source.path, loose["parsed"])
    problems = [finding(source, p.line, None, p.rule, p.message, p.severity) for p in view.problems]
    return replace(parsed, in_context=Parsed("nginx", view.documents)), problems


def _crossplane(path: Path, *, check_ctx: bool) -> dict[str, Any]:
    from cd_checks.parsers import nginx

    return nginx.parse_file(path, check_ctx=check_ctx)


# Where an included fragment may belong: a conf.d site file (http), a snippet
# included in a server block (location ...), a stream proxy (stream).
FRAGMENT_CONTEXTS = (("http",), ("http", "server"), ("stream",))


def _parse_fragment(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Parse a fragment in the first context where its directives are allowed.

    crossplane only checks a directive's arguments in a context it knows, and
    `server` at the top of a file is not one. The wrapper opens on line 1, so
    every line number stays the file's own. When no context fits, the errors
    of the first (http) are reported.
    """
    first: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
    for context in FRAGMENT_CONTEXTS:
        checked = _crossplane_text(
            " ".join(f"{c} {{" for c in context) + " " + text + "\n" + "}" * len(context) + "\n"
        )
        directives = checked["parsed"]
        for _ in context:
            directives = directives[0]["block"] if directives else []
        placement = [e for e in checked["errors"] if "not allowed here" in e["error"]]
        if not placement:
            return checked, directives
        first = first or (checked, directives)
    assert first is not None
    return first


def _crossplane_text(text: str) -> dict[str, Any]:
    from cd_checks.parsers import nginx

    return nginx.parse_text(text, check_ctx=True)


def _nginx_errors(source: Source, config: dict[str, Any]) -> list[Finding]:
    return [
        finding(source, e.get("line"), None, "syntax", _nginx_message(e["error"]))
        for e in config["errors"]
    ]


def _nginx_message(message: str) -> str:
    # crossplane appends " in /abs/path:LINE"; the finding already carries both.
    return re.sub(r" in \S+:\d+$", "", message)


def _conftest_shape(directives: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from cd_checks.parsers import nginx

    return nginx.conftest_shape(directives)


PARSERS: dict[str, Callable[[Source, str, SyntaxOptions], tuple[Parsed | None, list[Finding]]]] = {
    "yaml": parse_yaml,
    "json": parse_json,
    "toml": parse_toml,
    "ini": parse_ini,
    "inventory": parse_inventory,
    "nginx": parse_nginx,
    **{kind: _conftest_kind(kind) for kind in sorted(CONFTEST_KINDS)},
}
