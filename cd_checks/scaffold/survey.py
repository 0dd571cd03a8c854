"""What a repository holds, for `cd-checks init`: a survey of its files by content.

Each candidate file is read once and recognised by what it contains, not only
by its name: NGINX configs by their directives, Prometheus rule files by
`groups[].rules[].expr`, Ansible playbooks by plays with `hosts`, inventories
by parsing them as inventories, JSON schemas by trying them on the files
their name suggests, a conftest `policy/` directory by its Rego. The survey
also finds what must not be checked as YAML (Jinja or Helm templates) and
directories with a `cd-checks.yml` of their own (another repository root).
It reads files and writes nothing; turning the survey into files is
`cd_checks.scaffold.render`'s job.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cd_checks import files as repo_files
from cd_checks.builtin_policies import BUILTIN_SETS
from cd_checks.config import CONFIG_NAME, DEFAULT_NGINX_GLOBS
from cd_checks.errors import CdChecksError

SNIFF_BYTES = 256 * 1024
YAML_SUFFIXES = (".yml", ".yaml")
YAMLLINT_FILES = (".yamllint", ".yamllint.yaml", ".yamllint.yml")
# Words that make an inventory group a staging or a production group (as the
# `pipeline` policy set reads stage names by default).
STAGING_WORDS = ("staging", "stage", "stg")
PRODUCTION_WORDS = ("production", "prod")
PLAYBOOK_NAMES = ("site.yml", "site.yaml", "deploy.yml", "deploy.yaml", "main.yml", "playbook.yml")
IMPORT_PLAYBOOK = ("import_playbook", "ansible.builtin.import_playbook")
INVENTORY_NAMES = ("hosts", "hosts.ini", "inventory", "inventory.ini", "hosts.yml", "hosts.yaml")
INVENTORY_DIRS = ("inventory", "inventories")
NGINX_DIRS = ("nginx", "sites-available", "sites-enabled", "conf.d", "snippets")
_NGINX = re.compile(
    r"^\s*(?:(?:http|server|upstream|events|stream|location\s[^{;]*)\s*\{"
    r"|(?:listen|server_name|proxy_pass|worker_processes|ssl_certificate|server_tokens)"
    r"\s[^;{]*;)",
    re.MULTILINE,
)
_TEMPLATE = re.compile(r"\{\{|\{%")
_REGO_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)", re.MULTILINE)
_REGO_V0_HEAD = re.compile(r"^\s*(?:deny|violation|warn|exception)\w*\s*\[[^\]]*\]\s*\{", re.M)
_TESTINFRA = re.compile(r"def test_\w+\([^)]*\bhost\b|import testinfra|testinfra\.")


@dataclass(frozen=True)
class SchemaUse:
    """A JSON schema and the files it describes (found by name, confirmed by content)."""

    schema: str
    globs: tuple[str, ...]
    files: int
    failing: int  # files that do not validate against it today: real findings


@dataclass(frozen=True)
class PolicyDir:
    """An existing conftest-style policy directory."""

    paths: tuple[str, ...]
    data: tuple[str, ...]
    namespaces: tuple[str, ...]
    rego_version: str
    has_tests: bool


@dataclass(frozen=True)
class RolloutGuess:
    """A rollout the repository can run today: its inventory's groups and its playbook."""

    inventory: str
    staging: str
    production: str
    playbook: str
    testinfra: str | None


@dataclass(frozen=True)
class YamlStyle:
    """Where the repository's YAML, without a yamllint config, differs from yamllint's
    defaults in the two ways common style guides differ: longer lines (long PromQL,
    URLs, shell) and sequences not indented under their key (PyYAML, kubectl)."""

    line_length: int | None = None  # a max that fits today's files, when 80 does not
    indent_sequences: str | None = None  # "consistent" or "whatever", when `true` does not


@dataclass(frozen=True)
class Survey:
    """What `cd-checks init` found; paths are repo-relative posix."""

    files: tuple[str, ...]
    kinds: Mapping[str, tuple[str, ...]]  # builtin policy set -> the files it fits
    alertmanager: tuple[str, ...] = ()
    inventories: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    other_roots: tuple[str, ...] = ()  # directories with a cd-checks.yml of their own
    schemas: tuple[SchemaUse, ...] = ()
    policy: PolicyDir | None = None
    rollout: RolloutGuess | None = None
    yamllint: str | None = None
    yaml_style: YamlStyle = YamlStyle()
    notes: tuple[str, ...] = field(default=())


# --- the survey -----------------------------------------------------------------------------


def survey(root: Path) -> Survey:
    """Look at every file git knows in `root` (or every file, outside git)."""
    everything = repo_files.select(root).paths
    other_roots = _other_roots(everything)
    own = tuple(p for p in everything if not _under_any(p, other_roots))
    documents = _yaml_documents(root, own)
    kinds = _kinds(root, own, documents)
    notes: list[str] = []
    inventories, groups = _inventories(root, own, documents, notes)
    schemas, unused = _schemas(root, own, documents)
    yamllint = next((n for n in YAMLLINT_FILES if n in own), None)
    parsed = [p for p, d in documents.items() if d is not _TEMPLATE_MARK]
    notes += [f"{s}: no files found that it describes; map them under schema:" for s in unused]
    return Survey(
        files=own,
        kinds=kinds,
        alertmanager=tuple(p for p, d in documents.items() if _is_alertmanager(d)),
        inventories=inventories,
        templates=tuple(p for p, d in documents.items() if d is _TEMPLATE_MARK),
        other_roots=other_roots,
        schemas=schemas,
        policy=_policy_dir(root, own),
        rollout=_rollout(root, own, kinds.get("ansible", ()), documents, groups),
        yamllint=yamllint,
        yaml_style=_yaml_style(root, parsed) if yamllint is None else YamlStyle(),
        notes=tuple(notes),
    )


def _other_roots(paths: Sequence[str]) -> tuple[str, ...]:
    """Directories below the root holding their own cd-checks.yml: not this config's files."""
    found = sorted(p.rsplit("/", 1)[0] for p in paths if p.endswith("/" + CONFIG_NAME))
    return tuple(d for d in found if not any(d.startswith(o + "/") for o in found if o != d))


def _under_any(path: str, directories: Iterable[str]) -> bool:
    return any(path.startswith(d + "/") for d in directories)


def _read(root: Path, path: str) -> str | None:
    try:
        with open(root / path, "rb") as handle:
            data = handle.read(SNIFF_BYTES)
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


# A YAML file that does not parse and holds template markers (Jinja, Helm).
_TEMPLATE_MARK: Any = object()


def _yaml_documents(root: Path, paths: Sequence[str]) -> dict[str, Any]:
    """The first non-empty document of each YAML file; _TEMPLATE_MARK for templates."""
    from cd_checks.checks import syntax

    options = syntax.SyntaxOptions(yamllint_conf=None, max_lint_bytes=0, lint=False)
    documents: dict[str, Any] = {}
    for path in paths:
        # As validate reads them: `group_vars/web` and `alert.rules` are YAML too.
        if syntax.kind_of(path) != "yaml" or path.rsplit("/", 1)[-1] in YAMLLINT_FILES:
            continue
        try:
            data = (root / path).read_bytes()
        except OSError:
            continue
        source = syntax.Source(path, root / path, data)
        parsed, _ = syntax.parse(source, "yaml", options)
        if parsed is None:
            if _TEMPLATE.search(data.decode("utf-8", "replace")):
                documents[path] = _TEMPLATE_MARK
            continue
        documents[path] = next((d for d in parsed.documents if d is not None), None)
    return documents


# --- file kinds -----------------------------------------------------------------------------


def _kinds(
    root: Path, paths: Sequence[str], documents: Mapping[str, Any]
) -> dict[str, tuple[str, ...]]:
    tests: dict[str, Callable[[str, Any], bool]] = {
        "monitoring": lambda _, d: _is_rule_file(d),
        "ansible": _is_ansible,
        "patches": lambda _, d: _is_patch(d),
        "agents": lambda _, d: _is_agent(d),
    }
    kinds = {
        name: tuple(p for p, d in documents.items() if d is not _TEMPLATE_MARK and test(p, d))
        for name, test in tests.items()
    }
    kinds["nginx"] = tuple(p for p in paths if _is_nginx(root, p))
    return {name: found for name, found in kinds.items() if found}


def _is_rule_file(doc: Any) -> bool:
    if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
        doc = doc.get("spec")  # prometheus-operator's resource: the groups under spec
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        return False
    rules = [r for g in groups if isinstance(g, dict) for r in g.get("rules") or ()]
    return any(
        isinstance(r, dict) and "expr" in r and ("alert" in r or "record" in r) for r in rules
    )


def _is_alertmanager(doc: Any) -> bool:
    return isinstance(doc, dict) and "route" in doc and "receivers" in doc


def _is_playbook(doc: Any) -> bool:
    if not isinstance(doc, list) or not doc or not all(isinstance(p, dict) for p in doc):
        return False
    return all("hosts" in play or any(k in play for k in IMPORT_PLAYBOOK) for play in doc)


# Where Ansible reads tasks and variables: the ansible set's default places.
_ANSIBLE_PLACES = repo_files.matcher(BUILTIN_SETS["ansible"].files)


def _is_ansible(path: str, doc: Any) -> bool:
    return _ANSIBLE_PLACES.match_file(path) or _is_playbook(doc)


def _is_patch(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("packages"), list)
        and "target" in doc
        and ("reboot" in doc or "window" in doc)
    )


def _is_agent(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and "agent" in doc
        and "version" in doc
        and ("artifacts" in doc or "current_version" in doc)
    )


def _is_nginx(root: Path, path: str) -> bool:
    pure = PurePosixPath(path)
    named = pure.suffix == ".conf" or (not pure.suffix and pure.parent.name in NGINX_DIRS)
    if not named:
        return False
    text = _read(root, path)
    return text is not None and not _TEMPLATE.search(text) and bool(_NGINX.search(text))


# --- globs ----------------------------------------------------------------------------------


def default_globs(set_name: str) -> tuple[str, ...]:
    """The files a builtin set (or the NGINX parser, for "nginx") applies to by default."""
    if set_name == "nginx":
        return DEFAULT_NGINX_GLOBS
    return BUILTIN_SETS[set_name].files


def globs_for(
    chosen: Sequence[str], everything: Sequence[str], defaults: Sequence[str]
) -> tuple[str, ...] | None:
    """Globs that match exactly `chosen` among `everything`; None when `defaults` already do."""
    if set(_matching(defaults, everything)) == set(chosen):
        return None
    return derive_globs(chosen, everything)


def derive_globs(chosen: Sequence[str], everything: Sequence[str]) -> tuple[str, ...]:
    """Short globs for `chosen`: `dir/*.suffix` where every such file of the directory is
    chosen, the file's own path where not."""
    wanted = set(chosen)
    by_place: dict[tuple[str, str], list[str]] = {}
    for path in everything:
        pure = PurePosixPath(path)
        by_place.setdefault((str(pure.parent), pure.suffix), []).append(path)
    globs: list[str] = []
    for (directory, suffix), members in sorted(by_place.items()):
        picked = [p for p in members if p in wanted]
        if not picked:
            continue
        if len(picked) == len(members) and len(picked) > 1:
            globs.append(_anchored(f"{directory}/*{suffix}" if directory != "." else f"*{suffix}"))
        else:
            globs.extend(_anchored(p) for p in picked)
    return tuple(globs)


def _anchored(glob: str) -> str:
    # A gitwildmatch pattern without a slash matches at any depth: anchor it at the root.
    return glob if "/" in glob.rstrip("/") else "/" + glob


def _matching(globs: Sequence[str], everything: Sequence[str]) -> list[str]:
    spec = repo_files.matcher(globs)
    return [p for p in everything if spec.match_file(p)]


# --- inventories and the rollout ------------------------------------------------------------


def _inventory_candidates(
    root: Path, paths: Sequence[str], documents: Mapping[str, Any]
) -> list[str]:
    configured = _ansible_cfg_inventory(root, paths)
    found: list[str] = []
    for path in paths:
        pure = PurePosixPath(path)
        if {"group_vars", "host_vars"} & set(pure.parts):
            continue
        in_dir = any(part in INVENTORY_DIRS for part in pure.parts[:-1])
        yaml_shaped = path in documents and _is_yaml_inventory(documents[path])
        if (
            path in configured
            or yaml_shaped
            or pure.name in INVENTORY_NAMES
            or (in_dir and pure.suffix in ("", ".ini", ".cfg", ".txt"))
        ):
            found.append(path)
    return found


def _ansible_cfg_inventory(root: Path, paths: Sequence[str]) -> set[str]:
    if "ansible.cfg" not in paths:
        return set()
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(root / "ansible.cfg", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return set()
    value = parser.get("defaults", "inventory", fallback="")
    return {v.strip().removeprefix("./") for v in value.split(",") if v.strip()}


def _is_yaml_inventory(doc: Any) -> bool:
    if not isinstance(doc, dict) or not doc:
        return False
    groups = [g for g in doc.values() if isinstance(g, dict)]
    return len(groups) == len(doc) and all(
        set(g) <= {"hosts", "children", "vars"} and ({"hosts", "children"} & set(g)) for g in groups
    )


def _inventories(
    root: Path, paths: Sequence[str], documents: Mapping[str, Any], notes: list[str]
) -> tuple[tuple[str, ...], dict[str, Mapping[str, tuple[str, ...]]]]:
    from cd_checks.rollout import inventory

    parsed: dict[str, Mapping[str, tuple[str, ...]]] = {}
    for path in _inventory_candidates(root, paths, documents):
        try:
            parsed[path] = inventory.load(root / path).groups
        except CdChecksError as exc:
            notes.append(f"{path}: looks like an inventory but does not parse: {exc}")
    return tuple(parsed), parsed


def _words(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower()))


def _group(groups: Mapping[str, tuple[str, ...]], words: Sequence[str]) -> str | None:
    """The group named after these words: an exact name first, then one containing a word."""
    populated = [g for g, hosts in groups.items() if hosts and g != "all"]
    exact = [g for g in populated if g.lower() in words]
    loose = [g for g in populated if _words(g) & set(words)]
    return next(iter(sorted(exact) + sorted(loose)), None)


def _rollout(
    root: Path,
    paths: Sequence[str],
    ansible: Sequence[str],
    documents: Mapping[str, Any],
    groups: Mapping[str, Mapping[str, tuple[str, ...]]],
) -> RolloutGuess | None:
    playbook = _main_playbook([p for p in ansible if _is_playbook(documents.get(p))])
    if playbook is None:
        return None
    for path, found in groups.items():
        staging, production = _group(found, STAGING_WORDS), _group(found, PRODUCTION_WORDS)
        if staging and production and staging != production:
            return RolloutGuess(path, staging, production, playbook, _testinfra_dir(root, paths))
    return None


def _main_playbook(playbooks: Sequence[str]) -> str | None:
    def rank(path: str) -> tuple[int, int, str]:
        name = path.rsplit("/", 1)[-1]
        known = PLAYBOOK_NAMES.index(name) if name in PLAYBOOK_NAMES else len(PLAYBOOK_NAMES)
        return known, path.count("/"), path

    ranked = sorted(playbooks, key=rank)
    if not ranked:
        return None
    if len(ranked) > 1 and rank(ranked[0])[0] == len(PLAYBOOK_NAMES):
        return None  # several playbooks, none the obvious entry point: do not guess
    return ranked[0]


def _testinfra_dir(root: Path, paths: Sequence[str]) -> str | None:
    """The directory of testinfra tests (`def test_x(host)`), if there is exactly one."""
    found = {
        p.rsplit("/", 1)[0] + "/"
        for p in paths
        if "/" in p
        and PurePosixPath(p).name.startswith("test_")
        and p.endswith(".py")
        and _TESTINFRA.search(_read(root, p) or "")
    }
    return found.pop() if len(found) == 1 else None


# --- schemas --------------------------------------------------------------------------------


def _schema_files(root: Path, paths: Sequence[str]) -> list[str]:
    found = []
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        if re.search(r"\.schema\.(json|ya?ml)$", name):
            found.append(path)
        elif path.endswith(".json") and "/schemas/" in f"/{path}":
            text = _read(root, path) or ""
            if "json-schema.org" in text[:2000]:
                found.append(path)
    return found


def _data_dirs_for(schema_path: str) -> set[str]:
    """Directory names a schema's file name suggests: service.schema.json -> service(s)."""
    stem = PurePosixPath(schema_path).name.split(".")[0].lower()
    names = {stem, stem + "s", stem + "es"}
    if stem.endswith("y"):
        names.add(stem[:-1] + "ies")
    return names


def _schemas(
    root: Path, paths: Sequence[str], documents: Mapping[str, Any]
) -> tuple[tuple[SchemaUse, ...], tuple[str, ...]]:
    from cd_checks.checks import schema as schema_check

    schemas = _schema_files(root, paths)
    referenced = _referenced_schemas(root, schemas)
    uses: list[SchemaUse] = []
    unused: list[str] = []
    for schema_path in schemas:
        dirs = _data_dirs_for(schema_path)
        data = [
            p
            for p in documents
            if documents[p] is not _TEMPLATE_MARK and PurePosixPath(p).parent.name.lower() in dirs
        ]
        use = _try_schema(root, schema_path, data, paths, schema_check) if data else None
        if use is not None:
            uses.append(use)
        elif schema_path not in referenced:
            unused.append(schema_path)
    return tuple(uses), tuple(unused)


def _referenced_schemas(root: Path, schemas: Sequence[str]) -> set[str]:
    from cd_checks.checks import schema as schema_check

    referenced: set[str] = set()
    for path in schemas:
        try:
            targets = schema_check.referenced_files(root / path, root=root)
        except Exception:  # noqa: BLE001 - an unreadable schema refers to nothing
            continue
        for target in targets:
            try:
                referenced.add(target.resolve().relative_to(root.resolve()).as_posix())
            except ValueError:
                continue
    return referenced


def _try_schema(
    root: Path, schema_path: str, data: Sequence[str], paths: Sequence[str], schema_check: Any
) -> SchemaUse | None:
    """Map the schema to `data` when at least one of the files is valid against it."""
    try:
        validator = schema_check.build_validator(root / schema_path, root=root)
    except schema_check.SchemaProblem:
        return None
    from cd_checks.checks import syntax

    options = syntax.SyntaxOptions(yamllint_conf=None, max_lint_bytes=0, lint=False)
    rule = schema_check.SchemaRule(("**",), schema_path, validator)
    failing = 0
    for path in data:
        source = syntax.Source(path, root / path, (root / path).read_bytes())
        parsed, _ = syntax.parse(source, "yaml", options)
        if parsed is None or schema_check.check(path, parsed, rule):
            failing += 1
    if failing == len(data):
        return None  # not one file fits: the name match was a coincidence
    return SchemaUse(schema_path, derive_globs(data, paths), len(data), failing)


# --- policies -------------------------------------------------------------------------------


def _policy_dir(root: Path, paths: Sequence[str]) -> PolicyDir | None:
    rego = [p for p in paths if p.startswith("policy/") and p.endswith(".rego")]
    if not rego:
        return None
    tests = [p for p in rego if p.endswith("_test.rego")]
    texts = {p: _read(root, p) or "" for p in rego if p not in tests}
    packages = sorted({m for t in texts.values() for m in _REGO_PACKAGE.findall(t)})
    v0 = any(_REGO_V0_HEAD.search(t) and "import rego.v1" not in t for t in texts.values())
    data_files = [
        p for p in paths if p.startswith("policy/") and p.endswith((".json", ".yml", ".yaml"))
    ]
    data_dirs = sorted({p.rsplit("/", 1)[0] + "/" for p in data_files})
    return PolicyDir(
        paths=("policy/",),
        data=tuple(data_dirs),
        namespaces=tuple(packages) if packages and packages != ["main"] else ("main",),
        rego_version="v0" if v0 else "v1",
        has_tests=bool(tests),
    )


# --- YAML style -----------------------------------------------------------------------------

_TOO_LONG = re.compile(r"\((\d+) > \d+ characters\)")


def _yaml_style(root: Path, paths: Sequence[str]) -> YamlStyle:
    """How yamllint's defaults must bend to fit the files as they are (errors only)."""
    texts = {p: (root / p).read_text("utf-8", "replace") for p in paths}
    problems = _yamllint_errors(texts, "")
    longest = [
        int(m.group(1))
        for r, d in problems
        if r == "line-length"
        for m in [_TOO_LONG.search(d)]
        if m
    ]
    indent = None
    if any(rule == "indentation" for rule, _ in problems):
        for choice in ("consistent", "whatever"):
            relaxed = f"  indentation: {{indent-sequences: {choice}}}\n"
            if not any(r == "indentation" for r, _ in _yamllint_errors(texts, relaxed)):
                indent = choice
                break
    return YamlStyle(-(-max(longest) // 10) * 10 if longest else None, indent)


def _yamllint_errors(texts: Mapping[str, str], rules: str) -> list[tuple[str, str]]:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig(f"extends: default\nrules:\n{rules}" if rules else "extends: default")
    return [
        (problem.rule, problem.desc)
        for text in texts.values()
        for problem in linter.run(text, conf)
        if problem.level == "error" and problem.rule is not None
    ]
