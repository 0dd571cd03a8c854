"""What the trail holds is anyone's text: `audit log`, `show` and `verify` print it inert.

Whoever can write the trail file or push the audit branch chooses its ids, reasons
and names. Printed raw into a GitHub job log, a line starting `::error::` or
holding `##[add-mask]` is a workflow command; an escape sequence rewrites a
terminal. Each command prints such text escaped, and its JSON keeps the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cd_checks.audit.record import AuditRecord, chain
from tests.conftest import Run

Cli = Callable[..., Run]

HOSTILE_ID = "20250301T101500Z-x\n::error::forged\033[2J##[add-mask]y"


def _trail(root: Path, *, tamper: bool = False) -> None:
    record = chain(
        AuditRecord(
            kind="rollout",
            id=HOSTILE_ID,
            environment="production",
            started_at="2025-03-01T10:15:00Z",
            ended_at="2025-03-01T10:16:00Z",
            outcome="succeeded",
        ),
        None,
    )
    line = record.to_json()
    if tamper:  # an edit after hashing: verify names the record, id included
        line = line.replace('"succeeded"', '"failed"')
    path = root / ".cd-checks" / "audit.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(line + "\n", "utf-8")


def _inert(text: str) -> None:
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), line
        assert "##[" not in line, line
    assert "\033" not in text


def test_audit_log_prints_a_hostile_id_inert(cli: Cli, tmp_path: Path) -> None:
    _trail(tmp_path)
    run = cli("-C", tmp_path, "audit", "log")
    assert run.code == 0, run.err
    _inert(run.out)
    assert "forged\\033[2J##\\133add-mask]y" in run.out  # (the table shortens the id)


def test_audit_log_json_keeps_the_value(cli: Cli, tmp_path: Path) -> None:
    _trail(tmp_path)
    run = cli("-C", tmp_path, "audit", "log", "--format", "json")
    assert run.code == 0, run.err
    _inert(run.out)
    assert [row["id"] for row in json.loads(run.out)] == [HOSTILE_ID]


def test_audit_verify_names_a_hostile_record_inert(cli: Cli, tmp_path: Path) -> None:
    _trail(tmp_path, tamper=True)
    run = cli("-C", tmp_path, "audit", "verify")
    assert run.code == 1
    _inert(run.out + run.err)
    named = [line for line in run.out.splitlines() if line.startswith("edited: ")]
    assert len(named) == 1 and "x\\n::error::forged\\033[2J##\\133add-mask]y" in named[0]
    json_run = cli("-C", tmp_path, "audit", "verify", "--format", "json")
    _inert(json_run.out)
    assert any(HOSTILE_ID in text for text in _strings(json.loads(json_run.out)))


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
