"""Appliers: argument lists, placeholders, the PLAY RECAP, real processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cd_checks.rollout.apply import AnsibleApplier, CommandApplier, recap_failures
from cd_checks.rollout.inventory import Host
from cd_checks.rollout.spec import AnsibleApply, CommandApply

HOSTS = [Host("web-1", "10.0.0.1"), Host("web-2;rm -rf /", "10.0.0.2")]

RECAP = """\
PLAY RECAP *********************************************************************
web-1                      : ok=3    changed=1    unreachable=0    failed=0    skipped=0
web-2                      : ok=1    changed=0    unreachable=0    failed=1    skipped=0
web-3                      : ok=0    changed=0    unreachable=1    failed=0    skipped=0
"""


def test_recap_failures_include_failed_unreachable_and_missing_hosts() -> None:
    assert recap_failures(RECAP, ["web-1", "web-2", "web-3", "web-4"]) == (
        "web-2",
        "web-3",
        "web-4",
    )
    assert recap_failures("no recap at all", ["web-1"]) == ("web-1",)


def test_ansible_command_is_an_argument_list() -> None:
    applier = AnsibleApplier(
        AnsibleApply("deploy/site.yml", ("--diff",), 5), Path("/inv.yml"), {}, "ansible-playbook"
    )
    assert applier.command(HOSTS, "abc", "canary") == [
        "ansible-playbook", "--inventory=/inv.yml",
        "--limit=web-1,web-2;rm -rf /",
        "--extra-vars=cd_checks_revision=abc", "--extra-vars=cd_checks_stage=canary",
        "--forks=5", "--diff", "--", "deploy/site.yml",
    ]  # fmt: skip


def test_command_placeholders_stay_inside_their_argument() -> None:
    applier = CommandApplier(CommandApply(("./deploy.sh", "--hosts={hosts}", "{revision}")), {})
    assert applier.command(HOSTS, "abc", "canary", 2) == [
        "./deploy.sh",
        "--hosts=web-1,web-2;rm -rf /",
        "abc",
    ]


def test_command_applier_runs_in_the_worktree_with_the_environment(tmp_path: Path) -> None:
    script = "import os,sys; open('out','w').write(os.environ['CD_CHECKS_HOSTS']+'|'+sys.argv[1])"
    applier = CommandApplier(
        CommandApply((sys.executable, "-c", script, "{stage}/{wave}")), dict(os.environ)
    )
    result = applier.apply(HOSTS, revision="abc", stage="canary", wave=1, workdir=tmp_path)
    assert result.ok and result.failed_hosts == ()
    assert (tmp_path / "out").read_text() == "web-1,web-2;rm -rf /|canary/1"


def test_a_failing_or_missing_command_fails_every_host(tmp_path: Path) -> None:
    failing = CommandApplier(CommandApply((sys.executable, "-c", "raise SystemExit(3)")), {})
    result = failing.apply(HOSTS, revision="r", stage="s", wave=1, workdir=tmp_path)
    assert (result.ok, result.returncode, len(result.failed_hosts)) == (False, 3, 2)
    missing = CommandApplier(CommandApply(("./no-such-deploy.sh",)), {})
    result = missing.apply(HOSTS, revision="r", stage="s", wave=1, workdir=tmp_path)
    assert not result.ok and "cannot run ./no-such-deploy.sh" in result.output


# A deploy that hangs (a host that stopped answering mid-task): it, and a child it started,
# sleep far longer than the apply may run. The child writes its pid for the test to check.
HANGING = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "open('child.pid', 'w').write(str(child.pid))\n"
    "print('deploying', flush=True)\n"
    "time.sleep(300)\n"
)


def test_an_apply_that_runs_past_its_timeout_is_stopped_with_what_it_started(
    tmp_path: Path,
) -> None:
    applier = CommandApplier(CommandApply((sys.executable, "-c", HANGING), timeout=1.5), {})
    result = applier.apply(HOSTS, revision="abc", stage="canary", wave=1, workdir=tmp_path)
    assert not result.ok and result.returncode == 124 and result.timed_out == 1.5
    assert result.failure == "stopped at apply.timeout: 1.5 s"
    assert result.failed_hosts == ("web-1", "web-2;rm -rf /")
    assert result.seconds < 15
    assert "deploying" in result.output
    assert result.output.rstrip().endswith(
        "the apply ran longer than apply.timeout (1.5 s) and was stopped"
    )
    child = int((tmp_path / "child.pid").read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()


def test_a_command_that_exits_124_itself_did_not_time_out(tmp_path: Path) -> None:
    applier = CommandApplier(CommandApply((sys.executable, "-c", "raise SystemExit(124)")), {})
    result = applier.apply(HOSTS, revision="abc", stage="canary", wave=1, workdir=tmp_path)
    assert (result.ok, result.returncode, result.timed_out) == (False, 124, None)
    assert result.failure == "exit 124"
