"""Deploy metrics from the audit trail and git history: pure functions and their renderers.

Definitions (the numbers an auditor can recompute by hand from the trail):

- A *deploy* is a rollout of one revision to the environment (default
  `production`): consecutive finished `rollout`/`stage` records of the
  environment with the same `revision_to` are one deploy (its canary and
  production stages are one change reaching production), dated by the start
  of its first record. Deploys starting in the window count.
- A deploy *failed* if any of its records ended `failed`, `rolled_back` or
  `rollback_failed`, a break-glass record of it went past a failed health
  gate, or an incident was opened against it.
- *Time to restore*: per incident, detection (`incident open`) to restore
  (`incident resolve`); per automatic rollback, the failed gate's detection
  to the verified restore. Restores detected in the window count; an open
  incident or unverified rollback has no time yet. Median is the middle value
  (mean of the two middle ones); p90 is the nearest-rank 90th percentile.
- *Changes* are the commits on the default branch's first-parent line
  committed in the window (a merged PR is one change: its merge or squash
  commit). A change came through a PR/MR when its message says so: GitHub
  "Merge pull request #N" or a subject ending "(#N)", GitLab "See merge
  request …!N". It went *through the pipeline* when it came through a PR/MR
  and a succeeded deploy to the environment has it (its revision_to is that
  commit or a later one on the line). Direct pushes count against.
- *Deploy markers* (whatever the window): the latest run of each stage of the
  environment and its latest on-demand rollback, with start and end times,
  revision and outcome; a run without a final record is still running (or was
  killed and not taken over yet). The rollout writes the same metrics to a
  node_exporter textfile as it goes (`cd_checks.rollout.markers`), under the
  same names and labels, so one dashboard query reads either source.

Per change type (`changes:` in cd-checks.yml; without it there is no breakdown
and every figure is as above): a type's deploys, failures and restores are those
of its own records (each run, incident and rollback records its type; records
from before change types are the unnamed type). A change *touches* a type when a
file it changed on the line (a merge: against its first parent; a rename: both
names) is one of the type's files; it went through that type's pipeline when it
came through a PR/MR and a succeeded deploy of that type has it. The unnamed type
of older records deployed every file, so every change touches it; a type no
longer configured has no files, so no changes. Overall, deploys, failures and
restores are the sum over the types (two types deploying one revision are two
deploys), and a change went through the pipeline when it came through a PR/MR
and every type it touches deployed it, or an unnamed deploy (which deployed
every file) has it: a change that touches no type is never through the pipeline,
whoever deployed it — a pipeline that nobody runs for it means a change by hand.
Prometheus: each figure of each named type is the overall series with a
`change` label added; the unnamed type has none (an empty label is no label to
Prometheus: it would be the overall series again).
"""

from __future__ import annotations

import html
import json
import math
import re
import statistics
import subprocess
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cd_checks.audit.record import FAILED_OUTCOMES, AuditRecord, iso, parse_time
from cd_checks.changes import ChangeType, triggered
from cd_checks.errors import AuditError, InputError, ToolError

DEFAULT_ENVIRONMENT = "production"
GITHUB_MERGE = re.compile(r"^Merge pull request #(\d+)")
GITHUB_SQUASH = re.compile(r"\(#(\d+)\)\s*$")
GITLAB_MERGE = re.compile(r"See merge request \S*!(\d+)")


@dataclass(frozen=True)
class Commit:
    sha: str
    committed_at: datetime
    change_request: str | None  # "#12" / "!12" when it came through a PR/MR
    files: tuple[str, ...] = ()  # what it changed on the line (read only for change types)


@dataclass(frozen=True)
class Deploy:
    revision: str
    started_at: datetime
    record_ids: tuple[str, ...]
    failed: bool
    succeeded: bool


@dataclass(frozen=True)
class Week:
    start: str
    deploys: int
    failed_deploys: int
    change_failure_rate: float | None
    mttr_median_seconds: float | None
    changes: int
    changes_through_pipeline: int
    pipeline_share: float | None


@dataclass(frozen=True)
class DeployMarker:
    """The latest run of one stage of the environment, or its latest on-demand rollback
    (`stage` None), as the audit trail tells it."""

    stage: str | None
    revision: str
    started_at: str
    finished_at: str | None = None  # None: still running, or killed and not taken over yet
    outcome: str | None = None


@dataclass(frozen=True)
class Metrics:
    environment: str
    window_start: str
    window_end: str
    days: float
    deploys: int
    failed_deploys: int
    deploys_per_day: float
    deploys_per_week: float
    change_failure_rate: float | None
    restores: int
    open_incidents: int
    mttr_median_seconds: float | None
    mttr_p90_seconds: float | None
    changes: int
    changes_through_pipeline: int
    pipeline_share: float | None
    weeks: tuple[Week, ...]
    deploy_markers: tuple[DeployMarker, ...] = ()
    # The change type these figures are of ("" the unnamed one); None: of every type.
    change: str | None = None
    # The same figures per change type (config order, then types only the trail names),
    # when the config names change types.
    by_change: tuple[Metrics, ...] = ()
    # Median exposure of automatic restores: the change reaching its first host -> verified.
    exposure_median_seconds: float | None = None


def change_request_of(message: str) -> str | None:
    """The PR/MR a commit message names (see the module docstring), or None."""
    subject = message.strip().splitlines()[0] if message.strip() else ""
    for pattern in (GITHUB_MERGE, GITHUB_SQUASH):
        match = pattern.search(subject)
        if match:
            return f"#{match.group(1)}"
    gitlab = GITLAB_MERGE.search(message)
    return f"!{gitlab.group(1)}" if gitlab else None


def history(repo: Path, branch: str, *, files: bool = False) -> list[Commit]:
    """The first-parent history of `branch`, newest first; with `files`, what each
    commit changed on the line (a merge against its first parent; renames as both names)."""
    if files:
        shape = ["--format=%x1e%H%x00%cI%x00%B%x00", "-m", "--no-renames", "--name-only", "-z"]
    else:
        shape = ["--format=%H%x00%cI%x00%B%x1e"]
    # `--branch=--output=F` must name a branch, never make git write F.
    args = ["git", "-C", str(repo), "log", "--first-parent", *shape, "--end-of-options"]
    try:
        done = subprocess.run(
            [*args, branch, "--"],
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # a message in another encoding is not worth a crash
            check=False,
        )
    except OSError as exc:
        raise ToolError(f"cannot run git: {exc}") from exc
    if done.returncode != 0:
        raise ToolError(f"git log {branch} failed: {done.stderr.strip() or done.returncode}")
    if files:
        return _with_files(done.stdout)
    commits = []
    for entry in done.stdout.split("\x1e"):
        if entry.strip():
            sha, when, message = entry.strip("\n").split("\x00", 2)
            commits.append(Commit(sha, parse_time(when), change_request_of(message)))
    return commits


def _with_files(output: str) -> list[Commit]:
    """Commits of `git log -z --name-only` in the `history(files=True)` shape: each entry
    is sha NUL date NUL message NUL, then NUL, and when it changed files, a newline and
    each path NUL-terminated."""
    commits = []
    for entry in output.split("\x1e")[1:]:
        sha, when, rest = entry.split("\x00", 2)
        message, _, names = rest.partition("\x00")
        paths = names.removeprefix("\x00").removeprefix("\n").split("\x00")
        commits.append(
            Commit(sha, parse_time(when), change_request_of(message), tuple(p for p in paths if p))
        )
    return commits


def deploys(records: Sequence[AuditRecord], environment: str) -> list[Deploy]:
    """The environment's deploys, oldest first (see the module docstring): the runs of
    each change type are grouped on their own, so two types never share a deploy."""
    incident_refs = {ref for r in records if r.kind == "incident_open" for ref in r.refs}
    groups: list[list[AuditRecord]] = []
    latest: dict[str | None, list[AuditRecord]] = {}
    for record in records:
        if record.kind not in ("rollout", "stage") or record.environment != environment:
            continue
        if not record.finished:
            continue
        group = latest.get(change_of(record))
        if group is not None and group[-1].revision_to == record.revision_to:
            group.append(record)
        else:
            latest[change_of(record)] = group = [record]
            groups.append(group)
    return [_deploy(group, incident_refs) for group in groups]


def change_of(record: AuditRecord) -> str | None:
    """The record's change type as text (a forged non-text value must not crash a count)."""
    return None if record.change is None else str(record.change)


def _deploy(group: list[AuditRecord], incident_refs: set[str]) -> Deploy:
    ids = tuple(i for r in group for i in (r.id, *r.refs))
    failed = any(r.outcome in FAILED_OUTCOMES or _forced_past_a_gate(r) for r in group) or bool(
        incident_refs & set(ids)
    )
    return Deploy(
        revision=group[0].revision_to or "",
        started_at=parse_time(group[0].started_at or ""),
        record_ids=ids,
        failed=failed,
        succeeded=any(r.outcome == "succeeded" for r in group),
    )


def _forced_past_a_gate(record: AuditRecord) -> bool:
    return bool(record.break_glass) and any(
        isinstance(g, dict) and not g.get("passed", True) for g in record.gates or ()
    )


def deploy_markers(records: Sequence[AuditRecord], environment: str) -> tuple[DeployMarker, ...]:
    """The latest run of each stage of `environment`, then its latest on-demand rollback."""
    latest: dict[str | None, AuditRecord] = {}
    finals: dict[str, AuditRecord] = {}
    for record in records:
        if record.environment != environment or record.kind not in ("stage", "rollback"):
            continue
        if record.finished and record.refs:
            finals[record.refs[0]] = record
        elif not record.finished and (record.kind == "rollback") == (record.stage is None):
            latest[record.stage] = record  # a stage run names its stage, a rollback none
    ordered = sorted(latest.items(), key=lambda item: item[0] is None)
    return tuple(_marker(start, finals.get(start.id)) for _, start in ordered)


def _marker(start: AuditRecord, final: AuditRecord | None) -> DeployMarker:
    return DeployMarker(
        stage=start.stage,
        revision=start.revision_to or "",
        started_at=start.started_at or "",
        finished_at=final.ended_at if final is not None else None,
        outcome=final.outcome if final is not None else None,
    )


def restores(
    records: Sequence[AuditRecord], environment: str = DEFAULT_ENVIRONMENT
) -> tuple[list[tuple[datetime, float]], int]:
    """(detected_at, seconds to restore) of each restore of `environment`; its open incidents."""
    resolved = {r.refs[0]: r for r in records if r.kind == "incident_resolve" and r.refs}
    found: list[tuple[datetime, float]] = []
    still_open = 0
    for record in records:
        if record.environment != environment:
            continue
        if record.kind == "incident_open":
            end = resolved.get(record.id)
            if end is None:
                still_open += 1
                continue
            found.append(_span(record.started_at, end.ended_at))
        elif record.finished and isinstance(record.rollback, dict):
            rollback = record.rollback
            if (
                rollback.get("verified")
                and rollback.get("detected_at")
                and rollback.get("restored_at")
            ):
                found.append(_span(rollback["detected_at"], rollback["restored_at"]))
    return found, still_open


def _span(start: str | None, end: str | None) -> tuple[datetime, float]:
    begin = parse_time(start or "")
    return begin, (parse_time(end or "") - begin).total_seconds()


def check_environment(
    environment: str, records: Sequence[AuditRecord], configured: Sequence[str] | None
) -> None:
    """InputError for an environment the config's rollout stages (else the trail) never name."""
    if configured is not None:
        if environment not in configured:
            raise InputError(
                f"unknown environment {environment!r}: the rollout stages deploy to "
                f"{', '.join(configured) or 'no environment'}"
            )
        return
    if not any(r.environment == environment for r in records):
        raise InputError(f"unknown environment {environment!r}: no audit record names it")


def check_change(change: str, records: Sequence[AuditRecord], configured: Sequence[str]) -> None:
    """InputError for a change type neither the config nor any audit record names."""
    if change in configured or any(change_of(r) == change for r in records):
        return
    raise InputError(
        f"unknown change type {change!r}: cd-checks.yml names "
        f"{', '.join(configured) or 'no change type'}"
    )


def p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def deployed_shas(commits: Sequence[Commit], done: Sequence[Deploy]) -> set[str]:
    """Commits of the line that some succeeded deploy has (its revision or an older one)."""
    index = {c.sha: i for i, c in enumerate(commits)}
    oldest_reach: int | None = None
    for deploy in done:
        if not deploy.succeeded:
            continue
        position = _position(index, deploy.revision)
        if position is not None and (oldest_reach is None or position < oldest_reach):
            oldest_reach = position
    if oldest_reach is None:
        return set()
    return {c.sha for c in commits[oldest_reach:]}


def _position(index: dict[str, int], revision: str) -> int | None:
    if revision in index:
        return index[revision]
    if len(revision) >= 7:
        hits = [i for sha, i in index.items() if sha.startswith(revision)]
        return hits[0] if len(hits) == 1 else None
    return None


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


Window = tuple[datetime, datetime, str]  # since, until, environment


@dataclass(frozen=True)
class _Part:
    """One change type's share of the trail and the line (see the module docstring)."""

    name: str | None
    records: list[AuditRecord]
    changes: list[Commit]  # the commits of the window that touch it
    shipped: set[str]  # the commits a succeeded deploy of it has


def compute(
    records: Sequence[AuditRecord],
    commits: Sequence[Commit],
    *,
    since: datetime,
    until: datetime,
    environment: str = DEFAULT_ENVIRONMENT,
    types: Sequence[ChangeType] = (),
    change: str | None = None,
) -> Metrics:
    """All metrics for the window [since, until); with the config's named change `types`
    (commits read with their files), per change type too, or (`change`, "" the unnamed
    type) of that type only."""
    window = (since, until, environment)
    if not types:
        shipped = deployed_shas(commits, deploys(records, environment))
        return _metrics(records, commits, _reviewed(commits, shipped), window)
    parts = _parts(records, commits, types, window)
    if change is not None:
        part = next((p for p in parts if (p.name or "") == change), None)
        if part is None:
            raise InputError(f"unknown change type {change!r}: {_named(parts)}")
        return _of_part(part, window)
    through = _through_overall(_within(commits, window), parts, types)
    overall = _metrics(records, commits, through, window)
    return replace(overall, by_change=tuple(_of_part(p, window) for p in parts))


def _named(parts: Sequence[_Part]) -> str:
    names = [p.name for p in parts if p.name is not None]
    return f"the change types are {', '.join(names)}" if names else "no change type is named"


def _of_part(part: _Part, window: Window) -> Metrics:
    figures = _metrics(part.records, part.changes, _reviewed(part.changes, part.shipped), window)
    return replace(figures, change=part.name or "")


def _reviewed(commits: Sequence[Commit], shipped: Collection[str]) -> set[str]:
    """The commits through the pipeline: came through a PR/MR, and deployed."""
    return {c.sha for c in commits if c.change_request and c.sha in shipped}


def _within(commits: Sequence[Commit], window: Window) -> list[Commit]:
    """The commits of the window: the only ones whose files matter."""
    return [c for c in commits if window[0] <= c.committed_at < window[1]]


def _parts(
    records: Sequence[AuditRecord],
    commits: Sequence[Commit],
    types: Sequence[ChangeType],
    window: Window,
) -> list[_Part]:
    """The configured named types in config order, then the types only the environment's
    records name (the unnamed one last)."""
    environment = window[2]
    recent = _within(commits, window)
    touched = {c.sha: _touched(types, c.files) for c in recent}
    names: list[str | None] = [t.name for t in types if t.name is not None]
    found = {change_of(r) for r in records if r.environment == environment} - set(names)
    names += sorted(n for n in found if n is not None)
    names += [None] if None in found else []
    parts = []
    for name in names:
        mine = [r for r in records if change_of(r) == name]
        # The unnamed type deployed every file; one no longer configured, none we know.
        changes = [c for c in recent if name is None or name in touched[c.sha]]
        shipped = deployed_shas(commits, deploys(mine, environment))
        parts.append(_Part(name, mine, changes, shipped))
    return parts


def _touched(types: Sequence[ChangeType], files: Sequence[str]) -> set[str]:
    return {t.name for t, _ in triggered(types, files) if t.name is not None}


def _through_overall(
    commits: Sequence[Commit], parts: Sequence[_Part], types: Sequence[ChangeType]
) -> set[str]:
    """A change is through when every type it touches deployed it, or an unnamed deploy has
    it; one that touches no type never is (see the module docstring)."""
    shipped = {p.name: p.shipped for p in parts}
    unnamed = shipped.get(None, set())
    through = set()
    for commit in commits:
        names = _touched(types, commit.files)
        if commit.sha in unnamed or (names and all(commit.sha in shipped[n] for n in names)):
            through.add(commit.sha)
    return _reviewed(commits, through)


def _metrics(
    records: Sequence[AuditRecord], commits: Sequence[Commit], through: set[str], window: Window
) -> Metrics:
    """The figures of `records` and the changes `commits`, `through` the pipeline."""
    since, until, environment = window
    every = deploys(records, environment)
    spans, still_open = restores(records, environment)
    days = (until - since).total_seconds() / 86400
    total = _slice(every, spans, commits, through, since, until)
    weeks = tuple(
        _slice(every, spans, commits, through, start, min(start + timedelta(days=7), until))
        for start in _week_starts(since, until)
    )
    return Metrics(
        environment=environment,
        window_start=iso(since),
        window_end=iso(until),
        days=days,
        deploys=total.deploys,
        failed_deploys=total.failed_deploys,
        deploys_per_day=total.deploys / days if days else 0.0,
        deploys_per_week=total.deploys * 7 / days if days else 0.0,
        change_failure_rate=total.change_failure_rate,
        restores=len([s for s in spans if since <= s[0] < until]),
        open_incidents=still_open,
        mttr_median_seconds=total.mttr_median_seconds,
        mttr_p90_seconds=p90([s for t, s in spans if since <= t < until]),
        changes=total.changes,
        changes_through_pipeline=total.changes_through_pipeline,
        pipeline_share=total.pipeline_share,
        weeks=weeks,
        deploy_markers=deploy_markers(records, environment),
        exposure_median_seconds=_median(
            [s for t, s in exposures(records, environment) if since <= t < until]
        ),
    )


def exposures(
    records: Sequence[AuditRecord], environment: str = DEFAULT_ENVIRONMENT
) -> list[tuple[datetime, float]]:
    """(exposed_at, seconds until verified restore) of each automatic restore that has both."""
    found: list[tuple[datetime, float]] = []
    for record in records:
        rollback = record.rollback
        if record.environment != environment or not record.finished:
            continue
        if (
            isinstance(rollback, dict)
            and rollback.get("verified")
            and rollback.get("exposed_at")
            and rollback.get("restored_at")
        ):
            found.append(_span(rollback["exposed_at"], rollback["restored_at"]))
    return found


def _week_starts(since: datetime, until: datetime) -> list[datetime]:
    starts, start = [], since
    while start < until:
        starts.append(start)
        start += timedelta(days=7)
    return starts


def _slice(
    every: Sequence[Deploy],
    spans: Sequence[tuple[datetime, float]],
    commits: Sequence[Commit],
    through_shas: set[str],
    start: datetime,
    end: datetime,
) -> Week:
    inside = [d for d in every if start <= d.started_at < end]
    failed = sum(1 for d in inside if d.failed)
    changes = [c for c in commits if start <= c.committed_at < end]
    through = sum(1 for c in changes if c.sha in through_shas)
    return Week(
        start=iso(start),
        deploys=len(inside),
        failed_deploys=failed,
        change_failure_rate=_ratio(failed, len(inside)),
        mttr_median_seconds=_median([s for t, s in spans if start <= t < end]),
        changes=len(changes),
        changes_through_pipeline=through,
        pipeline_share=_ratio(through, len(changes)),
    )


def parse_since(text: str, now: datetime) -> datetime:
    """`90d`, `12w`, `36h` before `now`, or an ISO 8601 date/time."""
    match = re.fullmatch(r"(\d+)([hdw])", text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        hours = {"h": 1, "d": 24, "w": 24 * 7}[unit] * amount
        return now - timedelta(hours=hours)
    try:
        return parse_time(text)
    except AuditError as exc:
        raise InputError(f"--since {text!r}: use 90d, 12w, 36h or an ISO 8601 date") from exc


# ---- renderers ---------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _type_name(change: str | None) -> str:
    """A change type as the text and HTML outputs name it."""
    return "(unnamed)" if change == "" else change or "all"


def render_text(metrics: Metrics) -> str:
    only = [("change type", _type_name(metrics.change))] if metrics.change is not None else []
    rows = [
        ("environment", metrics.environment),
        *only,
        ("window", f"{metrics.window_start} .. {metrics.window_end} ({metrics.days:g} days)"),
        ("deploys", str(metrics.deploys)),
        (
            "deploy frequency",
            f"{metrics.deploys_per_day:.2f}/day, {metrics.deploys_per_week:.2f}/week",
        ),
        (
            "change failure rate",
            f"{_percent(metrics.change_failure_rate)} "
            f"({metrics.failed_deploys} of {metrics.deploys})",
        ),
        (
            "time to restore",
            f"median {_duration(metrics.mttr_median_seconds)}, "
            f"p90 {_duration(metrics.mttr_p90_seconds)} ({metrics.restores} restores, "
            f"{metrics.open_incidents} open)",
        ),
        ("exposure", f"median {_duration(metrics.exposure_median_seconds)}"),
        (
            "through the pipeline",
            f"{_percent(metrics.pipeline_share)} "
            f"({metrics.changes_through_pipeline} of {metrics.changes} changes)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    text = "".join(f"{name.ljust(width)}  {value}\n" for name, value in rows)
    if metrics.by_change:
        text += "\n" + _table([*metrics.by_change, metrics])
    return text


TABLE = (
    "change type",
    "deploys",
    "per week",
    "failure rate",
    "restore median, p90",
    "restores",
    "open",
    "through the pipeline",
)


def _table(parts: Sequence[Metrics]) -> str:
    """A row per change type and `all`: the figures of the summary above, side by side."""
    rows = [TABLE] + [
        (
            _type_name(m.change),
            str(m.deploys),
            f"{m.deploys_per_week:.2f}",
            f"{_percent(m.change_failure_rate)} ({m.failed_deploys} of {m.deploys})",
            f"{_duration(m.mttr_median_seconds)}, {_duration(m.mttr_p90_seconds)}",
            str(m.restores),
            str(m.open_incidents),
            f"{_percent(m.pipeline_share)} ({m.changes_through_pipeline} of {m.changes})",
        )
        for m in parts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in rows
    )


# The per-type figures repeat neither the window nor the type (it is their key).
_SHARED = ("environment", "window_start", "window_end", "days", "change", "by_change")


def render_json(metrics: Metrics) -> str:
    data = _json(metrics)
    if metrics.by_change:
        data["by_change"] = {
            m.change or "": {k: v for k, v in _json(m).items() if k not in _SHARED}
            for m in metrics.by_change
        }
    return json.dumps(data, indent=2) + "\n"


def _json(metrics: Metrics) -> dict[str, Any]:
    """The figures as JSON; `change` only when they are of one type, as before types."""
    data = asdict(replace(metrics, by_change=()))
    del data["by_change"]
    if metrics.change is None:
        del data["change"]
    return data


PROMETHEUS = (
    ("deploys", "deploys_total", "Deploys to the environment in the window."),
    ("failed_deploys", "failed_deploys_total", "Deploys that failed or caused an incident."),
    ("deploys_per_day", "deploy_frequency_per_day", "Deploys per day over the window."),
    ("deploys_per_week", "deploy_frequency_per_week", "Deploys per week over the window."),
    ("change_failure_rate", "change_failure_rate", "Failed deploys / deploys (0..1)."),
    ("mttr_median_seconds", "time_to_restore_median_seconds", "Median time to restore."),
    ("mttr_p90_seconds", "time_to_restore_p90_seconds", "90th percentile time to restore."),
    (
        "exposure_median_seconds",
        "exposure_median_seconds",
        "Median time from a change reaching its first host to its verified automatic restore.",
    ),
    ("changes", "changes_total", "Commits reaching the default branch in the window."),
    (
        "changes_through_pipeline",
        "changes_through_pipeline_total",
        "Changes that came through a PR/MR and were deployed by a recorded rollout.",
    ),
    ("pipeline_share", "pipeline_share", "Changes through the pipeline / changes (0..1)."),
)


# Deploy markers: the names and help texts shared with the textfile the rollout writes.
STAGE_STARTED = "cd_checks_stage_started_timestamp_seconds"
STAGE_FINISHED = "cd_checks_stage_finished_timestamp_seconds"
STAGE_RUNNING = "cd_checks_stage_running"
ROLLBACK_STARTED = "cd_checks_rollback_started_timestamp_seconds"
ROLLBACK_FINISHED = "cd_checks_rollback_finished_timestamp_seconds"
MARKERS = {
    STAGE_STARTED: "When the latest run of the stage started (Unix time).",
    STAGE_FINISHED: "When the latest run of the stage ended (Unix time), and how.",
    STAGE_RUNNING: "1 while the latest run of the stage runs, else 0.",
    ROLLBACK_STARTED: "When the latest on-demand rollback of the environment started.",
    ROLLBACK_FINISHED: "When the latest on-demand rollback of the environment ended, and how.",
}
_ROLLBACK_NAMES = (ROLLBACK_STARTED, ROLLBACK_FINISHED)
Sample = tuple[str, dict[str, str], float]  # metric name, labels, value


def marker_samples(
    environment: str, markers: Sequence[DeployMarker], change: str | None = None
) -> list[Sample]:
    """The deploy-marker samples of `markers` (see MARKERS for what each metric says);
    with `change`, labelled with that change type."""
    samples: list[Sample] = []
    typed = {"change": change} if change else {}
    for marker in markers:
        stage = {"stage": marker.stage} if marker.stage is not None else {}
        labels = {"environment": environment, **stage, "revision": marker.revision, **typed}
        started, finished = (STAGE_STARTED, STAGE_FINISHED) if stage else _ROLLBACK_NAMES
        samples.append((started, labels, parse_time(marker.started_at).timestamp()))
        if marker.finished_at is not None:
            outcome = {**labels, "outcome": marker.outcome or ""}
            samples.append((finished, outcome, parse_time(marker.finished_at).timestamp()))
        if stage:
            samples.append((STAGE_RUNNING, labels, 0.0 if marker.finished_at else 1.0))
    return samples


def render_prometheus(metrics: Metrics) -> str:
    """Each figure as a gauge: the overall series as before change types, then one per
    named type with a `change` label (the unnamed type has none: see the docstring)."""
    series = [metrics, *(m for m in metrics.by_change if m.change)]
    lines = []
    for attribute, name, text in PROMETHEUS:
        lines += [f"# HELP cd_checks_{name} {text}", f"# TYPE cd_checks_{name} gauge"]
        lines += [
            f"cd_checks_{name}{_labels(_figure_labels(m))} {_number(getattr(m, attribute))}"
            for m in series
        ]
    samples = [s for m in series for s in marker_samples(m.environment, m.deploy_markers, m.change)]
    for name, text in MARKERS.items():
        family = [(labels, value) for n, labels, value in samples if n == name]
        if family:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
            lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in family]
    return "\n".join(lines) + "\n"


def _figure_labels(metrics: Metrics) -> dict[str, str]:
    typed = {"change": metrics.change} if metrics.change else {}
    return {"environment": metrics.environment, "window_days": f"{metrics.days:g}", **typed}


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | int | None) -> str:
    if value is None:
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(value)


WIDTH, HEIGHT, PAD = 640, 180, 30


def _bar(x: float, width: float, height: float, label: str, colour: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{HEIGHT - PAD - height:.1f}" width="{width:.1f}" '
        f'height="{height:.1f}" fill="{colour}"><title>{html.escape(label)}</title></rect>'
    )


def _chart(
    title: str, weeks: Sequence[Week], value: Callable[[Week], float | None], unit: str
) -> str:
    """A bar per week; a grey stub where the week has no value (nothing to divide by)."""
    points = [value(w) for w in weeks]
    top = max((p for p in points if p is not None), default=0.0) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(weeks), 1)
    bars = []
    for i, (week, point) in enumerate(zip(weeks, points, strict=True)):
        shown = "n/a" if point is None else f"{point:g}{unit}"
        label = f"week of {week.start[:10]}: {shown}"
        height = 2.0 if point is None else (HEIGHT - 2 * PAD) * point / top
        colour = "#cccccc" if point is None else "#3b6ea8"
        bars.append(_bar(PAD + i * step, step * 0.8, height, label, colour))
    axis = f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}"'
    # Dates under the first, middle and last week, so a trend has a when.
    marks = sorted({0, len(weeks) // 2, len(weeks) - 1}) if weeks else []
    dates = "".join(
        f'<text x="{PAD + i * step:.1f}" y="{HEIGHT - PAD + 16}" font-size="11">'
        f"{html.escape(weeks[i].start[:10])}</text>"
        for i in marks
    )
    return (
        f"<h2>{html.escape(title)}</h2>\n"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}">'
        f'{axis} stroke="#333"/>'
        f'<text x="{PAD}" y="{PAD - 10}" font-size="11">max {top:g}{html.escape(unit)}</text>'
        + "".join(bars)
        + dates
        + "</svg>\n"
    )


def render_html(metrics: Metrics) -> str:
    """The summary and four weekly charts; with change types, the same for each type."""
    sections = [f"<pre>{html.escape(render_text(metrics))}</pre>\n", *_charts(metrics, "")]
    for part in metrics.by_change:
        name = _type_name(part.change)
        sections.append(f"<h2>Change type {html.escape(name)}</h2>\n")
        sections += _charts(part, f"{name}: ")
    title = f"cd-checks deploy metrics: {html.escape(metrics.environment)}"
    if metrics.change is not None:
        title += f", change type {html.escape(_type_name(metrics.change))}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}</style>"
        f"</head><body>\n<h1>{title}</h1>\n" + "".join(sections) + "</body></html>\n"
    )


def _charts(metrics: Metrics, prefix: str) -> list[str]:
    weeks = metrics.weeks
    return [
        _chart(f"{prefix}Deploys per week", weeks, lambda w: float(w.deploys), ""),
        _chart(
            f"{prefix}Change failure rate per week",
            weeks,
            lambda w: None if w.change_failure_rate is None else 100 * w.change_failure_rate,
            " %",
        ),
        _chart(
            f"{prefix}Median time to restore per week",
            weeks,
            lambda w: None if w.mttr_median_seconds is None else w.mttr_median_seconds / 60,
            " min",
        ),
        _chart(
            f"{prefix}Changes through the pipeline per week",
            weeks,
            lambda w: None if w.pipeline_share is None else 100 * w.pipeline_share,
            " %",
        ),
    ]


RENDERERS: dict[str, Callable[[Metrics], str]] = {
    "text": render_text,
    "json": render_json,
    "prometheus": render_prometheus,
    "html": render_html,
}
