"""The `rollout:` section's referents, checked in the pull request, not at deploy time.

The inventory exists and parses, every group a stage names is in it, the
playbook (ansible apply) or the command's program (command apply, when it
is a path in the repository) exists, and the testinfra health tests exist.
Each finding points at the offending value in cd-checks.yml; an inventory
that does not parse is reported at its own file and line, unless the
syntax check already did. Nothing here runs the inventory, the playbook or
the command, and paths outside the repository (a deploy host's
/etc/ansible/hosts, or a link out of it) are not checked. YAML is read
through `cd_checks.bounded`.
"""

from __future__ import annotations

import difflib
import os
import posixpath
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from cd_checks import bounded, guard
from cd_checks.config import Config
from cd_checks.documents import JsonPath, Parsed
from cd_checks.errors import CdChecksError, ConfigError
from cd_checks.findings import Finding
from cd_checks.rollout import inventory as inventory_module
from cd_checks.rollout.spec import AnsibleApply, MetricsSpec, RolloutSpec, from_section

SHOWN_GROUPS = 12
# Syntax findings that mean a file could not be read as its kind at all: its own
# syntax errors, the bounds of `cd_checks.bounded` (a value it refuses to build too),
# the per-file guard's kinds, and links that were not followed. Not `duplicate-key`:
# such a file is read (the last value wins).
UNPARSED_RULES = frozenset(
    {
        *("syntax", "inventory", "encoding", "binary", "unreadable"),
        *("too-deep", "too-large", "alias-bomb", "number-too-long", "bad-value"),
        *("symlink-loop", "symlink-outside", guard.INTERNAL),
    }
)


@dataclass(frozen=True)
class Where:
    """The config file (repo-relative, as findings show it) and how to locate its keys."""

    path: str
    parsed: Parsed

    def finding(self, keys: JsonPath, rule: str, message: str) -> Finding:
        position = self.parsed.locate(0, keys)
        line, column = position if position else (None, None)
        return Finding(self.path, line, column, "rollout", rule, "error", message)


def check(
    config: Config,
    config_path: str,
    *,
    changed: Collection[str] | None,
    reported: Collection[str] = (),
    inventory: Path | None = None,
) -> list[Finding]:
    """Findings for the `rollout:` section of `config`.

    `changed`: the files a PR (or a hook) touched, None for a whole-repository
    run; the check runs when one of them is the config, the inventory or the
    playbook, or when a referent is gone (a deleted file is in no file list).
    `reported`: files with syntax findings already. `inventory`: the inventory
    a rollout uses instead of `rollout.inventory` (`rollout run --inventory`).
    """
    section = config.raw.get("rollout")
    if not section or config.source is None:
        return []
    where = Where(config_path, located(config.source))
    try:
        spec = from_section(section)
    except CdChecksError as exc:
        return [where.finding(["rollout", *config_keys(exc)], "invalid", str(exc))]
    if changed is not None and not wanted(spec, config.root, config_path, changed):
        return []
    return check_spec(spec, section, config.root, where, reported=reported, inventory=inventory)


def config_keys(exc: CdChecksError) -> JsonPath:
    """Where below `rollout` a config mistake is, when the spec knows (`ConfigError.at`)."""
    return list(exc.at) if isinstance(exc, ConfigError) else []


def check_spec(
    spec: RolloutSpec,
    section: Mapping[str, Any],
    root: Path,
    where: Where,
    *,
    reported: Collection[str] = (),
    inventory: Path | None = None,
) -> list[Finding]:
    """The referents of one rollout spec (`section` as written); keys start at "rollout",
    which `where` places (a change type's spec: under `changes.<name>` or `defaults`)."""
    findings = _inventory(spec, root, where, reported, inventory)
    findings += _apply(spec, root, where)
    findings += _metrics(spec, section, where)
    if spec.health.testinfra is not None and _missing(root, spec.health.testinfra):
        findings.append(
            where.finding(
                ["rollout", "health", "testinfra"],
                "testinfra-missing",
                f"health.testinfra {spec.health.testinfra!r} does not exist"
                f"{_near(root, spec.health.testinfra)}",
            )
        )
    return findings


def _metrics(spec: RolloutSpec, section: Mapping[str, Any], where: Where) -> list[Finding]:
    """The metric gates: placeholders, check settings, and enough samples for a comparison.

    A stage's `metrics:` mapping is checked for the keys it sets itself (the pipeline's
    are reported once, at the pipeline's section)."""
    from cd_checks.rollout import analysis

    health = section.get("health")
    pipeline = health.get("metrics") if isinstance(health, Mapping) else None
    sections: list[tuple[JsonPath, MetricsSpec, Mapping[str, Any]]] = [
        (["rollout", "health", "metrics"], spec.health.metrics, pipeline or {"checks": []})
    ]
    for index, raw in enumerate(section.get("stages") or ()):
        own = raw.get("metrics") if isinstance(raw, Mapping) else None
        if isinstance(own, Mapping):
            metrics = spec.metrics_of(spec.stages[index].name)
            sections.append((["rollout", "stages", index, "metrics"], metrics, own))
    findings: list[Finding] = []
    for keys, metrics, raw in sections:
        shared = analysis.template_problems(replace(metrics, checks=()))
        problems = list(shared) if "instance" in raw or keys[1] == "health" else []
        problems += analysis.bake_problems(metrics, spec.health.bake_seconds)
        findings += [where.finding(keys, "metrics", p) for p in problems]
        if "checks" not in raw:
            continue  # the pipeline's checks, reported there
        for number, check in enumerate(metrics.checks):
            own = analysis.template_problems(replace(metrics, checks=(check,)))[len(shared) :]
            key: JsonPath = [*keys, "checks", number]
            findings += [where.finding(key, "metrics", p) for p in own]
    return findings


def unparsed(findings: Iterable[Finding]) -> set[str]:
    """Files the syntax check found unparsable (not merely unstyled): their error is shown."""
    return {f.path for f in findings if f.check == "syntax" and f.rule in UNPARSED_RULES}


def located(source: Path) -> Parsed:
    try:
        node = bounded.compose_yaml(source.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, bounded.ParseProblem):
        node = None  # config.load read it a moment ago; findings go unlocated
    return Parsed("yaml", (None,), (node,))


def wanted(spec: RolloutSpec, root: Path, config_path: str, changed: Collection[str]) -> bool:
    """Whether a PR's `changed` files call for checking `spec`'s referents again."""
    referents = [config_path, *_in_repository(spec.inventory)]
    if isinstance(spec.apply, AnsibleApply):
        referents += _in_repository(spec.apply.playbook)
    for path in changed:
        if any(path == r or path.startswith(r.rstrip("/") + "/") for r in referents):
            return True
    gone = [*referents[1:], *_in_repository(spec.health.testinfra or "")]
    return any(_missing(root, r) for r in gone)


def _in_repository(path: str) -> list[str]:
    """`path` normalised, when it is a relative path that stays inside the repository."""
    if not path or path.startswith(("/", "~")):
        return []
    normal = posixpath.normpath(path)
    return [] if normal == ".." or normal.startswith("../") else [normal]


def _leaves(root: Path, path: str) -> bool:
    """Whether `path` leads out of the repository through a symbolic link: not read here."""
    try:
        resolved, base = (root / path).resolve(), root.resolve()
    except (OSError, RuntimeError):
        return True  # a link loop: the syntax check reports it
    return resolved != base and base not in resolved.parents


def _missing(root: Path, path: str) -> bool:
    return bool(_in_repository(path)) and not (root / path).exists()


def _inventory(
    spec: RolloutSpec,
    root: Path,
    where: Where,
    reported: Collection[str],
    override: Path | None,
) -> list[Finding]:
    if override is None:
        if not _in_repository(spec.inventory) or _leaves(root, spec.inventory):
            return []
        if _missing(root, spec.inventory):
            message = f"inventory {spec.inventory!r} does not exist{_near(root, spec.inventory)}"
            return [where.finding(["rollout", "inventory"], "inventory-missing", message)]
    path = override or root / spec.inventory
    try:
        found = inventory_module.read_static(path)
    except inventory_module.InventoryError as exc:
        return _unparsed(exc.problem, root, where, reported)
    except CdChecksError as exc:
        return [where.finding(["rollout", "inventory"], "inventory-invalid", str(exc))]
    if found is None:
        return []  # a dynamic inventory: its groups are only known when it runs
    return [_unknown_group_finding(where, spec, i, found) for i in _unknown(spec, found)]


def _unparsed(
    problem: inventory_module.Problem, root: Path, where: Where, reported: Collection[str]
) -> list[Finding]:
    shown = _relative(root, problem.path)
    if shown in reported:
        return []  # the syntax check already shows this file's error
    column = 1 if problem.line else None
    message = f"the rollout inventory does not parse: {problem.message}"
    return [Finding(shown, problem.line, column, "rollout", "inventory-invalid", "error", message)]


def _relative(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _unknown(spec: RolloutSpec, found: inventory_module.Inventory) -> list[int]:
    return [i for i, stage in enumerate(spec.stages) if stage.group not in found.groups]


def _apply(spec: RolloutSpec, root: Path, where: Where) -> list[Finding]:
    if isinstance(spec.apply, AnsibleApply):
        playbook = spec.apply.playbook
        if not _missing(root, playbook):
            return []
        message = f"playbook {playbook!r} does not exist{_near(root, playbook)}"
        keys: JsonPath = ["rollout", "apply", "ansible", "playbook"]
        return [where.finding(keys, "playbook-missing", message)]
    program = spec.apply.argv[0]
    # A bare name (ansible-playbook, make) is looked up on the deploy host's PATH,
    # and a placeholder is only known per wave: only a repository path is checked.
    if "/" not in program or "{" in program or not _in_repository(program):
        return []
    keys = ["rollout", "apply", "command", 0]
    full = root / program
    if not full.exists():
        message = f"command {program!r} does not exist{_near(root, program)}"
        return [where.finding(keys, "command-missing", message)]
    if full.is_file() and not os.access(full, os.X_OK):
        message = f"command {program!r} is not executable (git update-index --chmod=+x {program})"
        return [where.finding(keys, "command-not-executable", message)]
    return []


def _near(root: Path, path: str) -> str:
    """`; did you mean 'x'?` when a file of a similar name is beside where `path` points."""
    target = root / path
    try:
        siblings = [p.name for p in target.parent.iterdir()] if target.parent.is_dir() else []
    except OSError:
        return ""
    close = difflib.get_close_matches(target.name, siblings, n=1, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {posixpath.join(posixpath.dirname(path), close[0])!r}?"


def group_hint(group: str, groups: Sequence[str]) -> str:
    close = difflib.get_close_matches(group, groups, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    shown = sorted(groups)
    more = f", ... ({len(shown) - SHOWN_GROUPS} more)" if len(shown) > SHOWN_GROUPS else ""
    return f" (its groups: {', '.join(shown[:SHOWN_GROUPS])}{more})"


def _unknown_group_finding(
    where: Where, spec: RolloutSpec, index: int, found: inventory_module.Inventory
) -> Finding:
    stage = spec.stages[index]
    message = (
        f"stage {stage.name!r} names group {stage.group!r}, which the inventory does not "
        f"define{group_hint(stage.group, list(found.groups))}"
    )
    return where.finding(["rollout", "stages", index, "hosts"], "unknown-group", message)
