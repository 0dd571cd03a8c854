"""`cd-checks rollout run --change TYPE` on a real git repository with two change types.

The applier is a real command (a Python script in the repository) that records, per change
type, what each host runs; the lab test (test_e2e_change_types.py) uses ansible and testinfra.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import git, init_repo, write_tree
from tests.rollout.cli_boot import main
from tests.rollout.repo_files import YAMLLINT
from tests.rollout.test_cli import DEPLOY, INVENTORY

FREEZE = {"from": "2020-01-01", "to": "2100-01-01", "reason": "test freeze"}
FROZEN = "test freeze (2020-01-01 .. 2100-01-01 UTC)"
STAGES = [
    {"name": "staging", "hosts": "staging"},
    {"name": "production", "hosts": "production", "waves": ["50%", "100%"]},
]


def config(fleet: Path, *, freeze: list[dict[str, str]] | None = None) -> str:
    def change(name: str, files: str) -> dict[str, Any]:
        deploy = [sys.executable, "deploy.py", "{hosts}", "{revision}", str(fleet / name)]
        return {"files": [files], "apply": {"command": deploy}}

    web = change("web", "web/**")
    if freeze:
        web["freeze"] = freeze
    document = {
        "defaults": {"inventory": "inventory/hosts", "stages": STAGES},
        "changes": {"web": web, "patches": change("patches", "patches/**")},
    }
    return yaml.safe_dump(document, sort_keys=False)


class Repo:
    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = tmp_path / "repo"
        self.fleet = tmp_path / "fleet"
        for name in ("web", "patches"):
            (self.fleet / name).mkdir(parents=True)
        self.capsys = capsys
        write_tree(
            self.root,
            {
                "cd-checks.yml": config(self.fleet),
                "deploy.py": DEPLOY,
                "inventory/hosts": INVENTORY,
                "web/site.conf": "v1\n",
                "patches/openssl.yml": "v1\n",
                ".gitignore": ".cd-checks/\n",
                ".yamllint": YAMLLINT,
            },
        )
        init_repo(self.root)

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        write_tree(self.root, files)
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return git(self.root, "rev-parse", "HEAD").strip()

    def cli(self, *args: str) -> tuple[int, str, str]:
        code = main(["-C", str(self.root), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def running(self, change: str) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted((self.fleet / change).iterdir())}

    def audit(self) -> list[dict[str, Any]]:
        path = self.root / ".cd-checks/audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Repo:
    return Repo(tmp_path, capsys)


def _lines(err: str, start: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(start)]


def test_a_freeze_window_refuses_the_run_before_any_host_is_touched(repo: Repo) -> None:
    repo.commit({"cd-checks.yml": config(repo.fleet, freeze=[FREEZE])}, "freeze web")
    code, out, err = repo.cli("rollout", "run", "--change", "web", "--all")
    assert code == 1, out + err
    assert _lines(err, "cd-checks: rollout refused") == [
        f"cd-checks: rollout refused: change type web: inside freeze window: {FROZEN}"
    ]
    assert repo.running("web") == {}
    assert repo.audit() == []  # no run started: nothing to record
    # The freeze is web's own: the other type deploys.
    assert repo.cli("rollout", "run", "--change", "patches", "--all")[0] == 0
    assert set(repo.running("patches").values()) == {repo.head()}


def test_break_glass_goes_past_a_freeze_window_and_the_audit_records_it(repo: Repo) -> None:
    frozen = repo.commit({"cd-checks.yml": config(repo.fleet, freeze=[FREEZE])}, "freeze web")
    code, out, err = repo.cli(
        "rollout", "run", "--change", "web", "--all",
        "--break-glass", "--reason", "outage", "--ticket", "INC-9",
    )  # fmt: skip
    assert code == 0, out + err
    note = f"BREAK-GLASS: going on inside freeze window: {FROZEN}"
    assert f"cd-checks: {note}" in err.splitlines()
    assert "rollout refused" not in err
    assert set(repo.running("web").values()) == {frozen} and len(repo.running("web")) == 12
    records = repo.audit()
    finals = [r for r in records if r["kind"] == "stage" and r["outcome"] != "started"]
    assert [(r["stage"], r["change"], r["outcome"]) for r in finals] == [
        ("staging", "web", "succeeded"),
        ("production", "web", "succeeded"),
    ]
    assert all(r["detail"]["notes"] == [note] for r in finals)
    glass = [r for r in records if r["kind"] == "break_glass"]
    assert [g["environment"] for g in glass] == ["staging", "production"]
    for record in glass:  # the post-mortem owed says what the run went past
        assert (record["change"], record["detail"]["notes"]) == ("web", [note])
        assert (record["break_glass"]["reason"], record["break_glass"]["ticket"]) == (
            "outage",
            "INC-9",
        )


def test_a_type_none_of_whose_files_changed_since_its_known_good_deploys_nothing(
    repo: Repo,
) -> None:
    first = repo.head()
    for change in ("web", "patches"):
        assert repo.cli("rollout", "run", "--change", change, "--all")[0] == 0
    patched = repo.commit({"patches/openssl.yml": "v2\n"}, "a patch only")
    code, out, err = repo.cli("rollout", "run", "--change", "web", "--all")
    assert code == 0, out + err
    assert (
        f"cd-checks: nothing to deploy: no file of change type web changed since {first[:12]}"
        in err.splitlines()
    )
    assert out == ""
    assert set(repo.running("web").values()) == {first}
    runs = len(repo.audit())
    code, _, err = repo.cli("rollout", "run", "--change", "patches", "--all")
    assert code == 0 and "nothing to deploy" not in err
    assert set(repo.running("patches").values()) == {patched}
    assert len(repo.audit()) > runs
    assert {r["change"] for r in repo.audit()[runs:]} == {"patches"}


def test_all_deploys_where_an_environment_lacks_the_change_though_staging_has_it(
    repo: Repo,
) -> None:
    first = repo.head()
    assert repo.cli("rollout", "run", "--change", "web", "--all")[0] == 0
    second = repo.commit({"web/site.conf": "v2\n"}, "web v2")
    assert repo.cli("rollout", "run", "--change", "web", "--stage", "staging")[0] == 0
    running = repo.running("web")
    assert {running[h] for h in ("stage-1", "stage-2")} == {second}
    assert running["web-01"] == first
    code, out, err = repo.cli("rollout", "run", "--change", "web", "--all")
    assert code == 0, out + err
    assert "nothing to deploy" not in err
    assert set(repo.running("web").values()) == {second}


def test_each_change_type_has_its_own_state_directory(repo: Repo) -> None:
    for change in ("web", "patches"):
        assert repo.cli("rollout", "run", "--change", change, "--all")[0] == 0
    state = repo.root / ".cd-checks/rollout"
    assert sorted(p.relative_to(state).as_posix() for p in state.glob("*/*/rollout.json")) == [
        "patches/production/rollout.json",
        "patches/staging/rollout.json",
        "web/production/rollout.json",
        "web/staging/rollout.json",
    ]
    assert not (state / "production").exists() and not (state / "staging").exists()
    for change in ("web", "patches"):
        record = json.loads((state / change / "production/rollout.json").read_text())
        assert (record["status"], record["revision"]) == ("done", repo.head())


def test_several_change_types_and_no_change_option_is_one_error_line(repo: Repo) -> None:
    code, out, err = repo.cli("rollout", "run", "--all")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "cd-checks: error: cd-checks.yml has several change types (web, patches): name one"
    ]
    assert repo.running("web") == {} and repo.running("patches") == {}
