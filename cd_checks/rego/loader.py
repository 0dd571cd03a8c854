"""Find `.rego` files and load data documents for a `PolicySource`; shared by every engine.

Policy paths are searched recursively and sorted so that every run loads the
same files in the same order. Data documents (`.json`, `.yaml`, `.yml`) are
merged at the root of `data`, as conftest's `--data` does; two documents that
set the same leaf differently are a `PolicyError` naming both files. This
module reads files only: it never evaluates Rego.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cd_checks import bounded
from cd_checks.errors import PolicyError

DATA_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass(frozen=True)
class PolicyFile:
    """One `.rego` file: the name used in messages (as found under the given path) and its text."""

    name: str
    text: str


def policy_files(paths: Iterable[Path], *, tests: bool) -> list[PolicyFile]:
    """All `.rego` files under `paths`; `*_test.rego` only when `tests` is true."""
    found: list[PolicyFile] = []
    for root in paths:
        files = [
            p
            for p in _walk(root, (".rego",), "policy")
            if tests or not p.name.endswith("_test.rego")
        ]
        if not files:
            raise PolicyError(f"no policies found in {root}")
        found.extend(PolicyFile(str(p), _read(p)) for p in files)
    return found


def _walk(root: Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """The files under `root` with `suffixes`; a directory that cannot be read is a
    PolicyError, never a policy silently left out."""

    def refuse(error: OSError) -> None:
        raise PolicyError(f"{error.filename}: cannot read: {error.strerror or error}")

    try:
        if not root.exists():
            raise PolicyError(f"{what} path not found: {root}")
        if root.is_file():
            return [root] if root.suffix in suffixes else []
    except OSError as exc:
        refuse(exc)
    found = []
    for directory, _, names in os.walk(root, onerror=refuse):
        found += [Path(directory) / name for name in names if Path(name).suffix in suffixes]
    return sorted(p for p in found if p.is_file())


def _read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: cannot read: not UTF-8 text ({exc.reason})") from exc


def load_data(paths: Iterable[Path], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge every data document under `paths`, then `extra`, into one `data` object."""
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for root in paths:
        if root.is_file() and root.suffix not in DATA_SUFFIXES:
            raise PolicyError(f"{root}: a data document must be .json, .yaml or .yml")
        for path in _walk(root, DATA_SUFFIXES, "data"):
            document = _parse_data(path)
            if document is not None:
                _merge(merged, document, (), str(path), origins)
    if extra:
        _merge(merged, dict(extra), (), "built-in data", origins)
    return merged


def _parse_data(path: Path) -> dict[str, Any] | None:
    text = _read(path)
    try:
        value = _parse_text(path, text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    except bounded.ParseProblem as exc:  # an alias bomb, too deep, NaN, a duplicate key
        raise PolicyError(f"{path}{exc.where()}: {exc.message}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{path}{where}: invalid YAML: {problem}") from exc
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PolicyError(f"{path}: a data document must be a mapping at the top level")
    return value


def _parse_text(path: Path, text: str) -> Any:
    if path.suffix != ".json":
        return bounded.load_yaml(text, bounded.SETTINGS)
    value, duplicates = bounded.load_json(text)
    if duplicates:  # which value a policy sees would depend on the parser
        raise duplicates[0]
    return value


def _merge(
    into: dict[str, Any],
    new: Mapping[str, Any],
    where: tuple[str, ...],
    origin: str,
    origins: dict[tuple[str, ...], str],
) -> None:
    for key, value in new.items():
        path = (*where, str(key))
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            _merge(current, value, path, origin, origins)
        elif key in into and current != value:
            first = next(
                (origins[path[:n]] for n in range(len(path), 0, -1) if path[:n] in origins),
                "another document",
            )
            raise PolicyError(
                f"{origin}: data.{'.'.join(path)} conflicts with the value from {first}"
            )
        else:
            into[key] = _plain(value)
            origins[path] = origin


def _plain(value: Any) -> Any:
    """A deep copy with mappings as dicts, so later merges never alter the caller's objects."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
