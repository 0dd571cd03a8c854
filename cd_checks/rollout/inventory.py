"""Hosts and groups from an Ansible inventory file (YAML or INI) or a plain YAML list.

Only what a rollout plan needs: each host's name, its address
(`ansible_host`, else the name) and variables, and each group's hosts in
inventory order, children included. Host ranges such as `web[01:10]` are
expanded as Ansible does. Dynamic inventories (scripts, plugins) are out of
scope: export them with `ansible-inventory --list -y` first. This module
reads one file and nothing else.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cd_checks.errors import ConfigError, InputError

_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::([0-9]+))?\]")
_YAML_SUFFIXES = (".yml", ".yaml", ".json")


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    vars: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Inventory:
    """Hosts by name and groups as tuples of host names, both in inventory order."""

    source: Path
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]]

    def group(self, name: str) -> tuple[str, ...]:
        if name in self.groups:
            return self.groups[name]
        known = ", ".join(sorted(self.groups)) or "none"
        raise ConfigError(f"{self.source}: no group {name!r} in the inventory (groups: {known})")

    def host(self, name: str) -> Host:
        return self.hosts[name]


@dataclass
class _Builder:
    """Mutable accumulator used only while parsing one file."""

    host_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_host(self, group: str, name: str, values: Mapping[str, Any]) -> None:
        self.host_vars.setdefault(name, {}).update(values)
        self.members.setdefault(group, [])
        if name not in self.members[group]:
            self.members[group].append(name)

    def add_child(self, parent: str, child: str) -> None:
        self.children.setdefault(parent, []).append(child)
        self.members.setdefault(child, [])

    def build(self, source: Path) -> Inventory:
        names = list(self.members) + list(self.children)
        groups = {name: tuple(self._closure(name, set())) for name in dict.fromkeys(names)}
        groups["all"] = tuple(self.host_vars)
        hosts = {name: self._host(name, groups) for name in self.host_vars}
        return Inventory(source=source, hosts=hosts, groups=groups)

    def _closure(self, group: str, seen: set[str]) -> list[str]:
        if group in seen:
            return []
        seen.add(group)
        found = list(self.members.get(group, ()))
        for child in self.children.get(group, ()):
            found.extend(h for h in self._closure(child, seen) if h not in found)
        return found

    def _host(self, name: str, groups: Mapping[str, tuple[str, ...]]) -> Host:
        merged: dict[str, Any] = dict(self.group_vars.get("all", {}))
        for group, hosts in groups.items():
            if group != "all" and name in hosts:
                merged.update(self.group_vars.get(group, {}))
        merged.update(self.host_vars[name])
        return Host(name=name, address=str(merged.get("ansible_host", name)), vars=merged)


def load(path: Path) -> Inventory:
    """Parse the inventory at `path`; YAML by suffix (.yml/.yaml/.json), INI otherwise."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"inventory {path}: cannot read: {exc}") from exc
    builder = _Builder()
    if path.suffix in _YAML_SUFFIXES:
        _parse_yaml(text, path, builder)
    else:
        _parse_ini(text, path, builder)
    inventory = builder.build(path)
    if not inventory.hosts:
        raise InputError(f"inventory {path}: no hosts")
    return inventory


def expand(pattern: str) -> list[str]:
    """Expand Ansible host ranges: `web[01:03]` -> web01, web02, web03."""
    match = _RANGE.search(pattern)
    if match is None:
        return [pattern]
    start, end, step = match.group(1), match.group(2), int(match.group(3) or 1)
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for item in _range(start, end, step) for name in expand(head + item + tail)]


def _range(start: str, end: str, step: int) -> list[str]:
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        return [str(i).zfill(width) for i in range(int(start), int(end) + 1, step)]
    if len(start) == 1 and len(end) == 1:
        return [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    raise ConfigError(f"inventory: bad host range [{start}:{end}]")


def _parse_yaml(text: str, path: Path, builder: _Builder) -> None:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"inventory {path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"inventory {path}: the top level must be a mapping of groups")
    for group, body in data.items():
        _yaml_group(str(group), body, path, builder)


def _yaml_group(group: str, body: Any, path: Path, builder: _Builder) -> None:
    builder.members.setdefault(group, [])
    if body is None:
        return
    if isinstance(body, list):  # plain list: `group: [host, ...]`
        for name in body:
            _add_hosts(builder, group, str(name), {})
        return
    if not isinstance(body, dict):
        raise InputError(f"inventory {path}: group {group!r} must be a mapping or a list")
    for name, values in (body.get("hosts") or {}).items():
        _add_hosts(builder, group, str(name), values or {})
    builder.group_vars.setdefault(group, {}).update(body.get("vars") or {})
    for child, child_body in (body.get("children") or {}).items():
        builder.add_child(group, str(child))
        _yaml_group(str(child), child_body, path, builder)


def _add_hosts(builder: _Builder, group: str, pattern: str, values: Mapping[str, Any]) -> None:
    for name in expand(pattern):
        builder.add_host(group, name, values)


def _parse_ini(text: str, path: Path, builder: _Builder) -> None:
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            builder.members.setdefault(section, [])
            continue
        _ini_line(builder, section, kind, line, f"{path}:{number}")


def _ini_line(builder: _Builder, section: str, kind: str, line: str, where: str) -> None:
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InputError(f"inventory {where}: {exc}") from exc
    if kind == "children":
        builder.add_child(section, words[0])
    elif kind == "vars":
        key, _, value = line.partition("=")
        builder.group_vars.setdefault(section, {})[key.strip()] = value.strip()
    elif kind == "hosts":
        _add_hosts(builder, section, words[0], _key_values(words[1:], where))
    else:
        raise InputError(f"inventory {where}: unknown section kind {kind!r}")


def _key_values(words: Iterable[str], where: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise InputError(f"inventory {where}: expected key=value, got {word!r}")
        values[key] = value
    return values
