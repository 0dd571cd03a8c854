"""`cd-checks audit verify --anchor-dir DIR` in a CI job: the head kept between runs.

A CI job keeps no per-user state, so without an anchor a fresh clone cannot tell that
records were cut off the end of a pushed trail. With `--anchor-dir` (a CI cache
restored into DIR) it can, and the head moves forward when the trail verifies. A file
trail starts anew in each checkout: it is noted and never anchored there, or every
later job would fail as cut off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.audit.test_tamper import Remote, forged, write_records
from tests.conftest import Run, init_repo, write_tree


@pytest.fixture
def ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A CI job: no per-user anchors; the cache directory the job restores."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "runner-home"))
    monkeypatch.delenv("CD_CHECKS_AUDIT_KEY", raising=False)
    return tmp_path / "runner-temp" / "cd-checks-audit-anchor"


def verify(cli: Callable[..., Run], root: Path, *args: str | Path) -> tuple[Run, dict[str, Any]]:
    result = cli("-C", root, "audit", "verify", "--format", "json", *args)
    return result, json.loads(result.out)


def test_a_fresh_clone_in_ci_catches_a_cut_off_trail_only_with_the_kept_head(
    tmp_path: Path, cli: Callable[..., Run], ci: Path
) -> None:
    remote = Remote(tmp_path)
    records = write_records(remote.deployer)
    first, data = verify(cli, remote.deployer, "--anchor-dir", ci)
    assert first.code == 0, first.err
    assert "no head of this trail kept in" in first.err and "a first run" in first.err
    assert data["anchor"] is None and data["head"]["id"] == "r4"
    assert data["anchor_file"] is not None and Path(data["anchor_file"]).parent.parent == ci
    again, data = verify(cli, remote.deployer, "--anchor-dir", ci)
    assert again.code == 0 and "no head" not in again.err
    assert data["anchor"] == {"seq": 4, "id": "r4", "hash": records[-1].hash, "signed": False}

    # Back to record #2, a forged success on top, force-pushed; the next job's clone is fresh.
    kept = records[:3]
    remote.push([*kept, forged(kept[-1])], keep=2)
    fresh = remote.clone("next-job")
    unanchored = cli("-C", fresh, "audit", "verify")
    assert unanchored.code == 0  # nothing in a fresh CI clone remembers record #4
    caught, data = verify(cli, fresh, "--anchor-dir", ci)
    assert caught.code == 1
    assert [p["kind"] for p in data["problems"]] == ["truncated"]
    assert data["problems"][0]["message"].startswith(
        "record #4 (r4) is gone: the trail ends at #3, but held #4"
    )
    assert f"the head an earlier run kept in {data['anchor_file']}" in caught.err
    assert "(and the CI cache it came from)" in caught.err
    # The kept head never moves back to the cut-off trail.
    assert verify(cli, fresh, "--anchor-dir", ci)[0].code == 1


def test_a_file_trail_lives_in_the_checkout_and_is_not_anchored(
    tmp_path: Path, cli: Callable[..., Run], ci: Path
) -> None:
    root = init_repo(write_tree(tmp_path / "repo", {"a.txt": "1\n"}))
    write_records(root, 2)
    result, data = verify(cli, root, "--anchor-dir", ci)
    assert result.code == 0, result.err
    assert "lives in this checkout, not on a remote: no head is kept for it" in result.err
    assert data["anchor_file"] is None and data["head"]["id"] == "r1"
    assert not ci.exists()
    # The next job's trail starts anew: nothing fails it as cut off.
    (root / ".cd-checks" / "audit.jsonl").unlink()
    assert verify(cli, root, "--anchor-dir", ci)[0].code == 0


def test_verify_reads_the_config_the_rollout_was_given(
    tmp_path: Path, cli: Callable[..., Run], ci: Path
) -> None:
    root = init_repo(
        write_tree(
            tmp_path / "repo",
            {
                "cd-checks.yml": "audit: {store: file}\n",
                "ops/deploy.yml": "audit: {store: file, path: ops/trail.jsonl}\n",
            },
        )
    )
    default = cli("-C", root, "audit", "verify")
    assert default.code == 0 and f"audit trail {root}/.cd-checks/audit.jsonl:" in default.out
    other = cli("-C", root, "audit", "verify", "--config", root / "ops" / "deploy.yml")
    assert other.code == 0 and f"audit trail {root}/ops/trail.jsonl:" in other.out
    missing = cli("-C", root, "audit", "verify", "--config", root / "nope.yml")
    assert (missing.code, missing.err) == (
        2,
        f"cd-checks: error: config file not found: {root / 'nope.yml'}\n",
    )
