"""The hash chain: a clean trail verifies; each of the four tamperings is named precisely."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cd_checks.audit.record import GENESIS, AuditRecord, chain, compute_hash, verify
from cd_checks.audit.store import FileStore
from cd_checks.errors import AuditError


def _trail(path: Path, count: int = 5) -> FileStore:
    store = FileStore(path)
    for n in range(count):
        store.append(AuditRecord(kind="stage", id=f"r{n}", environment="prod", actor=f"u{n}"))
    return store


def _lines(store: FileStore) -> list[str]:
    return store.path.read_text().splitlines()


def _rewrite(store: FileStore, lines: list[str]) -> None:
    store.path.write_text("".join(line + "\n" for line in lines))


def test_a_clean_trail_verifies_and_is_chained(tmp_path: Path) -> None:
    store = _trail(tmp_path / "audit.jsonl")
    records = store.records()
    assert verify(records) == []
    assert [r.seq for r in records] == [0, 1, 2, 3, 4]
    assert records[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(records, records[1:], strict=False))
    assert all(compute_hash(r) == r.hash for r in records)


def test_the_hash_covers_every_field_and_unknown_keys() -> None:
    record = chain(AuditRecord(kind="stage", id="a", actor="alice"), None)
    assert compute_hash(replace(record, actor="mallory")) != record.hash
    assert compute_hash(replace(record, extra={"approved": True})) != record.hash
    again = AuditRecord.from_dict(json.loads(record.to_json()))
    assert again == record and compute_hash(again) == record.hash


def test_a_trail_written_before_base_revision_existed_still_verifies() -> None:
    old = FileStore(Path(__file__).parent / "fixtures/trail-0.1.0.jsonl").records()
    assert verify(old) == [] and [r.base_revision for r in old] == [None, None]
    assert all("base_revision" not in r.to_dict() for r in old)


def test_the_hash_covers_the_base_revision() -> None:
    record = chain(AuditRecord(kind="stage", id="a", base_revision="1" * 40), None)
    assert json.loads(record.to_json())["base_revision"] == "1" * 40
    assert compute_hash(replace(record, base_revision="2" * 40)) != record.hash
    assert compute_hash(replace(record, base_revision=None)) != record.hash
    assert AuditRecord.from_dict(json.loads(record.to_json())) == record


def test_an_edited_record_is_named(tmp_path: Path) -> None:
    store = _trail(tmp_path / "audit.jsonl")
    lines = _lines(store)
    data = json.loads(lines[2])
    data["actor"] = "mallory"
    lines[2] = json.dumps(data)
    _rewrite(store, lines)
    [problem] = verify(store.records())
    assert (problem.kind, problem.position, problem.record_id) == ("edited", 2, "r2")
    assert problem.message == (
        "record r2 at position 2 was edited: its content does not match its hash"
    )


def test_an_edited_and_rehashed_record_is_named(tmp_path: Path) -> None:
    store = _trail(tmp_path / "audit.jsonl")
    records = store.records()
    forged = replace(records[2], actor="mallory", hash="")
    forged = replace(forged, hash=compute_hash(forged))
    lines = _lines(store)
    lines[2] = forged.to_json()
    _rewrite(store, lines)
    [problem] = verify(store.records())
    assert (problem.kind, problem.position, problem.record_id) == ("edited", 2, "r2")
    assert "re-hashed" in problem.message and "r3 at position 3" in problem.message


def test_a_deleted_record_is_named(tmp_path: Path) -> None:
    store = _trail(tmp_path / "audit.jsonl")
    lines = _lines(store)
    del lines[2]
    _rewrite(store, lines)
    [problem] = verify(store.records())
    assert (problem.kind, problem.position, problem.record_id) == ("deleted", 2, "r3")
    assert problem.message.startswith("1 record was deleted before record r3 at position 2")
    assert "after record r1 (position 1)" in problem.message


def test_a_deleted_first_record_is_named(tmp_path: Path) -> None:
    store = _trail(tmp_path / "audit.jsonl")
    _rewrite(store, _lines(store)[1:])
    [problem] = verify(store.records())
    assert (problem.kind, problem.position, problem.record_id) == ("deleted", 0, "r1")


def test_an_inserted_record_is_named(tmp_path: Path) -> None:
    store = _trail(tmp_path / "audit.jsonl")
    records = store.records()
    # A careful forger chains the new record after r1 with the next sequence number.
    forged = chain(AuditRecord(kind="stage", id="forged", environment="prod"), records[1])
    lines = _lines(store)
    lines.insert(2, forged.to_json())
    _rewrite(store, lines)
    [problem] = verify(store.records())
    assert (problem.kind, problem.position, problem.record_id) == ("inserted", 2, "forged")
    assert problem.message == (
        "record forged at position 2 was inserted: no record of the trail was chained after it"
    )


def test_an_inserted_record_with_a_made_up_chain_is_named(tmp_path: Path) -> None:
    store = _trail(tmp_path / "audit.jsonl")
    forged = replace(chain(AuditRecord(kind="stage", id="forged"), None), prev_hash="ab" * 32)
    forged = replace(forged, hash=compute_hash(forged))
    lines = _lines(store)
    lines.insert(3, forged.to_json())
    _rewrite(store, lines)
    problems = verify(store.records())
    assert [(p.kind, p.position, p.record_id) for p in problems] == [("inserted", 3, "forged")]


def test_reordered_records_are_named(tmp_path: Path) -> None:
    store = _trail(tmp_path / "audit.jsonl")
    lines = _lines(store)
    lines[1], lines[2] = lines[2], lines[1]
    _rewrite(store, lines)
    problems = verify(store.records())
    assert problems and {p.kind for p in problems} == {"reordered"}
    first = problems[0]
    assert (first.position, first.record_id) == (1, "r2")
    assert first.message == (
        "record r2 at position 1 is out of order: it stands after record r0 (position 0) "
        "but was written right after record r1 (now at position 2)"
    )
    assert "r1" in {p.record_id for p in problems}


def test_a_line_that_is_not_json_is_an_error_naming_the_line(tmp_path: Path) -> None:
    # Not the last line: a broken last line is a torn tail, moved aside (test_crash_safe.py).
    store = _trail(tmp_path / "audit.jsonl", 2)
    _rewrite(store, [_lines(store)[0], "{broken", _lines(store)[1]])
    with pytest.raises(AuditError, match=r"audit\.jsonl:2: not a JSON audit record"):
        store.records()
