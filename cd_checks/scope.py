"""`cd-checks scope`: what a change deploys, where, and how, before it is merged.

The changed files are `git diff --name-only --no-renames REF...REV` (the files REV
changed since it left REF; a rename counts as its old and its new path, since both
places are deployed). For each change type that deploys one of them (config order;
a file in two types is deployed by both): its files, the hosts it may reach
(`cd_checks.changes.eligible`), the plan `rollout plan` gives over those hosts, the
share of the inventory that plan touches, the approvals it needs and a freeze
window that is on now or starts soon. Files no change type deploys are a warning:
whatever changes them will be deployed by hand. Rendering (text, Markdown for a
pull request comment or job summary, JSON version 1) is here too, pure.

Runs git and, through the loader it is handed, reads inventories; prints nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cd_checks import changes, freeze
from cd_checks.changes import ChangeType
from cd_checks.config import Config
from cd_checks.errors import ConfigError, InputError, ToolError
from cd_checks.files import FULL_HISTORY
from cd_checks.freeze import FreezeWindow
from cd_checks.report.escaping import escape_controls, quote_path
from cd_checks.report.wording import plural
from cd_checks.rollout import patterns, plan
from cd_checks.rollout.inventory import Inventory

JSON_VERSION = 1
LoadInventory = Callable[[Path], Inventory]


@dataclass(frozen=True)
class Freeze:
    """A freeze window of a type that is on now (`starts` None) or starts within the horizon."""

    window: FreezeWindow
    starts: datetime | None = None


@dataclass(frozen=True)
class TypeScope:
    """One triggered change type: its files, hosts and plan for this change."""

    change: ChangeType
    files: tuple[str, ...]
    eligible: tuple[str, ...]
    scoped_by: tuple[str, ...]  # the scope_by groups that narrowed the hosts; () none
    plan: plan.Plan
    fleet: int  # hosts in the type's inventory
    freeze: Freeze | None
    warnings: tuple[str, ...]

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts the plan deploys to, stage by stage."""
        return tuple(h for stage in self.plan.stages for h in stage.hosts)

    @property
    def share(self) -> float:
        return len(self.hosts) / self.fleet if self.fleet else 0.0


@dataclass(frozen=True)
class Scope:
    base: str  # the commit REV left REF at (merge base)
    revision: str
    files: tuple[str, ...]
    types: tuple[TypeScope, ...]
    unmatched: tuple[str, ...]
    overlaps: tuple[tuple[str, tuple[str, ...]], ...]  # file -> the types deploying it
    configured: bool = True  # False: the config has no `changes:` and no `rollout:`

    @property
    def warnings(self) -> tuple[str, ...]:
        found = [f"{t.change.label}: {w}" for t in self.types for w in t.warnings]
        if self.unmatched:
            names = ", ".join(quote_path(p) for p in self.unmatched)
            found.append(f"not deployed by any change type: {names}")
        found += [
            f"{t.change.label}: frozen now: {freeze.describe(t.freeze.window)}"
            for t in self.types
            if t.freeze and t.freeze.starts is None
        ]
        return tuple(found)


# -- git ----------------------------------------------------------------------------


def changed_files(root: Path, ref: str, revision: str) -> tuple[str, str, list[str]]:
    """(merge base, revision commit, files changed in REF...REV, sorted)."""
    head = _commit(root, revision, "--revision")
    base_ref = _commit(root, ref, "--changed-since")
    done = _git(root, "merge-base", base_ref, head, check=False)
    if done.returncode != 0:
        shallow = _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        why = f"this clone is shallow; {FULL_HISTORY}" if shallow else "unrelated history"
        raise InputError(
            f"--changed-since {_shown(ref)}: no common ancestor with {_shown(revision)} ({why})"
        )
    base = done.stdout.strip()
    listed = _git(root, "diff", "--name-only", "-z", "--no-renames", "--relative", base, head, "--")
    return base, head, sorted({p for p in listed.stdout.split("\0") if p})


def default_ref(root: Path, branch: str) -> str:
    """Where a change is compared from by default: origin's copy of `branch` when the
    clone has it (a CI checkout often has no local branch), else `branch`."""
    remote = f"origin/{branch}"
    found = _git(root, "rev-parse", "--verify", "--quiet", f"refs/remotes/{remote}", check=False)
    return remote if found.returncode == 0 else branch


def _commit(root: Path, rev: str, option: str) -> str:
    if rev.startswith("-"):  # git would read it as an option
        raise InputError(f"{option} {_shown(rev)}: a revision cannot start with '-'")
    done = _git(
        root,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{rev}^{{commit}}",
        check=False,
    )
    if done.returncode != 0:
        shallow = _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        hint = f"this clone is shallow; {FULL_HISTORY}" if shallow else "fetch it first"
        raise InputError(f"{option} {_shown(rev)}: no such revision in this clone; {hint}")
    return done.stdout.strip()


def _shown(rev: str) -> str:
    return escape_controls(rev, keep="")


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        raw = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise ToolError("git is not installed (scope compares revisions with it)") from exc
    done = subprocess.CompletedProcess(
        raw.args,
        raw.returncode,
        raw.stdout.decode("utf-8", "surrogateescape"),
        raw.stderr.decode("utf-8", "replace"),
    )
    if check and done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["failed"]
        raise ToolError(f"git {args[0]}: {lines[-1]}")
    return done


# -- the scope ----------------------------------------------------------------------


def build(
    config: Config,
    files: Sequence[str],
    *,
    base: str,
    revision: str,
    load_inventory: LoadInventory,
    inventory: Path | None,
    now: datetime,
) -> Scope:
    """The scope of a change of `files`. `inventory` replaces every type's own."""
    types = changes.change_types(config)
    loaded: dict[Path, Inventory] = {}

    def inventory_of(change: ChangeType) -> Inventory:
        path = (inventory or config.root / change.rollout.inventory).resolve()
        if path not in loaded:
            loaded[path] = load_inventory(path)
        return loaded[path]

    found = changes.triggered(types, files)
    scoped = tuple(
        _type_scope(change, owned, inventory_of(change), revision, now) for change, owned in found
    )
    owners: dict[str, list[str]] = {}
    for change, owned in found:
        for path in owned:
            owners.setdefault(path, []).append(change.label)
    overlaps = tuple((p, tuple(names)) for p, names in owners.items() if len(names) > 1)
    return Scope(
        base=base,
        revision=revision,
        files=tuple(files),
        types=scoped,
        # Without change types (a validate-only repository) nothing is deployed by a
        # pipeline, and saying so of every file would be noise.
        unmatched=tuple(changes.unmatched(types, files)) if types else (),
        configured=bool(types),
        overlaps=tuple(sorted(overlaps)),
    )


def _type_scope(
    change: ChangeType, files: list[str], inventory: Inventory, revision: str, now: datetime
) -> TypeScope:
    try:
        eligible = changes.eligible(change, inventory, files)
    except ConfigError as exc:  # a bad regex in a host pattern or a scope_by group
        raise ConfigError(f"{change.key}: {exc}") from exc
    built = plan.build(inventory, change.rollout, revision, eligible=eligible)
    planned = {h for stage in built.stages for h in stage.hosts}
    warnings = [
        f"host pattern {change.hosts!r}: {term!r} matches no group or host of the inventory"
        for term in patterns.unknown_terms(inventory, change.hosts)
    ]
    groups = changes.scope_groups(change, files)
    warnings += [
        f"scope_by names {group!r}, which matches no host of the inventory"
        for group in groups
        if not patterns.select(inventory, group)
    ]
    left = [h for h in eligible if h not in planned]
    if left:
        warnings.append(f"no stage takes {plural(len(left), 'eligible host')}: {', '.join(left)}")
    return TypeScope(
        change=change,
        files=tuple(files),
        eligible=eligible,
        scoped_by=groups,
        plan=built,
        fleet=len(inventory.hosts),
        freeze=_freeze(change.freeze, now),
        warnings=tuple(escape_controls(w, keep="") for w in warnings),
    )


def _freeze(windows: Sequence[FreezeWindow], now: datetime) -> Freeze | None:
    on = freeze.active(windows, now)
    if on is not None:
        return Freeze(on)
    ahead = freeze.upcoming(windows, now)
    return Freeze(ahead[1], ahead[0]) if ahead else None


# -- rendering ----------------------------------------------------------------------


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def _summary(scoped: TypeScope) -> str:
    touched = len(scoped.hosts)
    line = f"{touched} of {plural(scoped.fleet, 'host')} ({_percent(scoped.share)})"
    if scoped.scoped_by:
        line += f", scoped by {', '.join(scoped.scoped_by)}"
    return line


def _notes(scoped: TypeScope) -> list[str]:
    notes = []
    if scoped.change.require_approvals:
        notes.append(f"needs {plural(scoped.change.require_approvals, 'approval')}")
    if scoped.freeze is not None:
        window = freeze.describe(scoped.freeze.window)
        if scoped.freeze.starts is None:
            notes.append(f"FROZEN now: {window}")
        else:
            notes.append(f"freeze from {scoped.freeze.starts:%Y-%m-%d %H:%M} UTC: {window}")
    return notes


def _nothing(scope: Scope) -> str:
    if not scope.configured:
        return "cd-checks.yml has no `changes:` and no `rollout:` section"
    return "no change type deploys these files"


def render_text(scope: Scope) -> str:
    changed = plural(len(scope.files), "changed file")
    lines = [f"scope of {scope.base[:12]}...{scope.revision[:12]}: {changed}"]
    if not scope.types:
        lines.append(f"deploys nothing: {_nothing(scope)}")
    for scoped in scope.types:
        lines.append(f"change type {scoped.change.label}: {_summary(scoped)}")
        lines.append(f"  files: {', '.join(quote_path(p) for p in scoped.files)}")
        lines += [f"  {note}" for note in _notes(scoped)]
        lines += ["  " + line for line in plan.render_text(scoped.plan).splitlines()[1:]]
    for path, owners in scope.overlaps:
        lines.append(f"note: {quote_path(path)} is deployed by {', '.join(owners)} (in this order)")
    lines += [f"warning: {w}" for w in scope.warnings]
    return "\n".join(escape_controls(line, keep="") for line in lines) + "\n"


def render_markdown(scope: Scope) -> str:
    lines = [
        "### cd-checks scope",
        "",
        f"{plural(len(scope.files), 'changed file')} between `{scope.base[:12]}` and "
        f"`{scope.revision[:12]}`.",
    ]
    if not scope.types:
        lines += ["", f"**Deploys nothing**: {_text(_nothing(scope))}."]
    for scoped in scope.types:
        lines += ["", f"#### {_text(scoped.change.label)}: {_text(_summary(scoped))}", ""]
        shown = ", ".join(_code(p) for p in scoped.files)
        lines += [f"Files: {shown}", ""]
        lines += [f"- {_text(note)}" for note in _notes(scoped)]
        lines += [
            *([""] if _notes(scoped) else []),
            *plan.render_markdown(scoped.plan).splitlines()[2:],
        ]
    for path, owners in scope.overlaps:
        lines += ["", f"{_code(path)} is deployed by {_text(', '.join(owners))}, in this order."]
    if scope.warnings:
        lines += ["", "**Warnings**", "", *[f"- {_text(w)}" for w in scope.warnings]]
    return "\n".join(lines) + "\n"


def _code(text: str) -> str:
    """A code span `text` cannot close (its fence is longer than any backtick run in it)."""
    shown = escape_controls(text, keep="").replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", shown)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {shown} " if shown.startswith("`") or shown.endswith("`") else shown
    return f"{fence}{padded}{fence}"


def _text(text: str) -> str:
    """Plain text in Markdown: no link, image, code span, HTML or table cell break."""
    escaped = re.sub(r"([\\`\[\]*_|])", r"\\\1", escape_controls(text, keep=""))
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_dict(scope: Scope) -> dict[str, object]:
    return {
        "version": JSON_VERSION,
        "base": scope.base,
        "revision": scope.revision,
        "files": list(scope.files),
        "deploys": bool(scope.types),
        "change_types": [_type_dict(t) for t in scope.types],
        "unmatched": list(scope.unmatched),
        "overlaps": [{"file": p, "change_types": list(o)} for p, o in scope.overlaps],
        "warnings": list(scope.warnings),
    }


def _type_dict(scoped: TypeScope) -> dict[str, object]:
    window = scoped.freeze
    return {
        "name": scoped.change.name,
        "files": list(scoped.files),
        "hosts_pattern": scoped.change.hosts,
        "scoped_by": list(scoped.scoped_by),
        "eligible": list(scoped.eligible),
        "hosts": list(scoped.hosts),
        "fleet": scoped.fleet,
        "share": round(scoped.share, 4),
        "require_approvals": scoped.change.require_approvals,
        "freeze": None
        if window is None
        else {
            "active": window.starts is None,
            "starts": window.starts.isoformat() if window.starts else None,
            "reason": window.window.reason,
            "window": freeze.describe(window.window),
        },
        "plan": plan.to_dict(scoped.plan),
        "warnings": list(scoped.warnings),
    }


def render_json(scope: Scope) -> str:
    return json.dumps(to_dict(scope), indent=2) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
