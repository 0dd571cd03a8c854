"""Load cd-checks.yml and validate it, once, against the schema shipped in the package.

Every later stage receives a frozen `Config`; nothing else reads the file.
An unknown key, a wrong type or a missing file is one `ConfigError` naming
the key and the file, and so is a path key naming something outside the
repository: a pull request chooses the config, and what cd-checks reads for
it (policies, their data, the yamllint config, the exceptions file) could
otherwise come from anywhere on the runner and show in a finding. This module
may not run checks or touch the network.
"""

from __future__ import annotations

import difflib
import json
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from cd_checks.errors import ConfigError

CONFIG_NAME = "cd-checks.yml"
# NGINX files by name and place: a plain nginx.conf anywhere, .conf files under an
# nginx/ directory, and the directories nginx.conf includes (Debian, Alpine, h5bp).
NGINX_PLACES = ("**/nginx.conf", "**/nginx/**/*.conf", "**/*.nginx.conf")
# Apache and supervisor use these directories too: a file matched only here is read
# as NGINX when its first directive is NGINX's (`cd_checks.checks.syntax.reads_as_nginx`).
NGINX_LAYOUT = (
    "**/conf.d/*.conf",
    "**/sites-available/*",
    "**/sites-enabled/*",
    "**/snippets/*.conf",
)
# Never NGINX as it stands: Jinja and other templates, files nginx's `*` skips
# (dotfiles: h5bp disables a site by its leading dot), notes and editor leftovers.
NGINX_NOT = (
    "!**/*.j2",
    "!**/*.jinja2",
    "!**/templates/**",
    "!**/.*",
    "!**/*.md",
    "!**/*.txt",
    "!**/*.orig",
    "!**/*.bak",
    "!**/*.dpkg-*",
    "!**/*~",
)
DEFAULT_NGINX_GLOBS = NGINX_PLACES + NGINX_LAYOUT + NGINX_NOT
# Templates are not what they render to: a Jinja `{% if %}` is no YAML or NGINX, so
# these are not checked at all (ansible-lint skips them; yamllint users list them in
# `ignore:`). A role's templates/ keeps the target's own name (`nginx.conf`,
# `app.yml`) as often as it adds `.j2`. `syntax.templates` replaces the list.
DEFAULT_TEMPLATE_GLOBS = (
    "**/*.j2",
    "**/*.j2.*",
    "**/*.jinja",
    "**/*.jinja2",
    "**/roles/**/templates/**",
)
DEFAULT_EXCEPTIONS_FILE = ".cd-checks-exceptions.yml"


@dataclass(frozen=True)
class SchemaMapping:
    globs: tuple[str, ...]
    schema: str


RuleSeverity = Literal["error", "warning", "off"]


@dataclass(frozen=True)
class RuleSetting:
    """A builtin rule as tuned in `policy.rules.<ID>`; None keeps the set's own choice."""

    severity: RuleSeverity | None = None
    files: tuple[str, ...] | None = None  # replaces the set's globs for this rule
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyConfig:
    paths: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ("main",)
    all_namespaces: bool = False
    combine: bool = False
    engine: str = "auto"
    rego_version: str = "v1"
    builtin: tuple[str, ...] = ()
    builtin_files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    builtin_data: dict[str, Any] = field(default_factory=dict)
    rules: dict[str, RuleSetting] = field(default_factory=dict)
    exceptions: str = DEFAULT_EXCEPTIONS_FILE


@dataclass(frozen=True)
class Config:
    """The validated configuration. `root` is the repository root all paths are relative to."""

    root: Path
    source: Path | None
    include: tuple[str, ...] = ("**/*",)
    exclude: tuple[str, ...] = ()
    max_size_mb: float = 5.0
    yamllint: str | None = None
    nginx_globs: tuple[str, ...] = DEFAULT_NGINX_GLOBS
    template_globs: tuple[str, ...] = DEFAULT_TEMPLATE_GLOBS
    syntax_disabled: tuple[str, ...] = ()
    schemas: tuple[SchemaMapping, ...] = ()
    policy: PolicyConfig = PolicyConfig()
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """A section not modelled here (rollout, audit, break_glass), as validated."""
        value = self.raw.get(name) or {}
        return dict(value)


def _schema() -> dict[str, Any]:
    text = resources.files("cd_checks").joinpath("config.schema.json").read_text("utf-8")
    return dict(json.loads(text))


def _where(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def validate_raw(raw: Any, source: str) -> dict[str, Any]:
    """Validate a parsed config document; raise one ConfigError naming key and file."""
    if raw is None:
        return {}
    _raise_first(_schema(), raw, source, ())
    _check_globs(raw, source)
    builtin_data = (raw.get("policy") or {}).get("builtin_data")
    if builtin_data is not None:
        from cd_checks.builtin_policies import config_schema_path

        settings = json.loads(config_schema_path().read_text("utf-8"))
        _raise_first(settings, builtin_data, source, ("policy", "builtin_data"))
    _check_rule_ids((raw.get("policy") or {}).get("rules") or {}, source)
    return dict(raw)


def _check_rule_ids(rules: dict[Any, Any], source: str) -> None:
    """`policy.rules` names rules the builtin sets define: a typo would tune nothing."""
    from cd_checks.builtin_policies import rule_ids

    known = sorted(rule_ids())
    for rule in rules:
        if rule in known:
            continue
        # Ids are upper case; `mon-005` is that id, not a near miss of it.
        guess = str(rule).upper()
        close = [guess] if guess in known else difflib.get_close_matches(guess, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (ids: policies/README.md)"
        raise ConfigError(f"{source}: unknown rule {rule!r} in policy.rules{hint}")


def _raise_first(
    schema: dict[str, Any], instance: Any, source: str, prefix: tuple[str, ...]
) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return
    where = [*prefix, *error.absolute_path]
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        known = sorted(_properties(schema, error.schema))
        unknown = sorted(set(error.instance) - set(known))
        keys = ", ".join(map(repr, unknown))
        raise ConfigError(
            f"{source}: unknown key {keys} in {_where(where)}{_did_you_mean(unknown, known)}"
        )
    choices = _one_of_keys(error.schema) if error.validator == "oneOf" else None
    if choices:
        given = ", ".join(repr(k) for k in choices if k in error.instance) or "neither"
        raise ConfigError(
            f"{source}: {_where(where)}: give exactly one of "
            f"{' or '.join(map(repr, choices))} (given: {given})"
        )
    raise ConfigError(f"{source}: {_where(where)}: {error.message}")


def _one_of_keys(schema: dict[str, Any]) -> list[str] | None:
    """The keys of a `oneOf` whose every branch only requires one key (exactly one of them)."""
    branches = schema.get("oneOf") or []
    keys = [b.get("required") for b in branches]
    if all(set(b) == {"required"} and len(k) == 1 for b, k in zip(branches, keys, strict=True)):
        return [k[0] for k in keys]
    return None


def _properties(root: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The keys `schema` declares, with those of the local `$ref` it extends
    (`unevaluatedProperties` sections share their keys that way)."""
    keys = set(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        keys |= _properties(root, root["$defs"][ref.removeprefix("#/$defs/")])
    return keys


def _check_globs(raw: dict[str, Any], source: str) -> None:
    """A glob that does not compile (`[z-a]`) is a ConfigError naming its key, found
    before any file is matched against it."""
    from cd_checks.files import bad_glob

    for key, glob in _globs(raw):
        reason = bad_glob(glob)
        if reason is not None:
            raise ConfigError(f"{source}: {key}: bad glob {glob!r}: {reason}")


def _globs(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, glob) for every glob of the config, in the order of the file."""
    named: list[tuple[str, Any]] = [
        ("files.include", (raw.get("files") or {}).get("include")),
        ("files.exclude", (raw.get("files") or {}).get("exclude")),
        ("syntax.nginx", (raw.get("syntax") or {}).get("nginx")),
        ("syntax.templates", (raw.get("syntax") or {}).get("templates")),
    ]
    named += [(f"schema[{i}].files", m.get("files")) for i, m in enumerate(raw.get("schema") or [])]
    builtin_files = (raw.get("policy") or {}).get("builtin_files") or {}
    named += [(f"policy.builtin_files.{name}", g) for name, g in builtin_files.items()]
    changes = raw.get("changes") or {}
    named += [(f"changes.{name}.files", body.get("files")) for name, body in changes.items()]
    for rule, setting in ((raw.get("policy") or {}).get("rules") or {}).items():
        named += [(f"policy.rules.{rule}.{key}", setting.get(key)) for key in ("files", "exclude")]
    found = []
    for key, value in named:
        if isinstance(value, str):
            found.append((key, value))
        elif isinstance(value, list):
            found += [(f"{key}[{i}]", glob) for i, glob in enumerate(value)]
    return found


def _did_you_mean(unknown: list[str], known: list[str]) -> str:
    """`; did you mean 'include'?` for the unknown keys that look like typos."""
    close = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
    guesses = [(key, match[0]) for key, match in close.items() if match]
    if not guesses:
        return ""
    if len(unknown) == 1:
        return f"; did you mean {guesses[0][1]!r}?"
    return "; did you mean " + ", ".join(f"{m!r} for {k!r}" for k, m in guesses) + "?"


CONFTEST_FILE = "conftest.toml"
# conftest.toml keys (conftest's flag names) cd-checks honours, with their TOML types.
CONFTEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "policy": (str, list),
    "data": (str, list),
    "namespace": (str, list),
    "all-namespaces": bool,
    "combine": bool,
    "parser": str,
    "ignore": str,
    "output": str,
    "fail-on-warn": bool,
    "no-fail": bool,
    "no-color": bool,
    "suppress-exceptions": bool,
    "quiet": bool,
    "trace": bool,
    "strict": bool,
    "show-builtin-errors": bool,
    "rego-version": str,
}
# conftest keys with no meaning here: named in the error, so none is dropped silently.
CONFTEST_UNSUPPORTED = {
    "update": "download policies first (conftest pull) and name them with policy",
    "capabilities": "the embedded engine has no capabilities file",
    "proto-file-dirs": "no protobuf parser",
    "junit-hide-message": "the junit format has its own layout",
    "tls": "no policy download",
}


def load_conftest(root: Path, explicit: Path | None = None) -> dict[str, object]:
    """conftest's settings file: `explicit` (conftest's --config-file), else conftest.toml
    at the repository root, as conftest reads it from its working directory; {} when
    there is none. Lists are lists (conftest accepts a string for one value); an
    unknown key, a wrong type or a key cd-checks cannot honour is a ConfigError."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    path = explicit if explicit is not None else root / CONFTEST_FILE
    if explicit is None and not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    settings = {key: _conftest_value(path, key, value) for key, value in raw.items()}
    _conftest_paths(root, settings, str(path))
    return settings


def _conftest_paths(root: Path, settings: dict[str, object], source: str) -> None:
    """conftest.toml's policy and data paths resolve inside the checkout, as cd-checks.yml's
    must: a pull request may change the file."""
    from cd_checks.state_dir import checkout, inside

    top = checkout(root.resolve())
    for key in ("policy", "data"):
        listed = settings.get(key)
        for index, name in enumerate(listed if isinstance(listed, list) else []):
            inside(top, root.resolve() / name, f"{source}: {key}[{index}]")


def _conftest_value(path: Path, key: str, value: object) -> object:
    if key in CONFTEST_UNSUPPORTED:
        raise ConfigError(
            f"{path}: {key}: not supported by cd-checks ({CONFTEST_UNSUPPORTED[key]})"
        )
    wanted = CONFTEST_KEYS.get(key)
    if wanted is None:
        known = sorted(CONFTEST_KEYS)
        raise ConfigError(f"{path}: unknown key {key!r}{_did_you_mean([key], known)}")
    if not isinstance(value, wanted) or (
        isinstance(value, list) and not all(isinstance(v, str) for v in value)
    ):
        kind = (
            "true or false"
            if wanted is bool
            else "a string"
            if wanted is str
            else "a string or a list of strings"
        )
        raise ConfigError(f"{path}: {key}: must be {kind}, got {value!r}")
    return [value] if wanted == (str, list) and isinstance(value, str) else value


def find_root(start: Path) -> Path:
    """The repository root for a run started in `start`: the nearest directory up
    to the git work tree's top that holds cd-checks.yml; else `start` itself."""
    for directory in (start, *start.parents):
        if (directory / CONFIG_NAME).is_file():
            return directory
        if (directory / ".git").exists():
            break
    return start


def find_config(root: Path, explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return explicit
    candidate = root / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load(root: Path, explicit: Path | None = None) -> Config:
    """Load and validate the config for the repository at `root` (defaults when absent)."""
    import yaml

    from cd_checks import bounded

    path = find_config(root, explicit)
    if path is None:
        return _build(root, None, {})
    try:
        raw = bounded.load_yaml(path.read_text("utf-8"), bounded.SETTINGS)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except bounded.ParseProblem as refused:  # an alias bomb, too deep, a 5,000-digit number
        raise ConfigError(f"{path}{refused.where()}: {refused.message}") from refused
    except yaml.reader.ReaderError as exc:
        bad = bounded.reader_problem(exc, path.read_text("utf-8"))
        raise ConfigError(f"{path}{bad.where()}: {bad.message}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from exc
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    valid = validate_raw(raw, str(path))
    _check_paths(root, valid, str(path))
    return _build(root, path, valid)


def _check_paths(root: Path, raw: dict[str, Any], source: str) -> None:
    """Each path the config makes cd-checks read resolves inside the checkout of `root`
    (links followed)."""
    from cd_checks.state_dir import checkout, inside

    here = root.resolve()
    top = checkout(here)
    for key, path in _read_paths(raw):
        inside(top, here / path, f"{source}: {key}")


def _read_paths(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, path) for every file or directory the config names for checks to read.
    Schemas are the schema check's (a finding); rollout and audit paths their own."""
    syntax, policy = raw.get("syntax") or {}, raw.get("policy") or {}
    named: list[tuple[str, Any]] = [
        ("syntax.yamllint", syntax.get("yamllint")),
        ("policy.exceptions", policy.get("exceptions")),
    ]
    named += [(f"policy.paths[{i}]", p) for i, p in enumerate(policy.get("paths") or [])]
    named += [(f"policy.data[{i}]", p) for i, p in enumerate(policy.get("data") or [])]
    return [(key, path) for key, path in named if isinstance(path, str)]


def _tuple(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _rule_setting(raw: dict[str, Any]) -> RuleSetting:
    # An unquoted `off` is YAML 1.1's false: it says "off" all the same.
    severity = raw.get("severity")
    return RuleSetting(
        severity="off" if severity is False else severity,
        files=_tuple(raw["files"]) if "files" in raw else None,
        exclude=_tuple(raw.get("exclude", ())),
    )


def _build(root: Path, source: Path | None, raw: dict[str, Any]) -> Config:
    files = raw.get("files") or {}
    syntax = raw.get("syntax") or {}
    policy = raw.get("policy") or {}
    default_paths = ("policy",) if (root / "policy").is_dir() else ()
    return Config(
        root=root,
        source=source,
        include=tuple(files.get("include", ("**/*",))),
        exclude=tuple(files.get("exclude", ())),
        max_size_mb=float(files.get("max_size_mb", 5.0)),
        yamllint=syntax.get("yamllint"),
        nginx_globs=tuple(syntax.get("nginx", DEFAULT_NGINX_GLOBS)),
        template_globs=tuple(syntax.get("templates", DEFAULT_TEMPLATE_GLOBS)),
        syntax_disabled=tuple(syntax.get("disable", ())),
        schemas=tuple(
            SchemaMapping(_tuple(m["files"]), m["schema"]) for m in raw.get("schema") or ()
        ),
        policy=PolicyConfig(
            paths=tuple(policy.get("paths", default_paths)),
            data=tuple(policy.get("data", ())),
            namespaces=tuple(policy.get("namespaces", ("main",))),
            all_namespaces=bool(policy.get("all_namespaces", False)),
            combine=bool(policy.get("combine", False)),
            engine=policy.get("engine", "auto"),
            rego_version=policy.get("rego_version", "v1"),
            builtin=tuple(policy.get("builtin", ())),
            builtin_files={k: tuple(v) for k, v in (policy.get("builtin_files") or {}).items()},
            builtin_data=dict(policy.get("builtin_data") or {}),
            rules={rule: _rule_setting(s) for rule, s in (policy.get("rules") or {}).items()},
            exceptions=policy.get("exceptions", DEFAULT_EXCEPTIONS_FILE),
        ),
        raw=raw,
    )
