"""The change type in the audit trail: recorded per run, left out when unnamed so every
older trail still verifies, and the filter of known-good, last-run and `audit log`."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cd_checks import incidents
from cd_checks.audit.identity import Identity
from cd_checks.audit.record import AuditRecord, chain, compute_hash, verify
from cd_checks.audit.signing import Keyring, check, load_allowed, user_signer
from cd_checks.audit.store import FileStore
from cd_checks.audit.trail import AuditKnownGood, AuditTrail, BreakGlass, Gate, known_good
from cd_checks.rollout.recorder import TrailHistory, last_run
from tests.audit.test_cli import LINES
from tests.conftest import Run, init_repo, write_tree

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    from cd_checks.cli import COMMANDS

    for name, line in LINES.items():
        if name not in COMMANDS:
            monkeypatch.setitem(COMMANDS, name, line)


def _trail(path: Path, root: Path, **store: object) -> AuditTrail:
    ticks = itertools.count()
    numbers = itertools.count()
    return AuditTrail(
        FileStore(path, **store),  # type: ignore[arg-type]
        root,
        lambda: T0 + timedelta(minutes=next(ticks)),
        lambda moment: f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{next(numbers):06d}",
        lambda args: None,  # no git: revisions stay as given
    )


def test_a_signed_trail_written_before_change_types_verifies_byte_for_byte() -> None:
    """Written by cd-checks 0.2.0 (signed, base revision, break-glass, incident): every
    record reads with no change type, re-serialises to its own line, and its chain and
    signatures check."""
    path = FIXTURES / "trail-signed-0.2.0.jsonl"
    lines = path.read_text("utf-8").splitlines()
    records = FileStore(path).records()
    assert len(records) == 7 and {r.kind for r in records} >= {"break_glass", "incident_open"}
    assert [r.change for r in records] == [None] * 7
    assert [r.to_json() for r in records] == lines
    assert verify(records) == []
    allowed = FIXTURES / "allowed_signers-0.2.0"
    ring = Keyring(load_allowed(allowed, "allowed_signers"), ("allowed_signers",))
    assert [check(r, ring).status for r in records] == ["good"] * 7
    old = FileStore(FIXTURES / "trail-0.1.0.jsonl").records()
    assert verify(old) == [] and all("change" not in json.loads(r.to_json()) for r in old)


def test_the_hash_covers_the_change_type_and_an_unnamed_one_is_left_out() -> None:
    plain = chain(AuditRecord(kind="stage", id="a", environment="prod"), None)
    typed = chain(replace(plain, change="nginx"), None)
    assert "change" not in json.loads(plain.to_json())
    assert json.loads(typed.to_json())["change"] == "nginx"
    assert typed.hash != plain.hash
    assert compute_hash(replace(typed, change="patches")) != typed.hash
    assert compute_hash(replace(typed, change=None)) == plain.hash
    assert AuditRecord.from_dict(json.loads(typed.to_json())) == typed


def test_an_explicit_null_change_stays_as_written_so_adding_it_is_an_edit() -> None:
    plain = chain(AuditRecord(kind="stage", id="a", environment="prod"), None)
    forged = AuditRecord.from_dict({**json.loads(plain.to_json()), "change": None})
    assert json.loads(forged.to_json())["change"] is None
    assert compute_hash(forged) != plain.hash
    [problem] = verify([forged])
    assert problem.kind == "edited"


def test_start_records_the_change_type_and_the_final_and_break_glass_records_copy_it(
    tmp_path: Path,
) -> None:
    signer = user_signer(tmp_path / "key", "ci")
    trail = _trail(tmp_path / "audit.jsonl", tmp_path, signer=signer)
    deploy = trail.start(
        "stage",
        "production",
        "canary",
        "1" * 40,
        "2" * 40,
        [["web1"]],
        Identity("bob", "git"),
        BreakGlass("outage", "INC-1"),
        change="nginx",
    )
    trail.finish(deploy, "succeeded", [Gate(1, "web1", "http", True)])
    records = trail.records()
    assert [(r.kind, r.outcome, r.change) for r in records] == [
        ("stage", "started", "nginx"),
        ("break_glass", "recorded", "nginx"),
        ("stage", "succeeded", "nginx"),
    ]
    assert all(json.loads(r.to_json())["change"] == "nginx" for r in records)
    assert verify(records) == []
    ring = Keyring(load_allowed(_allowed(tmp_path, signer.allowed_line()), "a"), ("a",))
    assert [check(r, ring).status for r in records] == ["good"] * 3


def _allowed(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(line + "\n")
    return path


def _run(env: str, outcome: str, rev: str, change: str | None, **kw: object) -> AuditRecord:
    return AuditRecord(
        kind="stage",
        id=f"{env}-{rev}-{outcome}-{change}",
        environment=env,
        stage="production",
        change=change,
        outcome=outcome,
        revision_to=rev,
        **kw,  # type: ignore[arg-type]
    )


RUNS = [
    _run("prod", "succeeded", "r1", None),  # a record from before change types
    _run("prod", "succeeded", "r2", "nginx"),
    _run("prod", "succeeded", "r3", "patches"),
    _run("prod", "rolled_back", "r4", "nginx", rollback={"verified": True, "target": "r2"}),
    _run("prod", "failed", "r5", "patches"),
]


def test_known_good_is_per_change_type_and_legacy_records_are_the_unnamed_type() -> None:
    assert known_good(RUNS, "prod") == "r1"
    assert known_good(RUNS, "prod", change="nginx") == "r2"
    assert known_good(RUNS, "prod", {"prod": "production"}, "patches") == "r3"
    assert known_good(RUNS, "prod", change="monitoring") is None


def test_the_engines_known_good_reads_its_change_type_only(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "audit.jsonl")
    for record in RUNS:
        store.append(record)
    assert AuditKnownGood(store, {"prod": "production"}).get("prod") == "r1"
    assert AuditKnownGood(store, {"prod": "production"}, change="nginx").get("prod") == "r2"
    trail = _trail(tmp_path / "audit.jsonl", tmp_path)
    assert AuditKnownGood.of(trail, None, "patches").get("prod") == "r3"


def test_last_run_and_the_trail_history_keep_to_their_change_type(tmp_path: Path) -> None:
    assert last_run(RUNS, "prod") == RUNS[0]
    assert last_run(RUNS, "prod", "nginx") == RUNS[3]
    assert last_run(RUNS, "prod", "monitoring") is None
    store = FileStore(tmp_path / "audit.jsonl")
    for record in RUNS:
        store.append(record)
    trail = _trail(tmp_path / "audit.jsonl", tmp_path)

    def no_git(args: list[str]) -> str | None:
        return None

    nginx = TrailHistory(trail, no_git, change="nginx")
    base = nginx.base("prod", "r9")
    assert base is not None and base.revision == "r2"
    assert nginx.failed_run("prod") is None  # nginx's last run was rolled back
    failed = TrailHistory(trail, no_git, change="patches").failed_run("prod")
    assert failed is not None and failed.revision == "r5"
    assert TrailHistory(trail, no_git).failed_run("prod") is None  # unnamed: r1 succeeded


def test_an_incident_takes_the_change_type_of_its_deploy(tmp_path: Path) -> None:
    trail = _trail(tmp_path / "audit.jsonl", tmp_path)
    deploy = trail.start(
        "stage", "prod", "canary", None, "2" * 40, [], Identity("bob", "git"), change="patches"
    )
    trail.finish(deploy, "succeeded")
    opened = incidents.open_incident(trail, deploy, actor="bob", summary="disk full")
    resolved = incidents.resolve(trail, opened.id, actor="bob")
    assert (opened.change, resolved.change) == ("patches", "patches")


class Deploys:
    """Runs of two change types and one unnamed (an older record), as `audit log` lists them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.now = datetime.now(timezone.utc) - timedelta(hours=5)
        store = FileStore(root / ".cd-checks/audit.jsonl")
        self.trail = AuditTrail(store, root, lambda: self.now)

    def run(self, change: str | None, outcome: str) -> str:
        self.now += timedelta(minutes=10)
        deploy = self.trail.start(
            "stage",
            "production",
            "canary",
            None,
            "a" * 40,
            [],
            Identity("bob", "git"),
            change=change,
        )
        self.trail.finish(deploy, outcome)
        return deploy


@pytest.fixture
def deploys(tmp_path: Path) -> Deploys:
    return Deploys(init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"})))


def test_audit_log_shows_and_filters_the_change_type(
    deploys: Deploys, cli: Callable[..., Run]
) -> None:
    old = deploys.run(None, "succeeded")
    nginx = deploys.run("nginx", "failed")
    patches = deploys.run("patches", "succeeded")
    result = cli("-C", deploys.root, "audit", "log")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split()[:5] == ["ID", "KIND", "ENV", "CHANGE", "STAGE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert (rows[old][3], rows[nginx][3], rows[patches][3]) == ("-", "nginx", "patches")
    only = cli("-C", deploys.root, "audit", "log", "--change", "nginx", "--format", "json")
    assert [(r["id"], r["change"], r["outcome"]) for r in json.loads(only.out)] == [
        (nginx, "nginx", "failed")
    ]
    shown = cli("-C", deploys.root, "audit", "show", nginx)
    assert shown.code == 0 and "\n  change: nginx\n" in shown.out
    plain = cli("-C", deploys.root, "audit", "show", old)
    assert "change:" not in plain.out


def test_audit_log_without_change_types_has_no_change_column(
    deploys: Deploys, cli: Callable[..., Run]
) -> None:
    deploys.run(None, "succeeded")
    result = cli("-C", deploys.root, "audit", "log")
    assert result.out.splitlines()[0].split() == [
        "ID",
        "KIND",
        "ENV",
        "STAGE",
        "REVISION",
        "ACTOR",
        "STARTED",
        "OUTCOME",
        "FLAGS",
    ]
    assert (
        json.loads(cli("-C", deploys.root, "audit", "log", "--format", "json").out)[0]["change"]
        is None
    )
