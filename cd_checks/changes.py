"""Change types: which files a pipeline deploys, to which hosts, with which rollout.

`changes:` in cd-checks.yml names change types (nginx, patches, monitoring, ...), each
with the files it deploys (gitwildmatch globs, as `files.include`), the hosts it may
reach (an Ansible host pattern, `cd_checks.rollout.patterns`), an optional `scope_by`
that narrows those hosts by the changed files, its policy sets, approvals, freeze
windows and its own rollout keys. `defaults:` holds rollout keys every type inherits;
a key a type sets itself replaces the default's key wholesale (a type's `health:`
is its whole health section, not merged into the default's), as a YAML merge key
(`<<: *defaults`) does, so what a type runs is what its section and the defaults'
other keys say. A single `rollout:` section is one unnamed change type for every
file and host. A file may belong to several types: each of them deploys it, in
config order.

`scope_by` maps a file template to a group template: `nginx/sites/{site}.conf` ->
`site_{site}`. A `{name}` placeholder matches one path segment (no `/`); `*` matches
within a segment, `**` across segments; the rest is literal. The group template is
filled with the matched values and read as a host pattern. When every changed file
of a type matches a template (the first matching one counts), its hosts narrow to
the union of the groups so named, within the type's `hosts`; one changed file of the
type that matches none (a shared template, say) keeps all of the type's hosts.

Pure: the config and inventory are handed in; nothing here reads files or runs git.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cd_checks import freeze
from cd_checks.config import Config
from cd_checks.errors import ConfigError
from cd_checks.files import matcher
from cd_checks.freeze import FreezeWindow
from cd_checks.rollout import patterns
from cd_checks.rollout.inventory import Inventory
from cd_checks.rollout.spec import RolloutSpec, from_section

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# A change type's own keys; every other key of its section is a rollout key.
OWN_KEYS = ("files", "hosts", "scope_by", "policy", "require_approvals", "freeze")
REQUIRED_ROLLOUT_KEYS = ("inventory", "apply", "stages")
UNNAMED_FILES = ("**",)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TEMPLATE_PART = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}|\*\*|\*|[{}]|[^{}*]+")


@dataclass(frozen=True, kw_only=True)
class ChangeType:
    """One change type; `name` None is the single `rollout:` section."""

    name: str | None
    files: tuple[str, ...]
    hosts: str = "all"
    scope_by: tuple[tuple[str, str], ...] = ()
    policy: tuple[str, ...] = ()
    require_approvals: int = 0
    freeze: tuple[FreezeWindow, ...] = ()
    rollout: RolloutSpec

    @property
    def label(self) -> str:
        """The name shown to users: the type's name, `rollout` for the unnamed one."""
        return self.name if self.name is not None else "rollout"

    @property
    def key(self) -> str:
        """Where the type is in cd-checks.yml, for messages: `changes.nginx` or `rollout`."""
        return f"changes.{self.name}" if self.name is not None else "rollout"

    def owns(self, paths: Sequence[str]) -> list[str]:
        """The paths this type deploys, in the order given."""
        spec = matcher(self.files)
        return [p for p in paths if spec.match_file(p)]


def change_types(config: Config) -> tuple[ChangeType, ...]:
    """The change types of `config` in config order; () without `rollout:` or `changes:`."""
    raw = config.raw
    rollout, changes, defaults = raw.get("rollout"), raw.get("changes"), raw.get("defaults")
    if rollout and changes:
        raise ConfigError(
            "cd-checks.yml: `rollout:` and `changes:` together; put the shared keys under "
            "`defaults:` and keep `changes:`"
        )
    if defaults and not changes:
        raise ConfigError(
            "cd-checks.yml: `defaults:` applies to the types of `changes:`; "
            "with a single `rollout:` section put its keys there"
        )
    if rollout:
        return (ChangeType(name=None, files=UNNAMED_FILES, rollout=from_section(rollout)),)
    return tuple(parse(str(n), body, defaults or {}) for n, body in (changes or {}).items())


def change_type(config: Config, name: str | None) -> ChangeType:
    """The type called `name`; None asks for the only one there is."""
    types = change_types(config)
    if not types:
        from_section({})  # the one error for "no rollout configured"
    named = ", ".join(t.label for t in types)
    if name is None:
        if len(types) > 1:
            raise ConfigError(f"cd-checks.yml has several change types ({named}): name one")
        return types[0]
    for found in types:
        if found.name == name:
            return found
    if types[0].name is None:
        raise ConfigError(
            f"no change type {name!r}: cd-checks.yml has a single `rollout:` section, no `changes:`"
        )
    raise ConfigError(f"no change type {name!r} in cd-checks.yml (change types: {named})")


def triggered(
    types: Sequence[ChangeType], files: Sequence[str]
) -> list[tuple[ChangeType, list[str]]]:
    """Each type that deploys one of `files`, with those files; config order."""
    found = [(change, change.owns(files)) for change in types]
    return [(change, owned) for change, owned in found if owned]


def unmatched(types: Sequence[ChangeType], files: Sequence[str]) -> list[str]:
    """The files no change type deploys, in the order given."""
    owned = {path for change in types for path in change.owns(files)}
    return [path for path in files if path not in owned]


def eligible(
    change: ChangeType, inventory: Inventory, files: Sequence[str] | None
) -> tuple[str, ...]:
    """The hosts a change of `files` may reach: `hosts`, narrowed by `scope_by` (see above).

    `files` None (a whole deploy) and files of which the type deploys none do not narrow.
    """
    hosts = patterns.select(inventory, change.hosts)
    groups = scope_groups(change, files or ())
    if not groups:
        return hosts
    narrowed = {h for group in groups for h in patterns.select(inventory, group)}
    return tuple(h for h in hosts if h in narrowed)


def scope_groups(change: ChangeType, files: Sequence[str]) -> tuple[str, ...]:
    """The group patterns `scope_by` names for the type's files of `files`, in order;
    () when one of them matches no file template (or the type has none of them)."""
    owned = change.owns(files)
    groups: dict[str, None] = {}
    for path in owned:
        group = scope_group(change.scope_by, path)
        if group is None:
            return ()
        groups[group] = None
    return tuple(groups)


def scope_group(scope_by: Sequence[tuple[str, str]], path: str) -> str | None:
    """The group template of the first file template `path` matches, filled in; else None."""
    for file_template, group_template in scope_by:
        values = template_match(file_template, path)
        if values is not None:
            return fill(group_template, values)
    return None


def template_match(template: str, path: str) -> dict[str, str] | None:
    """The placeholder values when `path` matches the file template, else None."""
    found = template_regex(template).fullmatch(path)
    return found.groupdict() if found else None


def fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def template_regex(template: str) -> re.Pattern[str]:
    """The file template as a regex whose named groups are its placeholders."""
    parts: list[str] = []
    for token in _TEMPLATE_PART.finditer(template):
        text, name = token.group(0), token.group(1)
        if name is not None:
            parts.append(f"(?P<{name}>[^/]+)")
        elif text == "**":
            parts.append(".*")
        elif text == "*":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(text))
    return re.compile("".join(parts))


def template_problem(file_template: str, group_template: str) -> str | None:
    """Why a `scope_by` entry cannot work (a stray brace, a placeholder twice, a group
    placeholder the file template does not fill); None when it is sound."""
    for template in (file_template, group_template):
        stray = _PLACEHOLDER.sub("", template)
        if "{" in stray or "}" in stray:
            return f"{template!r}: a brace that is no {{name}} placeholder"
    named = _PLACEHOLDER.findall(file_template)
    twice = sorted({n for n in named if named.count(n) > 1})
    if twice:
        return f"{file_template!r}: placeholder {{{twice[0]}}} is used twice"
    missing = [n for n in _PLACEHOLDER.findall(group_template) if n not in named]
    if missing:
        return (
            f"group {group_template!r} uses {{{missing[0]}}}, which file template "
            f"{file_template!r} does not have"
        )
    return None


def parse(name: str, body: Mapping[str, Any], defaults: Mapping[str, Any]) -> ChangeType:
    """One change type from its section and `defaults:` (validated by the schema)."""
    where = f"changes.{name}"
    if not NAME.match(name):
        raise ConfigError(f"{where}: a change type's name is lower case: [a-z0-9][a-z0-9_-]*")
    section = {**defaults, **{k: v for k, v in body.items() if k not in OWN_KEYS}}
    missing = [k for k in REQUIRED_ROLLOUT_KEYS if k not in section]
    if missing:
        raise ConfigError(f"{where}: no `{missing[0]}:` (set it here or under `defaults:`)")
    scope_by = tuple((str(f), str(g)) for f, g in (body.get("scope_by") or {}).items())
    for file_template, group_template in scope_by:
        problem = template_problem(file_template, group_template)
        if problem is not None:
            raise ConfigError(f"{where}.scope_by: {problem}")
    patterns.split(str(body.get("hosts", "all")))  # a bad pattern is a ConfigError now
    return ChangeType(
        name=name,
        files=tuple(body["files"]),
        hosts=str(body.get("hosts", "all")),
        scope_by=scope_by,
        policy=tuple(body.get("policy", ())),
        require_approvals=int(body.get("require_approvals", 0)),
        freeze=freeze.parse(body.get("freeze"), f"{where}.freeze"),
        rollout=_rollout(where, section),
    )


def _rollout(where: str, section: Mapping[str, Any]) -> RolloutSpec:
    try:
        return from_section(section)
    except ConfigError as exc:
        # from_section speaks of `rollout:`; here the keys are the type's and the defaults'.
        message = str(exc).removeprefix("rollout: ")
        raise ConfigError(f"{where}: {message}", at=exc.at) from exc
