"""The `changes:` section checked in the pull request: change types that cannot deploy as written.

Each finding points at its key in cd-checks.yml: a type that does not build (a
missing rollout key, a bad template, a bad host pattern); a `hosts` pattern that
matches no host of the inventory, or has a term that matches nothing (`all:!dbb`
would deploy to the db hosts it meant to spare); a `scope_by` group that the
inventory lacks, for a literal group and, for a template, for every group the
repository's files of that template would name (a new `nginx/sites/wiki.conf`
without a `site_wiki` group deploys nowhere); and, in PR mode, changed files of a
type whose freeze window is on now. Each type's rollout referents (inventory,
stage groups, playbook, health tests) are checked as `rollout:`'s are
(`cd_checks.checks.rollout.check_spec`), at the type's or the defaults' key.
A file in two types is no finding: both deploy it, in config order (`scope`
shows it). Inventories are read with `read_static` (nothing of the repository
runs); a dynamic one is not checked here. Overlapping findings of types that
share `defaults:` are reported once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cd_checks import changes, freeze
from cd_checks.changes import ChangeType
from cd_checks.checks import rollout
from cd_checks.config import Config
from cd_checks.documents import JsonPath
from cd_checks.errors import CdChecksError
from cd_checks.findings import Finding
from cd_checks.rollout import inventory as inventory_module
from cd_checks.rollout import patterns
from cd_checks.rollout.inventory import Inventory

SHOWN = 5


@dataclass(frozen=True)
class TypeWhere(rollout.Where):
    """Places a change type's keys: its own under `changes.<name>`, inherited ones
    under `defaults`. A rollout key path ("rollout", key, ...) is placed the same way."""

    name: str = ""
    own: frozenset[str] = frozenset()

    def finding(self, keys: JsonPath, rule: str, message: str) -> Finding:
        return super().finding(self.place(keys), rule, message)

    def place(self, keys: JsonPath) -> JsonPath:
        rest = list(keys[1:]) if keys and keys[0] == "rollout" else list(keys)
        if rest and rest[0] not in self.own:
            return ["defaults", *rest]
        return ["changes", self.name, *rest]


def check(
    config: Config,
    config_path: str,
    *,
    paths: Sequence[str],
    changed: Collection[str] | None,
    changed_since: bool,
    now: datetime,
    reported: Collection[str] = (),
    inventory: Path | None = None,
) -> list[Finding]:
    """Findings for `changes:` (and `defaults:`).

    `paths`: the repository's files. `changed`: the files a PR or hook touched, None
    for a whole-repository run; then only what they bear on is reported (as for
    `rollout:`). `changed_since`: a PR run (`--changed-since`): its changed files
    of a frozen type are errors. `inventory` replaces each type's inventory.
    """
    section, defaults = config.raw.get("changes"), config.raw.get("defaults")
    if not (section or defaults) or config.source is None:
        return []
    located = rollout.Where(config_path, rollout.located(config.source))
    if not section or config.raw.get("rollout"):
        # `defaults:` without `changes:`, or `changes:` beside `rollout:`: one finding.
        try:
            changes.change_types(config)
        except CdChecksError as exc:
            key = "changes" if section else "defaults"
            return [located.finding([key], "invalid", str(exc))]
    run = _Run(config, config_path, paths, changed, changed_since, now, reported, inventory)
    findings: list[Finding] = []
    for name, body in (section or {}).items():
        where = TypeWhere(config_path, located.parsed, str(name), frozenset(body))
        findings += run.type_findings(where, body, defaults or {})
    return list(dict.fromkeys(findings))


@dataclass
class _Run:
    """One validate run's view of the change types; reads each inventory once."""

    config: Config
    config_path: str
    paths: Sequence[str]
    changed: Collection[str] | None
    changed_since: bool
    now: datetime
    reported: Collection[str]
    inventory: Path | None
    inventories: dict[Path, Inventory | None] = field(default_factory=dict)

    def type_findings(
        self, where: TypeWhere, body: Mapping[str, Any], defaults: Mapping[str, Any]
    ) -> list[Finding]:
        try:
            change = changes.parse(where.name, body, defaults)
        except CdChecksError as exc:
            at = rollout.config_keys(exc)
            return [where.finding(["rollout", *at] if at else [], "invalid", str(exc))]
        changed = self.changed
        own_changed = None if changed is None else change.owns(sorted(changed))
        findings = _frozen(change, own_changed, where, self.now) if self.changed_since else []
        root = self.config.root
        touches = changed is None or rollout.wanted(change.rollout, root, self.config_path, changed)
        if touches:
            merged = {**defaults, **{k: v for k, v in body.items() if k not in changes.OWN_KEYS}}
            findings += rollout.check_spec(
                change.rollout,
                merged,
                root,
                where,
                reported=self.reported,
                inventory=self.inventory,
            )
        found = self._inventory(change)
        if found is None:
            return findings
        problems, hosts = _hosts(change, found, where)
        findings += problems if touches else []
        if hosts is not None:
            only = None if touches else own_changed or []
            findings += _scope_by(change, found, hosts, where, self.paths, only)
        return findings

    def _inventory(self, change: ChangeType) -> Inventory | None:
        path = (self.inventory or self.config.root / change.rollout.inventory).resolve()
        if path not in self.inventories:
            self.inventories[path] = _static(path)
        return self.inventories[path]


def _static(path: Path) -> Inventory | None:
    """The inventory when it can be read without running anything; None otherwise
    (a dynamic one, or one `check_spec` reports as missing or broken)."""
    try:
        return inventory_module.read_static(path)
    except CdChecksError:
        return None


def _hosts(
    change: ChangeType, found: Inventory, where: TypeWhere
) -> tuple[list[Finding], set[str] | None]:
    """Findings for the `hosts` pattern, and the hosts it selects (None: it is broken)."""
    keys: JsonPath = ["hosts"] if "hosts" in where.own else []
    try:
        chosen = patterns.select(found, change.hosts)
        unknown = patterns.unknown_terms(found, change.hosts)
    except CdChecksError as exc:
        return [where.finding(keys, "host-pattern", str(exc))], None
    findings = []
    for term in unknown:
        hint = rollout.group_hint(term.lstrip("&!"), list(found.groups))
        message = (
            f"host pattern {change.hosts!r}: {term!r} matches no group or host of the "
            f"inventory, so it {_effect(term)}{hint}"
        )
        findings.append(where.finding(keys, "host-pattern", message))
    if not chosen:
        findings.append(
            where.finding(
                keys,
                "hosts-match-nothing",
                f"host pattern {change.hosts!r} matches no host of the inventory: "
                f"change type {change.label!r} would deploy nowhere",
            )
        )
    return findings, set(chosen)


def _effect(term: str) -> str:
    if term.startswith("!"):
        return "excludes nothing"
    if term.startswith("&"):
        return "leaves no host"
    return "adds nothing"


def _scope_by(
    change: ChangeType,
    found: Inventory,
    hosts: set[str],
    where: TypeWhere,
    paths: Sequence[str],
    only: Sequence[str] | None,
) -> list[Finding]:
    """A group the inventory lacks, per scope_by entry. `only`: the changed files of
    the type (PR mode without config or inventory changes), else every file."""
    findings: list[Finding] = []
    owned = change.owns(paths if only is None else only) if change.scope_by else []
    for file_template, group_template in change.scope_by:
        keys: JsonPath = ["scope_by", file_template]
        if "{" not in group_template:
            if only is None:
                findings += _missing_group(group_template, found, hosts, change, where, keys, [])
            continue
        named: dict[str, list[str]] = {}
        template = changes.template_regex(file_template)
        for path in owned:
            matched = template.fullmatch(path)
            if matched is not None:
                group = changes.fill(group_template, matched.groupdict())
                named.setdefault(group, []).append(path)
        for group, files in named.items():
            findings += _missing_group(group, found, hosts, change, where, keys, files)
    return findings


def _missing_group(
    group: str,
    found: Inventory,
    hosts: set[str],
    change: ChangeType,
    where: TypeWhere,
    keys: JsonPath,
    files: list[str],
) -> list[Finding]:
    try:
        selected = patterns.select(found, group)
    except CdChecksError as exc:
        return [where.finding(keys, "scope-by-group", str(exc))]
    by = f" (for {_some(files)})" if files else ""
    if not selected and group in found.groups:
        message = (
            f"scope_by names group {group!r}{by}, which has no hosts: a change there "
            "would deploy nowhere"
        )
        return [where.finding(keys, "scope-by-group", message)]
    if not selected:
        hint = rollout.group_hint(group, list(found.groups))
        message = f"scope_by names group {group!r}{by}, which the inventory does not have{hint}"
        return [where.finding(keys, "scope-by-group", message)]
    if not hosts & set(selected):
        message = (
            f"scope_by names group {group!r}{by}, which has no host of the type's hosts "
            f"{change.hosts!r}: a change there would deploy nowhere"
        )
        return [where.finding(keys, "scope-by-group", message)]
    return []


def _some(files: Sequence[str]) -> str:
    more = f" and {len(files) - SHOWN} more" if len(files) > SHOWN else ""
    return ", ".join(files[:SHOWN]) + more


def _frozen(
    change: ChangeType, files: Sequence[str] | None, where: TypeWhere, now: datetime
) -> list[Finding]:
    window = freeze.active(change.freeze, now) if files else None
    if window is None or not files:
        return []
    index = change.freeze.index(window)
    message = (
        f"change type {change.label!r} is frozen now: {freeze.describe(window)}; this change "
        f"touches {_some(list(files))}, which `rollout run` will not deploy until the window "
        "ends (break-glass overrides it, audited)"
    )
    return [where.finding(["freeze", index], "frozen", message)]


def policy_sets(config: Config) -> Mapping[str, tuple[str, ...]]:
    """Builtin set -> the files of the change types that ask for it (`policy:`), globs."""
    try:
        types = changes.change_types(config)
    except CdChecksError:
        return {}  # `check` reports the type that does not build
    sets: dict[str, dict[str, None]] = {}
    for change in types:
        for name in change.policy:
            sets.setdefault(name, {}).update(dict.fromkeys(change.files))
    return {name: tuple(globs) for name, globs in sets.items()}
