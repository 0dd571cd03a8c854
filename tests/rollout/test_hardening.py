"""Issue 9, the rollout's part: names that look like options, secrets in the environment,
the pre-flight's findings in a GitHub job log, worktrees of killed runs, bounded YAML
and paths that lead out of the repository.

Everything runs through the real `cd-checks` CLI on a real git repository; the appliers
are real processes (a Python script, and ansible-playbook on a local connection) and the
health gate runs real testinfra files through pytest.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from cd_checks.checks.rollout import UNPARSED_RULES
from cd_checks.rollout.scrub import is_secret, scrub
from tests.conftest import REPO, git, init_repo, write_tree
from tests.rollout.cli_boot import main
from tests.rollout.repo_files import YAMLLINT

SECRETS = {
    "GITHUB_TOKEN": "ghs_not_for_the_deploy",
    "CI_JOB_TOKEN": "glcbt-not-for-the-deploy",
    "ACTIONS_RUNTIME_TOKEN": "runtime-not-for-the-deploy",
    "CI_REPOSITORY_URL": "https://gitlab-ci-token:glcbt-x@gitlab.example/ops.git",
    "DB_PASSWORD": "hunter2",
}
DUMP_ENV = """\
import json, os, pathlib, sys
pathlib.Path(sys.argv[1], "env.json").write_text(json.dumps(dict(os.environ)))
"""
HEALTH_TEST = """\
import os

SECRETS = {secrets!r}


def test_no_secret_reaches_the_health_tests():
    assert [name for name in SECRETS if name in os.environ] == []


def test_the_allowed_variable_does():
    assert os.environ.get("DEPLOY_API_TOKEN") == {allowed!r}
"""
# Run as a child and killed with SIGKILL inside the worktree it made: a killed run.
KILLED_RUN = """\
import os, signal, sys
from pathlib import Path
from cd_checks.rollout.workspace import GitWorkspace

workspace = GitWorkspace(Path(sys.argv[1]), dict(os.environ))
with workspace.checkout("HEAD") as tree:
    print(tree, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()  # a run still going: until the test closes stdin
"""
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


class Repo:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root, self.capsys = root, capsys

    def cli(self, *args: str) -> tuple[int, str, str]:
        code = main(["-C", str(self.root), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def worktrees(self) -> list[str]:
        listing = git(self.root, "worktree", "list", "--porcelain")
        return [
            line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree")
        ]


def make_repo(
    root: Path,
    capsys: pytest.CaptureFixture[str],
    section: Mapping[str, Any],
    files: Mapping[str, str],
) -> Repo:
    write_tree(
        root,
        {
            "cd-checks.yml": yaml.safe_dump({"rollout": dict(section)}, sort_keys=False),
            ".gitignore": ".cd-checks/\n",
            ".yamllint": YAMLLINT,
            **files,
        },
    )
    init_repo(root)
    return Repo(root, capsys)


def section(out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "inventory": "inventory/hosts",
        "apply": {"command": [sys.executable, "dump_env.py", str(out)]},
        "stages": [{"name": "staging", "hosts": "staging"}],
        **extra,
    }


@pytest.fixture
def ci_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A deploy job's environment: credentials of cd-checks and the CI system, and others'."""
    for name in ("GITHUB_ACTIONS", "GITHUB_ACTOR", "GITLAB_CI", "GITLAB_USER_LOGIN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEPLOY_API_TOKEN", "allowed")
    (tmp_path / "vault-pass").write_text("not used\n")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(tmp_path / "vault-pass"))
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/agent.sock")
    yield


# -- secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("GITHUB_TOKEN", True),
        ("CD_CHECKS_GITLAB_TOKEN", True),
        ("CD_CHECKS_AUDIT_KEY", True),
        ("CD_CHECKS_CACHE_KEY", True),
        ("CI_JOB_TOKEN", True),
        ("CI_JOB_JWT_V2", True),
        ("CI_REPOSITORY_URL", True),
        ("ACTIONS_RUNTIME_TOKEN", True),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_SESSION_TOKEN", True),
        ("DATADOG_API_KEY", True),
        ("db_password", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("ANSIBLE_VAULT_PASSWORD_FILE", False),
        ("ANSIBLE_SSH_ARGS", False),
        ("SSH_AUTH_SOCK", False),
        ("PATH", False),
        ("HOME", False),
        ("AWS_ACCESS_KEY_ID", False),
        ("GITHUB_SHA", False),
        ("CI_COMMIT_SHA", False),
    ],
)
def test_which_variables_are_secrets(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


def test_pass_env_lets_a_named_secret_through() -> None:
    env = {"PATH": "/bin", "GITHUB_TOKEN": "t", "VAULT_TOKEN": "v"}
    assert scrub(env, ("VAULT_TOKEN",)) == ({"PATH": "/bin", "VAULT_TOKEN": "v"}, ("GITHUB_TOKEN",))


def test_the_applier_and_the_health_tests_never_see_the_jobs_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ci_environment: None
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    health = {"testinfra": "tests/health/", "bake_seconds": 0, "retries": 0}
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        section(out, health=health, pass_env=["DEPLOY_API_TOKEN"]),
        {
            "dump_env.py": DUMP_ENV,
            "inventory/hosts": "[staging]\nstage-1\n",
            "tests/health/test_environment.py": HEALTH_TEST.format(
                secrets=sorted(SECRETS), allowed="allowed"
            ),
        },
    )
    code, report, err = repo.cli("rollout", "run", "--all", "--format", "json")
    assert code == 0, report + err
    seen = json.loads((out / "env.json").read_text())
    assert [name for name in SECRETS if name in seen] == []
    assert seen["DEPLOY_API_TOKEN"] == "allowed"
    assert seen["ANSIBLE_VAULT_PASSWORD_FILE"] == str(tmp_path / "vault-pass")
    assert seen["SSH_AUTH_SOCK"] == "/run/agent.sock"
    checks = [c["check"] for c in json.loads(report)["waves"][0]["gate"]["hosts"]["stage-1"]]
    assert any(c.endswith("test_no_secret_reaches_the_health_tests") for c in checks), checks
    withheld = next(line for line in err.splitlines() if "not passed to the applier" in line)
    assert all(name in withheld for name in SECRETS) and "DEPLOY_API_TOKEN" not in withheld
    assert withheld.endswith("(allow one with rollout.pass_env)")


def test_a_health_test_that_needs_a_withheld_variable_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ci_environment: None
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    health = {"testinfra": "tests/health/", "bake_seconds": 0, "retries": 0}
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        section(out, health=health),  # no pass_env: DEPLOY_API_TOKEN is withheld too
        {
            "dump_env.py": DUMP_ENV,
            "inventory/hosts": "[staging]\nstage-1\n",
            "tests/health/test_environment.py": HEALTH_TEST.format(
                secrets=sorted(SECRETS), allowed="allowed"
            ),
        },
    )
    code, report, _ = repo.cli("rollout", "run", "--all")
    assert code == 1
    assert "test_the_allowed_variable_does" in report
    assert "DEPLOY_API_TOKEN" not in json.loads((out / "env.json").read_text())


# -- names that look like options ------------------------------------------------------

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Record the revision and what the play can see of the job's token
      ansible.builtin.copy:
        dest: "{{ out }}/{{ inventory_hostname }}.txt"
        content: "{{ cd_checks_revision }} {{ token or 'no token' }}\\n"
        mode: "0644"
      vars:
        token: "{{ lookup('ansible.builtin.env', 'GITHUB_TOKEN') }}"
"""


def test_a_playbook_and_health_tests_named_like_options_are_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ci_environment: None
) -> None:
    """A real ansible-playbook: `--check.yml` is the playbook, not `--check` (a dry run);
    the health test directory `--health/` is tests, not an option of pytest."""
    out = tmp_path / "out"
    out.mkdir()
    host = f"target-1 ansible_connection=local ansible_python_interpreter={sys.executable}"
    rollout = {
        "inventory": "inventory/hosts",
        "apply": {
            "ansible": {"playbook": "--check.yml", "extra_args": [f"--extra-vars=out={out}"]}
        },
        "stages": [{"name": "staging", "hosts": "staging"}],
        "health": {"testinfra": "--health/", "bake_seconds": 0, "retries": 0},
    }
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        rollout,
        {
            "--check.yml": PLAYBOOK,
            "inventory/hosts": f"[staging]\n{host}\n",
            "--health/test_environment.py": HEALTH_TEST.format(
                secrets=sorted(SECRETS), allowed=None
            ),
        },
    )
    revision = git(repo.root, "rev-parse", "HEAD").strip()
    code, report, err = repo.cli("rollout", "run", "--all", "--format", "json")
    assert code == 0, report + err
    assert (out / "target-1.txt").read_text() == f"{revision} no token\n"
    checks = [c["check"] for c in json.loads(report)["waves"][0]["gate"]["hosts"]["target-1"]]
    assert any("test_no_secret_reaches_the_health_tests" in c for c in checks), checks


def test_a_revision_named_like_an_option_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        section(tmp_path),
        {"dump_env.py": DUMP_ENV, "inventory/hosts": "[staging]\nstage-1\n"},
    )
    victim = tmp_path / "victim"
    code, _, err = repo.cli("rollout", "plan", "--revision", f"--output={victim}")
    assert code == 2
    assert err.startswith(f"cd-checks: error: revision '--output={victim}' is not a commit")
    assert not victim.exists()


# -- the pre-flight in a GitHub job log ------------------------------------------------

FORGED = "bad\n::error::forged.yml"


@pytest.fixture
def failing_revision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Repo:
    return make_repo(
        tmp_path / "repo",
        capsys,
        section(tmp_path),
        {
            "dump_env.py": DUMP_ENV,
            "inventory/hosts": "[staging]\nstage-1\n",
            FORGED: "a: [\n",
        },
    )


def test_the_preflight_annotates_in_github_actions(
    failing_revision: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(failing_revision.root))
    code, out, err = failing_revision.cli("rollout", "run", "--all")
    assert code == 1 and "rollout refused" in err
    lines = out.splitlines()
    assert lines and all(re.match(r"::(error|warning) file=", line) for line in lines), out
    assert "::error file=bad%0A%3A%3Aerror%3A%3Aforged.yml,line=2," in out
    assert not any(line.startswith("::error::") for line in lines)


def test_the_preflight_prints_text_elsewhere(
    failing_revision: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    code, out, err = failing_revision.cli("rollout", "run", "--all")
    assert code == 1 and "rollout refused" in err
    assert not out.startswith("::") and "1 error" in out


# -- worktrees of killed runs ----------------------------------------------------------


def start_run(root: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    child = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", KILLED_RUN, str(root), how],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, Path(child.stdout.readline().strip())


def test_the_next_run_removes_the_worktree_of_a_killed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        section(out),
        {"dump_env.py": DUMP_ENV, "inventory/hosts": "[staging]\nstage-1\n"},
    )
    killed, left = start_run(repo.root, "kill")
    assert killed.wait(timeout=60) == -signal.SIGKILL
    assert left.is_dir() and str(left) in repo.worktrees()
    assert left.parent.parent == repo.root / ".cd-checks" / "worktrees"
    assert left.parent.name.startswith("cd-checks-worktree-")

    code, _, err = repo.cli("rollout", "run", "--all")
    assert code == 0, err
    assert f"cd-checks: removed the worktree of a killed run: {left.parent}" in err
    assert not left.parent.exists()
    assert repo.worktrees() == [str(repo.root)]
    assert git(repo.root, "status", "--porcelain") == ""


def test_a_worktree_another_run_is_using_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        section(out),
        {"dump_env.py": DUMP_ENV, "inventory/hosts": "[staging]\nstage-1\n"},
    )
    running, tree = start_run(repo.root, "stay")
    try:
        code, _, err = repo.cli("rollout", "run", "--all")
        assert code == 0, err
        assert "removed the worktree" not in err
        assert tree.is_dir() and str(tree) in repo.worktrees()
    finally:
        assert running.stdin is not None
        running.stdin.close()
        running.wait(timeout=60)
    assert not tree.parent.exists() and repo.worktrees() == [str(repo.root)]


# -- bounded YAML ----------------------------------------------------------------------


def rule_ids(module: Path) -> set[str]:
    """Rule ids a module of the per-file guard can give a finding."""
    text = module.read_text()
    found = set(re.findall(r'ParseProblem\(\s*"([a-z-]+)"', text))
    found |= set(re.findall(r'return "([a-z-]+)", ', text))
    found |= set(re.findall(r'INTERNAL = "([a-z/-]+)"', text))
    return found


def test_every_rule_of_the_guard_that_means_unparsed_is_known() -> None:
    ids = rule_ids(REPO / "cd_checks/bounded.py") | rule_ids(REPO / "cd_checks/guard.py")
    assert {"alias-bomb", "number-too-long", "bad-value", "too-deep", "input/error"} <= ids
    assert ids - {"duplicate-key"} <= UNPARSED_RULES


@pytest.mark.parametrize(
    ("inventory", "files", "bombed"),
    [
        ("inventory/hosts.yml", {"inventory/hosts.yml": BOMB}, "inventory/hosts.yml"),
        (
            "inventory/",
            {"inventory/hosts.ini": "[staging]\nstage-1\n", "inventory/extra.yml": BOMB},
            "inventory/extra.yml",
        ),
    ],
)
def test_an_alias_bomb_in_the_inventory_is_one_finding(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    inventory: str,
    files: dict[str, str],
    bombed: str,
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        {**section(tmp_path), "inventory": inventory},
        {"dump_env.py": DUMP_ENV, **files},
    )
    code, out, _ = repo.cli("validate", "--format", "json")
    assert code == 1
    findings = json.loads(out)["findings"]
    assert [(f["path"], f["check"], f["rule"]) for f in findings if f["severity"] == "error"] == [
        (bombed, "syntax", "alias-bomb")
    ], findings
    code, _, err = repo.cli("rollout", "plan")
    assert code == 2
    assert err.startswith(f"cd-checks: error: inventory {repo.root / bombed}:1: aliases expand")
    assert len(err.splitlines()) == 1


# -- paths out of the repository -------------------------------------------------------


@pytest.mark.parametrize("where", ["../outside", "/ABSOLUTE", "link/rollout"])
def test_a_state_dir_outside_the_repository_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    state = where.replace("/ABSOLUTE", str(outside / "state"))
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        section(tmp_path, state_dir=state),
        {"dump_env.py": DUMP_ENV, "inventory/hosts": "[staging]\nstage-1\n"},
    )
    (repo.root / "link").symlink_to(outside)
    code, _, err = repo.cli("rollout", "run", "--all")
    assert code == 2
    assert err.startswith(f"cd-checks: error: rollout.state_dir: {state} resolves to ")
    assert "outside the repository" in err and len(err.splitlines()) == 1
    assert list(outside.iterdir()) == []


def test_an_environment_cannot_name_a_directory_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stages = [{"name": "staging", "hosts": "staging", "environment": "../../escape"}]
    repo = make_repo(
        tmp_path / "repo",
        capsys,
        {**section(tmp_path), "stages": stages},
        {"dump_env.py": DUMP_ENV, "inventory/hosts": "[staging]\nstage-1\n"},
    )
    code, _, err = repo.cli("rollout", "run", "--all")
    assert code == 2
    assert err == (
        "cd-checks: error: rollout: stage 'staging': environment '../../escape' is not a plain "
        "name (it names a directory of rollout.state_dir); set `environment:` to one\n"
    )
    assert not (tmp_path / "escape").exists()
