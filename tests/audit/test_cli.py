"""`cd-checks audit|incident|postmortem|metrics` as a user runs them (in-process main)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cd_checks.audit.identity import Identity
from cd_checks.audit.store import FileStore, GitBranchStore
from cd_checks.audit.trail import AuditTrail, BreakGlass, Gate
from cd_checks.cli import COMMANDS
from tests.conftest import Run, init_repo, write_tree

# The registry lines this area adds to cd_checks/cli/__init__.py (set here until registered).
LINES = {
    "audit": ("cd_checks.cli.audit", "audit", "The audit trail: log, show, export, verify."),
    "incident": ("cd_checks.cli.audit", "incident", "Record deploy-caused incidents."),
    "postmortem": ("cd_checks.cli.audit", "postmortem", "Post-mortems owed by break-glass."),
    "metrics": ("cd_checks.cli.audit", "metrics_command", "Deploy metrics."),
}

GOOD_PM = "# Summary\ns\n# Timeline\nt\n# Root cause\nr\n# Actions\na\n"


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, line in LINES.items():
        if name not in COMMANDS:
            monkeypatch.setitem(COMMANDS, name, line)


class Deploys:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.now = datetime.now(timezone.utc) - timedelta(hours=200)
        self.trail = AuditTrail(FileStore(root / ".cd-checks/audit.jsonl"), root, lambda: self.now)

    def run(
        self, env: str, hours_ago: float, outcome: str, break_glass: BreakGlass | None = None
    ) -> str:
        self.now = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
        deploy = self.trail.start(
            "rollout", env, None, None, "a" * 40, [["web1"]], Identity("bob", "git"), break_glass
        )
        self.now += timedelta(minutes=2)
        gates = [
            Gate(1, "web1", "http", outcome == "succeeded", "" if outcome == "succeeded" else "503")
        ]
        self.trail.finish(deploy, outcome, gates)
        return deploy


@pytest.fixture
def trail(tmp_path: Path) -> Deploys:
    return Deploys(init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"})))


def test_log_lists_one_row_per_deploy_with_break_glass_flags(
    trail: Deploys, cli: Callable[..., Run]
) -> None:
    old = trail.run("production", 100, "succeeded", BreakGlass("outage", "INC-1"))
    normal = trail.run("staging", 10, "succeeded")
    fresh = trail.run("production", 1, "failed", BreakGlass("again", "INC-2"))
    result = cli("-C", trail.root, "audit", "log")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
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
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {old, normal, fresh}
    assert rows[old].endswith("succeeded  BREAK-GLASS POSTMORTEM-OVERDUE")
    assert rows[fresh].endswith("failed     BREAK-GLASS POSTMORTEM-DUE")
    assert rows[normal].endswith("succeeded  -")
    assert "unknown..aaaaaaaaaaaa" in rows[normal]
    only = cli(
        "-C", trail.root, "audit", "log", "--environment", "production", "--outcome", "failed"
    )
    assert [line.split()[0] for line in only.out.splitlines()[1:]] == [fresh]
    recent = cli("-C", trail.root, "audit", "log", "--since", "2d", "--format", "json")
    assert [row["id"] for row in json.loads(recent.out)] == [normal, fresh]
    assert json.loads(recent.out)[1]["flags"] == ["BREAK-GLASS", "POSTMORTEM-DUE"]


def test_show_tells_the_whole_story_of_a_deploy(trail: Deploys, cli: Callable[..., Run]) -> None:
    deploy = trail.run("production", 1, "failed", BreakGlass("outage", "INC-9"))
    result = cli("-C", trail.root, "audit", "show", deploy)
    assert result.code == 0, result.err
    assert f"== rollout {deploy} (#0)  ** BREAK-GLASS **" in result.out
    assert "== break_glass " in result.out and "  outcome: failed" in result.out
    assert "  gate wave 1 web1 http: FAIL (503)" in result.out
    assert '  break_glass: {"reason": "outage", "ticket": "INC-9"}' in result.out
    missing = cli("-C", trail.root, "audit", "show", "nope")
    assert (missing.code, missing.err) == (2, "cd-checks: error: no audit record 'nope'\n")
    assert "  signature: unsigned" in result.out


def test_show_names_who_signed_each_record_never_the_signature(
    tmp_path: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cd_checks import config
    from cd_checks.audit import signing
    from cd_checks.audit.trail import open_trail

    state = tmp_path / "xdg"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.setenv("USER", "alice")
    for name in ("CI", "CD_CHECKS_AUDIT_KEY", "GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(name, raising=False)
    deploys = Deploys(init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"})))
    deploys.trail = open_trail(
        config.load(deploys.root), now=lambda: deploys.now, env=dict(os.environ)
    )
    deploy = deploys.run("production", 1, "succeeded")
    key = signing.user_signer(state / "cd-checks", "alice")
    who = f"{signing.user_principal(os.environ)} ({key.fingerprint})"
    shown = cli("-C", deploys.root, "audit", "show", deploy)
    assert shown.code == 0, shown.err
    assert shown.out.count(f"  signature: signed by {who}\n") == 2  # start and final record
    lines = (deploys.root / ".cd-checks/audit.jsonl").read_text().splitlines()
    sig = json.loads(lines[0])["signature"]["sig"]
    assert sig[:40] not in shown.out and '"sig"' not in shown.out
    # Another key's signature pasted in: the claim is shown, and that it is bad.
    other = signing.sign(deploys.trail.records()[0], signing.user_signer(tmp_path / "m", "m"))
    start = json.loads(lines[0])
    start["signature"] = {**start["signature"], "sig": other.signature["sig"]}
    lines[0] = json.dumps(start)
    (deploys.root / ".cd-checks/audit.jsonl").write_text("\n".join(lines) + "\n")
    forged = cli("-C", deploys.root, "audit", "show", deploy)
    assert forged.code == 0, forged.err
    assert (
        f"  signature: BAD signature claiming {who}: the signature was made by another key"
        in forged.out
    )


def test_export_json_and_csv(trail: Deploys, cli: Callable[..., Run], tmp_path: Path) -> None:
    trail.run("production", 1, "succeeded", BreakGlass("outage", "INC-3"))
    as_json = json.loads(cli("-C", trail.root, "audit", "export").out)
    assert [r["kind"] for r in as_json] == ["rollout", "break_glass", "rollout"]
    assert all(len(r["hash"]) == 64 for r in as_json)
    target = tmp_path / "trail.csv"
    result = cli("-C", trail.root, "audit", "export", "--format", "csv", "-o", target)
    assert (result.code, result.out) == (0, "")
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["break_glass_ticket"] for r in rows] == ["INC-3"] * 3
    assert json.loads(rows[2]["gates"])[0]["passed"] is True


def test_verify_passes_then_names_a_tampered_record(
    trail: Deploys, cli: Callable[..., Run]
) -> None:
    trail.run("production", 3, "succeeded")
    trail.run("production", 2, "succeeded")
    clean = cli("-C", trail.root, "audit", "verify")
    assert clean.code == 0 and "4 records, chain intact" in clean.out
    path = trail.root / ".cd-checks/audit.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"outcome":"succeeded"', '"outcome":"failed"')
    path.write_text("\n".join(lines) + "\n")
    ids = [json.loads(line)["id"] for line in lines]
    tampered = cli("-C", trail.root, "audit", "verify")
    assert tampered.code == 1
    assert tampered.out == (
        f"edited: record {ids[1]} at position 1 was edited: its content does not match its hash\n"
    )
    assert "1 problem(s)" in tampered.err


def test_incident_open_and_resolve(trail: Deploys, cli: Callable[..., Run]) -> None:
    deploy = trail.run("production", 5, "succeeded")
    opened = cli("-C", trail.root, "incident", "open", "--deploy", deploy, "--summary", "502s")
    assert opened.code == 0, opened.err
    incident = opened.out.strip()
    resolved = cli("-C", trail.root, "incident", "resolve", incident)
    assert resolved.code == 0 and f"incident {incident} resolved at" in resolved.out
    again = cli("-C", trail.root, "incident", "resolve", incident)
    assert (again.code, again.err) == (
        2,
        f"cd-checks: error: incident {incident} is already resolved\n",
    )
    log = cli("-C", trail.root, "audit", "log").out.splitlines()
    row = next(r for r in log if r.startswith(deploy))
    assert row.endswith("INCIDENT")
    [incident_row] = [r for r in log if r.startswith(incident)]
    assert incident_row.split()[1] == "incident_open" and incident_row.split()[-2:] == [
        "resolved",
        "-",
    ]
    assert len(log) == 3


def test_postmortem_record_validates_and_clears(
    trail: Deploys, cli: Callable[..., Run], tmp_path: Path
) -> None:
    deploy = trail.run("production", 100, "succeeded", BreakGlass("outage", "INC-5"))
    listed = cli("-C", trail.root, "postmortem", "list")
    assert listed.out.startswith(f"OVERDUE: break-glass deploy {deploy} to production")
    bad = tmp_path / "pm.md"
    bad.write_text("# Summary\nonly this\n")
    refused = cli("-C", trail.root, "postmortem", "record", deploy, "--file", bad)
    assert refused.code == 2
    assert refused.err == (
        f"cd-checks: error: {bad}: missing section(s): timeline, root cause, actions "
        "(required Markdown headings: summary, timeline, root cause, actions)\n"
    )
    good = tmp_path / "good.md"
    good.write_text(GOOD_PM)
    done = cli("-C", trail.root, "postmortem", "record", deploy, "--file", good)
    assert done.code == 0 and f"post-mortem recorded for deploy {deploy}" in done.out
    assert cli("-C", trail.root, "postmortem", "list").out == "no post-mortem owed\n"
    row = next(
        r for r in cli("-C", trail.root, "audit", "log").out.splitlines() if r.startswith(deploy)
    )
    assert row.endswith("BREAK-GLASS POSTMORTEM-DONE")


def test_metrics_command_writes_each_format(
    trail: Deploys, cli: Callable[..., Run], tmp_path: Path
) -> None:
    trail.run("production", 5, "succeeded")
    result = cli("-C", trail.root, "metrics", "--since", "30d", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert (data["deploys"], data["days"], data["changes"]) == (1, 30.0, 1)
    target = tmp_path / "cd_checks.prom"
    assert cli("-C", trail.root, "metrics", "--format", "prometheus", "-o", target).code == 0
    assert "cd_checks_deploys_total{" in target.read_text()
    assert cli("-C", trail.root, "metrics").out.startswith("environment")
    wrong = cli("-C", trail.root, "metrics", "--branch", "nope")
    assert wrong.code == 2 and wrong.err.startswith("cd-checks: error: git log nope failed")


def test_the_git_store_from_the_config(tmp_path: Path, cli: Callable[..., Run]) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"cd-checks.yml": "audit:\n  store: git\n"}))
    trail = AuditTrail(GitBranchStore(root), root, lambda: datetime.now(timezone.utc))
    deploy = trail.start("rollout", "production", None, None, "abc", [], Identity())
    result = cli("-C", root, "audit", "verify")
    assert result.code == 0 and "branch cd-checks/audit" in result.out and "1 records" in result.out
    assert deploy in cli("-C", root, "audit", "log").out


def test_verify_with_an_anchor_catches_a_cut_off_end(
    trail: Deploys, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)  # a user's machine: per-user anchors are kept
    trail.run("production", 3, "succeeded")
    path = trail.root / ".cd-checks/audit.jsonl"
    head = json.loads(path.read_text().splitlines()[-1])
    assert cli("-C", trail.root, "audit", "verify", "--anchor", head["hash"]).code == 0
    path.write_text(path.read_text().splitlines()[0] + "\n")
    cut = cli("-C", trail.root, "audit", "verify", "--anchor", head["hash"])
    assert cut.code == 1
    # The user's own anchor (kept by the verify that passed) says so too.
    assert cut.out == (
        f"truncated: record #1 ({head['id']}) is gone: the trail ends at #0, but held #1 when "
        "this trail was last written or verified here: records were cut off its end\n"
        f"deleted: no record has the anchor hash {head['hash']}: records were deleted from the "
        "end of the trail (or the anchor belongs to another trail)\n"
    )


def test_metrics_of_an_unknown_environment_is_a_user_error(
    trail: Deploys, cli: Callable[..., Run]
) -> None:
    trail.run("production", 5, "succeeded")
    wrong = cli("-C", trail.root, "metrics", "-e", "nosuchenv")
    assert wrong.code == 2
    assert (
        wrong.err == "cd-checks: error: unknown environment 'nosuchenv': no audit record names it\n"
    )
    assert cli("-C", trail.root, "metrics", "-e", "production").code == 0


def test_metrics_environments_come_from_the_rollout_stages_when_configured(
    trail: Deploys, cli: Callable[..., Run]
) -> None:
    (trail.root / "cd-checks.yml").write_text(
        "rollout:\n  inventory: hosts.yml\n  apply: {command: [deploy, '{hosts}']}\n"
        "  stages:\n    - {name: staging, hosts: staging}\n"
        "    - {name: production, hosts: production}\n"
    )
    assert cli("-C", trail.root, "metrics", "-e", "staging").code == 0  # no record yet: zeroes
    wrong = cli("-C", trail.root, "metrics", "-e", "prod")
    assert wrong.code == 2 and "the rollout stages deploy to staging, production" in wrong.err
