"""`cd-checks rollout plan|run` and `cd-checks rollback` on a real git repository.

The applier here is a real command (a Python script in the repository) that
records what each host runs; the lab end-to-end tests use ansible and testinfra.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import git, init_repo, write_tree
from tests.rollout.cli_boot import main
from tests.rollout.repo_files import YAMLLINT

DEPLOY = """\
import pathlib, sys
hosts, revision, fleet = sys.argv[1].split(","), sys.argv[2], pathlib.Path(sys.argv[3])
if pathlib.Path("broken").exists():
    sys.exit("deploy: this revision is broken")
for host in hosts:
    (fleet / host).write_text(revision)
"""

INVENTORY = """\
[staging]
stage-[1:2]

[production]
web-[01:10]
"""


def config(fleet: Path, **extra: object) -> str:
    section = {
        "inventory": "inventory/hosts",
        "apply": {"command": [sys.executable, "deploy.py", "{hosts}", "{revision}", str(fleet)]},
        "stages": [
            {"name": "staging", "hosts": "staging"},
            {"name": "canary", "hosts": "production", "percent": 10},
            {"name": "production", "hosts": "production", "waves": ["50%", "100%"]},
        ],
        **extra,
    }
    return yaml.safe_dump({"rollout": section})


class Repo:
    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = tmp_path / "repo"
        self.fleet = tmp_path / "fleet"
        self.fleet.mkdir()
        self.capsys = capsys
        write_tree(
            self.root,
            {
                "cd-checks.yml": config(self.fleet),
                "deploy.py": DEPLOY,
                "inventory/hosts": INVENTORY,
                ".gitignore": ".cd-checks/\n",
                ".yamllint": YAMLLINT,
            },
        )
        init_repo(self.root)

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        write_tree(self.root, files)
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message)
        return git(self.root, "rev-parse", "HEAD").strip()

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD").strip()

    def cli(self, *args: str) -> tuple[int, str, str]:
        code = main(["-C", str(self.root), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def running(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.fleet.iterdir())}


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Repo:
    return Repo(tmp_path, capsys)


def test_plan_formats(repo: Repo) -> None:
    code, out, _ = repo.cli("rollout", "plan", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["revision"] == repo.head()
    assert [len(w) for s in data["stages"] for w in s["waves"]] == [2, 1, 5, 4]
    code, text, _ = repo.cli("rollout", "plan")
    assert "stage canary (environment production, group production, 1 host)" in text
    code, markdown, _ = repo.cli("rollout", "plan", "--format", "markdown")
    assert markdown.startswith(f"### Rollout plan for `{repo.head()}`")


def test_run_all_deploys_every_host_in_the_planned_order(repo: Repo) -> None:
    _, planned, _ = repo.cli("rollout", "plan", "--format", "json")
    code, out, err = repo.cli("rollout", "run", "--all", "--format", "json")
    result = json.loads(out)
    assert code == 0 and result["ok"]
    assert [w["hosts"] for w in result["waves"]] == [
        w for s in json.loads(planned)["stages"] for w in s["waves"]
    ]
    assert set(repo.running().values()) == {repo.head()} and len(repo.running()) == 12
    assert "canary/1 web-" in err and " apply ok" in err  # progress, as plain lines


def test_a_failing_applier_rolls_back_to_known_good(repo: Repo) -> None:
    good = repo.head()
    assert repo.cli("rollout", "run", "--all")[0] == 0
    repo.commit({"broken": "yes"})
    code, out, _ = repo.cli("rollout", "run", "--all")
    assert code == 1
    assert "FAILED: stage staging wave 1: apply failed (exit 1) on stage-1, stage-2" in out
    assert "deploy: this revision is broken" in out
    assert f"rollback of environment staging to {good[:12]}: stage-1, stage-2" in out
    assert "rollback verified" in out
    assert set(repo.running().values()) == {good}


def test_one_job_per_stage_in_pipeline_order(repo: Repo) -> None:
    code, _, err = repo.cli("rollout", "run", "--stage", "canary")
    assert code == 2 and "needs stage staging to have passed" in err
    for stage in ("staging", "canary", "production"):
        assert repo.cli("rollout", "run", "--stage", stage)[0] == 0
    assert len(repo.running()) == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rollout", "run"], "exactly one of --stage NAME or --all"),
        (["rollout", "run", "--all", "--stage", "canary"], "exactly one of"),
        (["rollout", "run", "--stage", "nope"], "unknown stage 'nope'"),
        (["rollout", "plan", "--revision", "no-such-rev"], "'no-such-rev' is not a commit"),
        (["rollback"], "nothing to roll back"),
        (["rollout", "run", "--all", "--resume"], "nothing to resume"),
        (["rollout", "run", "--all", "--break-glass"], "needs --reason TEXT and --ticket ID"),
        (
            ["rollout", "run", "--all", "--break-glass", "--reason", "outage"],
            "needs --reason TEXT and --ticket ID",
        ),
        (["rollout", "run", "--all", "--ticket", "INC-1"], "go with --break-glass"),
    ],
)
def test_user_errors_exit_2(repo: Repo, args: list[str], message: str) -> None:
    if args == ["rollback"]:
        repo.cli("rollout", "run", "--stage", "staging")
        args = ["rollback", "--environment", "staging"]
    code, _, err = repo.cli(*args)
    assert code == 2 and message in err and err.startswith("cd-checks: error:")


def test_a_missing_rollout_section_exits_2(repo: Repo) -> None:
    repo.commit({"cd-checks.yml": "files: {include: ['**/*']}\n"})
    code, _, err = repo.cli("rollout", "plan")
    assert code == 2 and "no rollout: section" in err


@pytest.mark.parametrize(
    ("apply", "given"),
    [
        ("{timeout: 5m}", "neither"),
        ("{command: [x], ansible: {playbook: a.yml}}", "'ansible', 'command'"),
    ],
)
def test_apply_names_exactly_one_way_to_deploy(repo: Repo, apply: str, given: str) -> None:
    section = (
        f"rollout:\n  inventory: i.yml\n  apply: {apply}\n  stages: [{{name: s, hosts: all}}]\n"
    )
    repo.commit({"cd-checks.yml": section})
    code, _, err = repo.cli("rollout", "plan")
    assert code == 2
    assert err.endswith(
        f"rollout.apply: give exactly one of 'ansible' or 'command' (given: {given})\n"
    )


def test_rollback_to_an_older_revision_on_demand(repo: Repo) -> None:
    old = repo.head()
    repo.cli("rollout", "run", "--all")
    new = repo.commit({"README": "new"})
    repo.cli("rollout", "run", "--all")
    assert set(repo.running().values()) == {new}
    code, out, _ = repo.cli("rollback", "--stage", "canary", "--to", old)
    assert code == 0 and "rollback verified" in out
    assert out.startswith(f"rollback of environment production from {new[:12]}\n")
    trail = (repo.root / ".cd-checks/audit.jsonl").read_text().splitlines()
    last = json.loads(trail[-1])
    assert (last["kind"], last["revision_from"], last["revision_to"]) == ("rollback", new, old)
    assert {repo.running()[f"web-{i:02d}"] for i in range(1, 11)} == {old}
    assert {repo.running()[f"stage-{i}"] for i in (1, 2)} == {new}


def test_a_revision_that_fails_validate_is_refused_unless_break_glass(repo: Repo) -> None:
    repo.cli("rollout", "run", "--all")
    good = repo.head()
    bad = repo.commit({"broken.yml": "a:\n  - b\n c: d\n"}, "bad yaml")
    code, out, err = repo.cli("rollout", "run", "--all")
    assert code == 1 and "broken.yml:3" in out
    assert f"rollout refused: {bad[:12]} fails validate (1 error(s))" in err
    assert set(repo.running().values()) == {good}
    code, out, err = repo.cli(
        "rollout", "run", "--all", "--break-glass", "--reason", "hotfix", "--ticket", "INC-7"
    )
    assert code == 0, out + err
    assert f"BREAK-GLASS: deploying {bad[:12]} fails validate" in err
    assert set(repo.running().values()) == {bad}
    code, out, _ = repo.cli("audit", "log")
    assert code == 0 and "BREAK-GLASS" in out and "POSTMORTEM-DUE" in out


def test_rollout_writes_a_job_summary_when_github_asks_for_one(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert repo.cli("rollout", "run", "--stage", "staging")[0] == 0
    text = summary.read_text()
    assert text.startswith(f"### Rollout of `{repo.head()[:12]}`: succeeded")
    assert "| staging | 1 | stage-" in text and "Audit records: `" in text


# A revision whose deploy changes every host of the wave, then fails.
DEPLOY_THEN_FAIL = DEPLOY + 'sys.exit("deploy: the new service did not start")\n'


def test_a_failed_first_rollout_is_rolled_back_to_the_deploys_base_revision(repo: Repo) -> None:
    base = repo.head()
    bad = repo.commit({"deploy.py": DEPLOY_THEN_FAIL})
    code, out, err = repo.cli("rollout", "run", "--all")
    assert code == 1
    said = f"no known-good revision yet: rolling back to the deploy's base revision {base[:12]}"
    assert f"note: {said} (the parent of {bad[:12]})" in out
    assert f"rollback of environment staging to {base[:12]}: stage-1, stage-2" in out
    assert "rollback verified" in out and "NOT ROLLED BACK" not in out
    assert f"staging/rollback * rollback info {said}" in err
    assert repo.running() == {"stage-1": base, "stage-2": base}
    start = json.loads((repo.root / ".cd-checks/audit.jsonl").read_text().splitlines()[0])
    assert (start["outcome"], start["revision_to"], start["base_revision"]) == (
        "started",
        bad,
        base,
    )


def test_rollback_after_a_failed_first_rollout_uses_the_base_revision(repo: Repo) -> None:
    base = repo.commit({"cd-checks.yml": config(repo.fleet, rollback={"automatic": False})})
    bad = repo.commit({"deploy.py": DEPLOY_THEN_FAIL})
    code, out, _ = repo.cli("rollout", "run", "--stage", "staging")
    assert code == 1 and "NOT ROLLED BACK (stage-1, stage-2)" in out
    assert repo.running() == {"stage-1": bad, "stage-2": bad}
    code, out, _ = repo.cli("rollback")
    assert code == 0, out
    assert out.startswith(f"rollback of environment staging from {bad[:12]}\n")
    assert (
        "note: no known-good revision yet: rolling back to the deploy's base revision "
        f"{base[:12]} (the parent of {bad[:12]})"
    ) in out
    assert "rollback verified" in out
    assert repo.running() == {"stage-1": base, "stage-2": base}


def test_a_fresh_checkout_finds_the_base_revision_in_the_trail_on_the_git_branch(
    repo: Repo, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo.root, "remote", "add", "origin", str(origin))
    section = yaml.safe_load(config(repo.fleet, rollback={"automatic": False}))
    audited = yaml.safe_dump({**section, "audit": {"store": "git", "remote": "origin"}})
    base = repo.commit({"cd-checks.yml": audited})
    bad = repo.commit({"deploy.py": DEPLOY_THEN_FAIL})
    git(repo.root, "push", "-q", "origin", "main")
    assert repo.cli("rollout", "run", "--stage", "staging")[0] == 1
    # The rollback job: a fresh clone, no .cd-checks/ state, the trail on origin's branch.
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(fresh))
    code = main(["-C", str(fresh), "rollback"])
    out, err = repo.capsys.readouterr()
    assert code == 0, out + err
    assert f"base revision {base[:12]} (the parent of {bad[:12]})" in out
    assert "rollback of environment staging to" in out and "rollback verified" in out
    assert repo.running() == {"stage-1": base, "stage-2": base}


def test_a_failed_root_commit_without_known_good_needs_to(repo: Repo) -> None:
    write_tree(
        repo.root,
        {
            "cd-checks.yml": config(repo.fleet, rollback={"automatic": False}),
            "deploy.py": DEPLOY_THEN_FAIL,
        },
    )
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "--amend", "-m", "initial")
    root = repo.head()
    assert repo.cli("rollout", "run", "--stage", "staging")[0] == 1
    code, _, err = repo.cli("rollback")
    assert code == 2
    assert err == (
        "cd-checks: error: environment staging has no known-good revision yet and the rollout "
        f"of {root[:12]} has no base revision to go back to: {root[:12]} is a root commit (it "
        "has no parent); pass --to REV\n"
    )
