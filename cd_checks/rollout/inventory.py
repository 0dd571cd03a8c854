"""Hosts and groups from an Ansible inventory, read the way Ansible reads it.

Only what a rollout plan needs: each host's name, its address
(`ansible_host`, else the name) and variables, and each group's hosts in
inventory order, children included. Two ways in:

- `load()` (rollout run/plan): a YAML file (`.yml`, `.yaml`, `.json`) is
  read here, as it always was (the lab fleet and the examples write one;
  plain lists `group: [host, ...]` are accepted too). Anything else (an INI
  file, a directory of inventory files, TOML, a script or plugin config) is
  handed to `ansible-inventory --list`, so hosts, groups and variables
  (`group_vars/`, `host_vars/` included) are what `ansible-playbook` sees.
- `read_static()` (validate): never runs anything from the repository.
  INI and TOML files go through ansible-core's own `ini`/`toml` inventory
  plugins in this process, directories are walked as Ansible walks them,
  and a parse error carries its file and line. Scripts and plugin configs
  (dynamic inventories) give None: they cannot be read offline.

Without ansible-core (it comes with the `rollout` extra), INI files are
read by a reader here that follows the ini plugin's rules, so a validate-only
install still checks them and never mistakes them for strict INI. Objects
and exceptions of ansible never leave this module. YAML is read, and YAML
that ansible would read is measured first, through `cd_checks.bounded`
(aliases, depth): a bomb is a parse problem at its line.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from cd_checks import bounded
from cd_checks.errors import CdChecksError, ConfigError, InputError, ToolError

_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::([0-9]+))?\]")
_YAML_SUFFIXES = (".yml", ".yaml", ".json")
# Ansible's INVENTORY_IGNORE_EXTS default and the names it always skips in a directory.
_IGNORED_SUFFIXES = (
    *(".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst"),
    *(".orig", ".cfg", ".retry"),
)
_IGNORED_NAMES = frozenset({"host_vars", "group_vars", "vars_plugins"})
# The ini plugin's own patterns (ansible/plugins/inventory/ini.py).
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
# Variables Ansible adds to every host; not the inventory's own.
_MAGIC_VARS = frozenset({"inventory_file", "inventory_dir"})
INVENTORY_TIMEOUT = 300


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


@dataclass(frozen=True)
class Problem:
    """Why an inventory file does not parse (Ansible's words) and where: line None when unknown."""

    path: Path
    line: int | None
    message: str


class InventoryError(InputError):
    """An inventory that does not parse; `problem` locates it."""

    def __init__(self, problem: Problem) -> None:
        where = f"{problem.path}:{problem.line}" if problem.line else str(problem.path)
        super().__init__(f"inventory {where}: {problem.message}")
        self.problem = problem


@dataclass
class _Builder:
    """Mutable accumulator used only while reading one inventory."""

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
        # As Ansible: hosts in no group but `all` are in `ungrouped`.
        grouped = {
            h for g, members in groups.items() if g not in ("all", "ungrouped") for h in members
        }
        groups["ungrouped"] = tuple(h for h in self.host_vars if h not in grouped)
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


def load(path: Path, *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Inventory:
    """The inventory at `path` for a rollout: YAML files here, the rest by ansible-inventory.

    `env` and `cwd` are those ansible-playbook will run with (the repository's
    ansible.cfg applies the same way). Without ansible-inventory, a static
    inventory is read as `read_static` reads it.
    """
    if _is_yaml_file(path):
        inventory = _read_yaml_file(path)
    elif not path.exists():
        raise InventoryError(Problem(path, None, "no such file or directory"))
    else:
        program = _ansible_inventory_program(env)
        if program is not None:
            _refuse_unbounded_yaml(path)
            inventory = _ansible_inventory(program, path, env or {}, cwd)
        else:
            static = read_static(path)
            if static is None:
                raise ToolError(
                    f"inventory {path} is dynamic and needs ansible-inventory "
                    "(pip install 'cd-checks[rollout]')"
                )
            inventory = static
    if not inventory.hosts:
        raise InputError(f"inventory {path}: no hosts")
    return inventory


def read_static(path: Path) -> Inventory | None:
    """Read the inventory at `path` without running anything; None when it is dynamic.

    Raises `InventoryError` (with the file and line) when it does not parse.
    """
    if _is_yaml_file(path):
        return _read_yaml_file(path)
    if not path.exists():
        raise InventoryError(Problem(path, None, "no such file or directory"))
    sources = list(_source_files(path))
    if any(_is_dynamic(source) for source in sources):
        return None
    ansible = _AnsiblePlugins.load()
    if ansible is not None:
        return ansible.read(path, sources)
    builder = _Builder()
    for source in sources:
        _read_own(source, builder)
    return builder.build(path)


def to_document(inventory: Inventory) -> dict[str, Any]:
    """The inventory as data for schema and policy checks: groups' hosts and each host's vars."""
    return {
        "groups": {name: list(hosts) for name, hosts in inventory.groups.items()},
        "hostvars": {name: dict(host.vars) for name, host in inventory.hosts.items()},
    }


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
        if start.startswith("0") and len(start) != len(end):
            raise ValueError(f"host range [{start}:{end}] must have equal-length begin and end")
        width = len(start) if start.startswith("0") else 0
        return [str(i).zfill(width) for i in range(int(start), int(end) + 1, step)]
    if len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        return [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    raise ValueError(f"bad host range [{start}:{end}]")


# -- which files, and which are dynamic ------------------------------------------------


def _is_yaml_file(path: Path) -> bool:
    """A YAML inventory file cd-checks reads itself (not an inventory plugin's config)."""
    return path.suffix in _YAML_SUFFIXES and not path.is_dir() and not _is_dynamic(path)


def _source_files(path: Path) -> Iterator[Path]:
    """The files Ansible parses for `path`: itself, or a directory's entries in sorted order."""
    if not path.is_dir():
        yield path
        return
    for entry in sorted(path.iterdir()):
        if not ignored_in_directory(entry.name):
            yield from _source_files(entry)


def ignored_in_directory(name: str) -> bool:
    """True for a file or directory Ansible skips in a directory inventory."""
    return name.startswith(".") or name in _IGNORED_NAMES or name.endswith(_IGNORED_SUFFIXES)


def _is_dynamic(path: Path) -> bool:
    """A script (executable, `#!`) or an inventory plugin config (YAML with `plugin:`)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    if head.startswith(b"#!") and os.access(path, os.X_OK):
        return True
    return path.suffix in _YAML_SUFFIXES and re.search(rb"(?m)^plugin\s*:", head) is not None


# -- ansible-core in this process (validate) -------------------------------------------


class _AnsiblePlugins:
    """ansible-core's ini, yaml and toml inventory plugins, run in this process.

    Ansible's Display prints warnings itself (e.g. about characters in group
    names); they are swallowed here, since only the CLI prints.
    """

    def __init__(self, data_class: Any, loader_class: Any, plugins: Any, group_vars: Any) -> None:
        self._data_class, self._loader_class = data_class, loader_class
        self._plugins, self._group_vars = plugins, group_vars

    @classmethod
    def load(cls) -> _AnsiblePlugins | None:
        try:
            with _quiet():
                from ansible.inventory.data import InventoryData
                from ansible.inventory.helpers import get_group_vars
                from ansible.parsing.dataloader import DataLoader
                from ansible.plugins.loader import inventory_loader
        except ImportError:
            return None
        return cls(InventoryData, DataLoader, inventory_loader, get_group_vars)

    def read(self, root: Path, sources: Iterable[Path]) -> Inventory:
        data = self._data_class()
        for source in sources:
            if "yaml" in self._plugin_names(source):
                bomb = _yaml_problem(source)
                if bomb is not None:
                    raise InventoryError(bomb)
            problem = self._parse_file(data, source.resolve())
            if problem is not None:
                raise InventoryError(Problem(source, problem.line, problem.message))
        with _quiet():
            data.reconcile_inventory()
        return self._inventory(root, data)

    def _plugin_names(self, path: Path) -> tuple[str, ...]:
        suffix = path.suffix.lower()
        if suffix in _YAML_SUFFIXES:
            return ("yaml",)
        if suffix == ".toml":
            return ("toml",)
        # Ansible tries yaml before ini on a file without a suffix; an INI error is
        # the one to show when both fail, since such files are nearly always INI.
        return ("ini", "yaml") if not suffix else ("ini",)

    def _parse_file(self, data: Any, path: Path) -> Problem | None:
        first: Problem | None = None
        for name in self._plugin_names(path):
            error = self._try(data, name, path)
            if error is None:
                return None
            if first is None:
                first = self._problem(name, path, error)
        return first

    def _try(self, data: Any, plugin_name: str, path: Path) -> BaseException | None:
        try:
            with _quiet():
                plugin = self._plugins.get(plugin_name)
                plugin.parse(data, self._loader_class(), str(path), cache=False)
        except Exception as exc:  # noqa: BLE001 - any ansible failure is the file's problem
            return exc
        return None

    def _failure(self, plugin_name: str, path: Path) -> str | None:
        """The message `plugin_name` fails `path` with, alone; None when it parses."""
        error = self._try(self._data_class(), plugin_name, path)
        return None if error is None else _message(error, path)[1]

    def _problem(self, plugin_name: str, path: Path, error: BaseException) -> Problem:
        line, message = _message(error, path)
        if line is None and plugin_name == "ini":
            line = self._locate(path, message)
        return Problem(path, line, _explain(path, line, message))

    def _locate(self, path: Path, message: str) -> int | None:
        """The line the ini plugin fails on, when its message does not say.

        ansible-core 2.19 drops the line from its ini errors. The plugin reads
        line by line and stops at the first bad one, so the shortest prefix of
        the file that fails with the same message ends at that line.
        """
        try:
            lines = path.read_text("utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError):
            return None
        with tempfile.TemporaryDirectory(prefix="cd-checks-inventory-") as scratch:
            probe = Path(scratch) / path.name
            low, high = 1, len(lines)
            while low < high:
                middle = (low + high) // 2
                probe.write_text("".join(lines[:middle]), "utf-8")
                if self._failure("ini", probe) == message:
                    high = middle
                else:
                    low = middle + 1
        return low if lines else None

    def _inventory(self, root: Path, data: Any) -> Inventory:
        groups = {
            name: tuple(h.name for h in group.get_hosts()) for name, group in data.groups.items()
        }
        hosts = {}
        for name, host in data.hosts.items():
            with _quiet():
                merged = {**self._group_vars(host.get_groups()), **host.vars}
            values = _plain({k: v for k, v in merged.items() if k not in _MAGIC_VARS})
            hosts[name] = Host(name, str(values.get("ansible_host", name)), values)
        return Inventory(source=root, hosts=hosts, groups=groups)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Ansible's tagged strings and ints as plain JSON values."""
    return dict(json.loads(json.dumps(values, default=str)))


def _message(error: BaseException, path: Path) -> tuple[int | None, str]:
    """Line (when Ansible gives it) and message of the innermost cause of an ansible error."""
    inner: BaseException = error
    while (inner.__cause__ or inner.__context__) is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    message = (str(inner).strip() or str(error).strip() or type(inner).__name__).splitlines()[0]
    # ansible-core before 2.19 prefixes "PATH:LINE: "; 2.19 tags an origin instead.
    match = re.match(re.escape(str(path)) + r":(\d+):\s*", message)
    if match:
        return int(match.group(1)), message[match.end() :]
    origin_line = getattr(getattr(error, "obj", None), "line_num", None)
    return (origin_line if isinstance(origin_line, int) else None), message


def _explain(path: Path, line: int | None, message: str) -> str:
    """Ansible's message with the offending line quoted, and a hint where Ansible's is obscure."""
    content = _line_text(path, line)
    if content is None:
        return message
    if content.startswith("[") and not content.rstrip().endswith("]"):
        return f"section header {content!r} has no closing ']' ({message})"
    return message if content in message else f"{content!r}: {message}"


def _line_text(path: Path, line: int | None) -> str | None:
    if line is None:
        return None
    try:
        lines = path.read_text("utf-8", "replace").splitlines()
    except OSError:
        return None
    return lines[line - 1].strip() if 0 < line <= len(lines) else None


# -- ansible-inventory (rollout) -------------------------------------------------------


def _ansible_inventory_program(env: Mapping[str, str] | None) -> str | None:
    found = shutil.which("ansible-inventory", path=(env or {}).get("PATH"))
    if found:
        return found
    # cd-checks run from a virtual environment that is not on PATH: its own bin/
    beside = Path(sys.executable).parent / "ansible-inventory"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _ansible_inventory(
    program: str, path: Path, env: Mapping[str, str], cwd: Path | None
) -> Inventory:
    # `--inventory=PATH` in one argument: a path can never be read as an option.
    argv = [program, "--list", f"--inventory={path}"]
    child_env = {
        **env,
        "ANSIBLE_NOCOLOR": "1",
        # A source (or one file of a directory) that does not parse fails the
        # command, instead of a warning and a rollout over fewer hosts.
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
    }
    try:
        done = subprocess.run(  # noqa: S603 - an argument list, never a shell
            argv,
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=INVENTORY_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"inventory {path}: cannot run ansible-inventory: {exc}") from exc
    if done.returncode != 0:
        raise _failed(path, done.stderr)
    try:
        listed, _ = bounded.load_json(done.stdout)
    except ValueError as exc:  # JSONDecodeError and ParseProblem (too deep) alike
        raise ToolError(f"inventory {path}: ansible-inventory printed no JSON") from exc
    return _from_listing(listed, path)


def _failed(path: Path, stderr: str) -> InputError:
    """The located static problem when there is one, else ansible-inventory's own words."""
    try:
        read_static(path)
    except InventoryError as located:
        return located
    except CdChecksError:
        pass
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    wanted = [
        line
        for line in lines
        if line.startswith(("[ERROR]", "ERROR!", "Failed to parse")) or "Unable to parse" in line
    ]
    detail = "; ".join(dict.fromkeys(wanted or lines[-3:])) or "failed"
    return InputError(f"inventory {path}: ansible-inventory: {detail}")


def _from_listing(listed: Any, path: Path) -> Inventory:
    """`ansible-inventory --list` JSON to hosts and groups (vars are already merged per host)."""
    if not isinstance(listed, dict):
        raise ToolError(f"inventory {path}: unexpected ansible-inventory output")
    hostvars = (listed.get("_meta") or {}).get("hostvars") or {}
    builder = _Builder()
    pending, seen = ["all"], set()
    while pending:
        group = pending.pop(0)
        if group in seen:
            continue
        seen.add(group)
        body = listed.get(group) or {}
        builder.members.setdefault(group, [])
        for host in body.get("hosts", ()):
            builder.add_host(group, host, hostvars.get(host) or {})
        for child in body.get("children", ()):
            builder.add_child(group, child)
            pending.append(child)
    return builder.build(path)


# -- cd-checks' own readers: YAML files, and INI without ansible-core ------------------


def _refuse_unbounded_yaml(path: Path) -> None:
    """InventoryError for a YAML file of `path` that crosses `cd_checks.bounded`'s bounds.

    Ansible's YAML parser has no bounds of its own: an alias bomb or absurd nesting in
    a file it would read stops here, at its line, before ansible sees it.
    """
    for source in _source_files(path):
        if source.suffix.lower() in _YAML_SUFFIXES or not source.suffix:
            problem = _yaml_problem(source)
            if problem is not None:
                raise InventoryError(problem)


def _yaml_problem(path: Path) -> Problem | None:
    try:
        bounded.compose_yaml(path.read_text("utf-8"), bounded.DOCUMENTS)
    except bounded.ParseProblem as exc:
        return Problem(path, exc.line, exc.message)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # not YAML (an INI file), or unreadable: ansible says what is wrong
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"inventory {path}: cannot read: {exc}") from exc


def _read_yaml_file(path: Path) -> Inventory:
    builder = _Builder()
    _parse_yaml(_read_text(path), path, builder)
    return builder.build(path)


def _read_own(path: Path, builder: _Builder) -> None:
    if path.suffix in _YAML_SUFFIXES:
        _parse_yaml(_read_text(path), path, builder)
    elif path.suffix == ".toml":
        raise InventoryError(
            Problem(
                path,
                None,
                "TOML inventories are read with ansible-core; pip install 'cd-checks[rollout]'",
            )
        )
    else:
        _parse_ini(_read_text(path), path, builder)


def _parse_yaml(text: str, path: Path, builder: _Builder) -> None:
    try:
        data = bounded.load_yaml(text, bounded.DOCUMENTS)
    except bounded.ParseProblem as exc:
        raise InventoryError(Problem(path, exc.line, exc.message)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(Problem(path, line, f"invalid YAML: {problem}")) from exc
    if not isinstance(data, dict):
        raise InventoryError(Problem(path, None, "the top level must be a mapping of groups"))
    for group, body in data.items():
        _yaml_group(str(group), body, path, builder)


def _yaml_group(group: str, body: Any, path: Path, builder: _Builder) -> None:
    builder.members.setdefault(group, [])
    if body is None:
        return
    if isinstance(body, list):  # plain list: `group: [host, ...]`
        for name in body:
            _add_hosts(builder, group, str(name), {}, path, None)
        return
    if not isinstance(body, dict):
        raise InventoryError(Problem(path, None, f"group {group!r} must be a mapping or a list"))
    for name, values in (body.get("hosts") or {}).items():
        _add_hosts(builder, group, str(name), values or {}, path, None)
    builder.group_vars.setdefault(group, {}).update(body.get("vars") or {})
    for child, child_body in (body.get("children") or {}).items():
        builder.add_child(group, str(child))
        _yaml_group(str(child), child_body, path, builder)


def _add_hosts(
    builder: _Builder,
    group: str,
    pattern: str,
    values: Mapping[str, Any],
    path: Path,
    line: int | None,
) -> None:
    try:
        names = expand(pattern)
    except ValueError as exc:
        raise InventoryError(Problem(path, line, f"{pattern!r}: {exc}")) from exc
    for name in names:
        builder.add_host(group, name, values)


def _parse_ini(text: str, path: Path, builder: _Builder) -> None:
    """An INI inventory by the ini plugin's rules: sections, ranges, `host:port`, key=value."""
    section, kind = "ungrouped", "hosts"
    pending: dict[str, tuple[int, str]] = {}  # group -> (line, why) until it is declared
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        match = _SECTION.match(line)
        if match:
            section, kind = match.group(1), match.group(2) or "hosts"
            _ini_section(builder, pending, section, kind, Problem(path, number, line))
            continue
        where = Problem(path, number, line)
        if line.startswith("[") and "]" not in line:
            raise InventoryError(
                Problem(path, number, f"section header {line!r} has no closing ']'")
            )
        if line.startswith("["):
            _ini_fail(where, "invalid section entry (a group name has no spaces or ':')")
        _ini_line(builder, pending, section, kind, where)
    for group, (number, why) in pending.items():
        raise InventoryError(Problem(path, number, why.format(group=group)))


def _ini_section(
    builder: _Builder,
    pending: dict[str, tuple[int, str]],
    section: str,
    kind: str,
    where: Problem,
) -> None:
    if kind not in ("hosts", "children", "vars"):
        _ini_fail(where, f"section has unknown type {kind!r} (hosts, children or vars)")
    declared = section in builder.members or section in builder.children
    if kind == "vars" and not declared:
        pending.setdefault(
            section, (where.line or 0, "section [{group}:vars] names an undefined group")
        )
    builder.members.setdefault(section, [])
    if kind != "vars":
        pending.pop(section, None)


def _ini_line(
    builder: _Builder,
    pending: dict[str, tuple[int, str]],
    section: str,
    kind: str,
    where: Problem,
) -> None:
    if kind == "children":
        match = _GROUP_NAME.match(where.message)
        if match is None:
            _ini_fail(where, "expected a group name")
        child = match.group(1)
        if child not in builder.members:
            why = f"section [{section}:children] includes undefined group {{group!r}}"
            pending.setdefault(child, (where.line or 0, why))
        builder.add_child(section, child)
    elif kind == "vars":
        key, sep, value = where.message.partition("=")
        if not sep:
            _ini_fail(where, "expected key=value")
        builder.group_vars.setdefault(section, {})[key.strip()] = _ini_value(value.strip())
    else:
        _ini_host(builder, section, where)


def _ini_host(builder: _Builder, section: str, where: Problem) -> None:
    try:
        words = shlex.split(where.message, comments=True)
    except ValueError as exc:
        _ini_fail(where, f"cannot split the host line: {exc}")
    values: dict[str, Any] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep:
            _ini_fail(where, f"expected key=value host variable assignment, got: {word}")
        values[key] = _ini_value(value)
    pattern = words[0]
    head, colon, port = pattern.rpartition(":")
    if colon and port.isdigit() and ":" not in head:
        pattern, values = head, {"ansible_port": int(port), **values}
    elif pattern.endswith(":"):
        _ini_fail(where, "a host pattern may not end in ':' (reserved for a port)")
    _add_hosts(builder, section, pattern, values, where.path, where.line)


def _ini_value(text: str) -> Any:
    """As the ini plugin does: a Python literal when the text is one, else the text."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if isinstance(value, (str, int, float, bool, list, dict)) else text


def _ini_fail(where: Problem, message: str) -> NoReturn:
    raise InventoryError(Problem(where.path, where.line, f"{where.message!r}: {message}"))
