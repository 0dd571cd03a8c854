"""The result cache cannot turn a failing check green (issue 9, item 1).

A pull request that commits `.cd-checks/cache/<aa>/<key>.json` = `[]` next to
a real error is checked in a fresh clone, with real git: the committed cache
is refused with one warning, and the error fails the run. Entries are
authenticated with an HMAC whose key lives outside the repository
(`CD_CHECKS_CACHE_KEY`, else a per-user key file): a forged, damaged or
foreign entry is a miss with one counted warning; the same key shares
entries between checkouts, as CI runs of one project do.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cd_checks.findings import Finding
from cd_checks.result_cache import Cache, Documents
from tests.conftest import Run, git, init_repo, run_process, write_tree

Cli = Callable[..., Run]
KEY = "k" * 32
BAD = {"svc.yml": "---\nkey: value   \n"}  # trailing spaces: a yamllint error on line 2
MARKER = Finding("svc.yml", 1, 1, "policy", "from-the-cache", "warning", "answered by the cache")


@pytest.fixture(autouse=True)
def no_ci_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CD_CHECKS_CACHE_KEY", raising=False)


def entries(root: Path) -> list[Path]:
    return sorted((root / ".cd-checks" / "cache").rglob("*.json"))


def warnings(run: Run) -> list[str]:
    return [line for line in run.err.splitlines() if line.startswith("cd-checks: warning: ")]


def rules(run: Run) -> list[tuple[object, object, object]]:
    return [(f["path"], f["line"], f["rule"]) for f in json.loads(run.out)["findings"]]


def plant(entry: Path, key: str, findings: list[Finding]) -> None:
    """A properly signed entry with `key` (what a holder of the key could write)."""
    Cache(entry.parent.parent, "", key.encode()).put(entry.stem, findings)


# -- a cache that comes with the checked revision ------------------------------------------


def poisoned_clone(tmp_path: Path, env: dict[str, str], *, signed_with: str | None) -> Path:
    """The attack: run validate, replace the entry of the failing file, commit it, clone."""
    work = init_repo(write_tree(tmp_path / "pr", BAD))
    assert run_process("-C", work, "validate", env=env).code == 1
    (entry,) = entries(work)
    if signed_with is None:
        entry.write_text("[]")  # the form: an empty list of findings
    else:
        plant(entry, signed_with, [])
    git(work, "add", "--force", "--", ".cd-checks/cache")
    git(work, "commit", "-q", "-m", "green, please")
    clone = tmp_path / "fresh-clone"
    git(tmp_path, "clone", "-q", "--", str(work), str(clone))
    assert (clone / entry.relative_to(work)).is_file()  # the poison arrived with the clone
    return clone


@pytest.mark.parametrize("signed_with", [None, KEY], ids=["plain", "signed-with-the-ci-key"])
def test_a_committed_cache_entry_does_not_turn_a_failing_pr_green(
    tmp_path: Path, signed_with: str | None
) -> None:
    # Even an entry signed with the very key CI uses (leaked, say) is not read from the checkout.
    env = {"CD_CHECKS_CACHE_KEY": KEY, "XDG_STATE_HOME": str(tmp_path / "state")}
    clone = poisoned_clone(tmp_path, env, signed_with=signed_with)
    (entry,) = entries(clone)
    committed = entry.read_bytes()
    run = run_process("-C", clone, "validate", "--format", "json", env=env)
    assert run.code == 1, run.out + run.err
    assert rules(run) == [("svc.yml", 2, "trailing-spaces")]
    assert warnings(run) == [
        f"cd-checks: warning: {entry.relative_to(clone).as_posix()} is tracked by git "
        "(committed in the checked revision); not using the result cache "
        "(`git rm -r --cached .cd-checks/cache` takes it out of git)"
    ]
    assert entry.read_bytes() == committed  # not read, not written
    assert entries(clone) == [entry]
    # As before, --no-cache fails it too, and says nothing about the cache.
    plain = run_process("-C", clone, "validate", "--no-cache", env=env)
    assert plain.code == 1 and warnings(plain) == []


def test_a_committed_cd_checks_symlink_is_neither_read_nor_written_through(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD_CHECKS_CACHE_KEY", KEY)
    elsewhere = tmp_path / "elsewhere"
    root = init_repo(write_tree(tmp_path / "repo", BAD))
    first = cli("-C", root, "validate", "--format", "json")
    (entry,) = entries(root)
    plant(entry, KEY, [])  # a valid entry saying "no findings", outside the checkout
    (root / ".cd-checks").rename(elsewhere)
    (root / ".cd-checks").symlink_to(elsewhere)
    git(root, "add", "--", ".cd-checks")
    git(root, "commit", "-q", "-m", "state elsewhere")
    before = sorted(p.relative_to(elsewhere) for p in elsewhere.rglob("*"))
    run = cli("-C", root, "validate", "--format", "json")
    assert run.code == 1 and run.out == first.out
    assert warnings(run) == [
        "cd-checks: warning: .cd-checks is a symbolic link; not using the result cache"
    ]
    assert sorted(p.relative_to(elsewhere) for p in elsewhere.rglob("*")) == before


def test_a_cache_directory_that_is_a_symlink_is_refused(tmp_path: Path, cli: Cli) -> None:
    root = write_tree(tmp_path / "repo", BAD)  # not even a git repository
    target = tmp_path / "shared-cache"
    target.mkdir()
    (root / ".cd-checks").mkdir()
    (root / ".cd-checks" / "cache").symlink_to(target)
    run = cli("-C", root, "validate")
    assert run.code == 1
    assert warnings(run) == [
        "cd-checks: warning: .cd-checks/cache is a symbolic link; not using the result cache"
    ]
    assert list(target.iterdir()) == []


# -- entries authenticated -----------------------------------------------------------------


def test_a_forged_entry_restored_into_the_cache_is_a_miss_with_a_warning(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD_CHECKS_CACHE_KEY", KEY)
    root = init_repo(write_tree(tmp_path / "repo", BAD))  # the cache is git-ignored, untracked
    first = cli("-C", root, "validate", "--format", "json")
    assert first.code == 1 and warnings(first) == []
    (entry,) = entries(root)
    for forged in ("[]", '{"mac": "00", "findings": []}', "{not json", ""):
        entry.write_text(forged)
        run = cli("-C", root, "validate", "--format", "json")
        assert (run.code, run.out) == (1, first.out), forged
        assert warnings(run) == [
            "cd-checks: warning: 1 result cache entry failed verification and was ignored "
            "(forged, damaged or made with another key); their files were checked again"
        ], forged
    # The entry was rewritten by the check: the next run is quiet and answered by it.
    quiet = cli("-C", root, "validate", "--format", "json")
    assert (quiet.code, quiet.out, warnings(quiet)) == (1, first.out, [])
    # An entry signed with another key is a forgery too.
    plant(entry, "another key, sixteen characters or more", [])
    assert warnings(cli("-C", root, "validate"))[0].startswith("cd-checks: warning: 1 result")
    # A symbolic link in the place of an entry is not followed, even to a valid entry.
    Cache(tmp_path / "outside", "", KEY.encode()).put(entry.stem, [])
    entry.unlink()
    entry.symlink_to(tmp_path / "outside" / entry.parent.name / entry.name)
    run = cli("-C", root, "validate", "--format", "json")
    assert (run.code, run.out) == (1, first.out)


def test_many_forged_entries_make_one_counted_warning_also_from_worker_processes(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD_CHECKS_CACHE_KEY", KEY)
    files = {f"svc/s{i:03}.yml": f"---\nname: s{i}   \n" for i in range(100)}
    root = init_repo(write_tree(tmp_path / "repo", files))
    first = cli("-C", root, "validate", "--format", "json", "--jobs", "2")
    assert first.code == 1 and len(json.loads(first.out)["findings"]) == 100
    for entry in entries(root):
        entry.write_text("[]")
    run = cli("-C", root, "validate", "--format", "json", "--jobs", "2")
    assert (run.code, run.out) == (1, first.out)
    assert warnings(run) == [
        "cd-checks: warning: 100 result cache entries failed verification and were ignored "
        "(forged, damaged or made with another key); their files were checked again"
    ]


def test_the_same_key_shares_entries_between_checkouts_as_ci_runs_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"CD_CHECKS_CACHE_KEY": KEY}
    one = init_repo(write_tree(tmp_path / "run-1", BAD))
    assert run_process("-C", one, "validate", env=env).code == 1
    (entry,) = entries(one)
    plant(entry, KEY, [MARKER])  # so that an answer from the cache shows
    # Another runner, another directory, another user's home: the restored cache answers.
    two = tmp_path / "run-2"
    git(tmp_path, "clone", "-q", "--", str(one), str(two))
    (two / ".cd-checks").mkdir()
    (entry.parent.parent).rename(two / ".cd-checks" / "cache")
    other_user = {**env, "XDG_STATE_HOME": str(tmp_path / "other-user")}
    run = run_process("-C", two, "validate", "--format", "json", env=other_user)
    assert rules(run) == [("svc.yml", 1, "from-the-cache")] and warnings(run) == []
    # Without the key, the same restored cache never verifies: a miss, said once.
    keyless = {"XDG_STATE_HOME": str(tmp_path / "other-user")}
    run = run_process("-C", two, "validate", "--format", "json", env=keyless)
    assert run.code == 1 and rules(run) == [("svc.yml", 2, "trailing-spaces")]
    assert len(warnings(run)) == 1 and "1 result cache entry failed" in run.err


# -- the per-user key ------------------------------------------------------------------------


def test_without_a_ci_key_a_per_user_key_is_made_once_private_and_reused(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    root = init_repo(write_tree(tmp_path / "repo", BAD))
    assert cli("-C", root, "validate", "--no-cache").code == 1
    assert not state.exists()  # no cache, no key
    run = cli("-C", root, "validate")
    assert run.code == 1 and warnings(run) == []
    key_file = state / "cd-checks" / "cache.key"
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) == 64
    assert key.encode() not in b"".join(p.read_bytes() for p in entries(root))
    # The second run uses the same key: its own entries verify and answer.
    (entry,) = entries(root)
    plant(entry, key, [MARKER])
    again = cli("-C", root, "validate", "--format", "json")
    assert rules(again) == [("svc.yml", 1, "from-the-cache")] and warnings(again) == []
    assert key_file.read_text().strip() == key


def test_the_per_user_key_defaults_to_the_home_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root = init_repo(write_tree(tmp_path / "repo", BAD))
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_STATE_HOME", None)
    env.pop("CD_CHECKS_CACHE_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "cd_checks", "-C", str(root), "validate"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "warning" not in done.stderr, done.stderr
    assert (home / ".local" / "state" / "cd-checks" / "cache.key").is_file()


def test_a_key_others_can_read_or_a_short_ci_key_turns_the_cache_off_with_one_line(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    key_file = state / "cd-checks" / "cache.key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("x" * 64 + "\n")
    key_file.chmod(0o644)
    root = init_repo(write_tree(tmp_path / "repo", BAD))
    run = cli("-C", root, "validate")
    assert run.code == 1
    assert warnings(run) == [
        f"cd-checks: warning: the cache key {key_file} is open to other users (mode 0644); "
        f"not using the result cache until `chmod 600 {key_file}`"
    ]
    assert entries(root) == []
    monkeypatch.setenv("CD_CHECKS_CACHE_KEY", "short")
    run = cli("-C", root, "validate")
    assert run.code == 1 and len(warnings(run)) == 1
    assert "CD_CHECKS_CACHE_KEY is shorter than 16 characters" in run.err
    assert entries(root) == []


# -- the documents the cross-file checks read ----------------------------------------------

RULES = (
    "---\ngroups:\n  - name: {name}\n    rules:\n      - alert: {alert}\n        expr: up == 0\n"
    "        for: 5m\n        labels: {{severity: critical}}\n"
    "        annotations: {{summary: down, runbook_url: 'https://runbooks.example/x'}}\n"
)
RULE_FILES = {
    "cd-checks.yml": "---\npolicy: {builtin: [monitoring]}\n",
    "prometheus/a.rules.yml": RULES.format(name="a", alert="NodeDown"),
    "prometheus/b.rules.yml": RULES.format(name="b", alert="DiskFull"),
}


def entry_with_alert(root: Path, alert: str) -> tuple[Path, dict[str, object]]:
    """The cache entry whose stored documents define `alert`, and its JSON."""
    for entry in entries(root):
        stored = json.loads(entry.read_text())
        if alert in json.dumps(stored.get("documents")):
            return entry, stored
    raise AssertionError(f"no entry keeps the documents of {alert}")


def test_a_warm_run_takes_the_cross_file_input_from_the_cache_signed_like_the_findings(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CD_CHECKS_CACHE_KEY", KEY)
    root = init_repo(write_tree(tmp_path / "repo", RULE_FILES))
    first = cli("-C", root, "validate", "--format", "json")
    assert (first.code, rules(first)) == (0, [])
    entry, stored = entry_with_alert(root, "DiskFull")
    renamed = json.loads(json.dumps(stored["documents"]).replace("DiskFull", "NodeDown"))
    # Changed without the key: the entry fails verification, the file is read again.
    entry.write_text(json.dumps({**stored, "documents": renamed}))
    run = cli("-C", root, "validate", "--format", "json")
    assert (run.code, rules(run)) == (0, [])
    assert "1 result cache entry failed verification" in run.err
    # Signed with the key (what only a holder of it can write): the warm run answers
    # the cross-file check from the entry, without parsing the file.
    entry, stored = entry_with_alert(root, "DiskFull")
    documents = Documents(renamed["kind"], tuple(renamed["documents"]))
    Cache(entry.parent.parent, "", KEY.encode()).put(
        entry.stem, [], documents=documents, keep_documents=True
    )
    run = cli("-C", root, "validate", "--format", "json")
    assert rules(run) == [("prometheus/b.rules.yml", 5, "MON-007")], run.out
    # An entry from before (findings only) is checked again and then keeps the documents.
    Cache(entry.parent.parent, "", KEY.encode()).put(entry.stem, [])
    run = cli("-C", root, "validate", "--format", "json")
    assert (run.code, rules(run), warnings(run)) == (0, [], [])
    assert entry_with_alert(root, "DiskFull")[0] == entry
