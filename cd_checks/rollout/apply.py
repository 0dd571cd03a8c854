"""Appliers: put a revision on some hosts. One Protocol, two implementations.

- `AnsibleApplier`: `ansible-playbook --inventory=INVENTORY --limit=h1,h2
  --extra-vars=cd_checks_revision=REV ... -- PLAYBOOK`, run in the worktree of
  the revision; per-host results come from the PLAY RECAP, and a host the play
  never reached fails.
- `CommandApplier`: any command; `{hosts}` (comma list), `{revision}`,
  `{stage}` and `{wave}` are substituted inside single arguments, never
  through a shell.

Both return an `ApplyResult`; neither prints. The environment for the
child process is passed in by the caller, without secrets
(`cd_checks.rollout.scrub`).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cd_checks import processes
from cd_checks.errors import ToolError
from cd_checks.rollout.inventory import Host
from cd_checks.rollout.spec import AnsibleApply, Apply, CommandApply

OUTPUT_TAIL_LINES = 40
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=\d+\s+unreachable=(\d+)\s+failed=(\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PLACEHOLDER = re.compile(r"\{(hosts|revision|stage|wave)\}")


@dataclass(frozen=True)
class ApplyResult:
    ok: bool
    returncode: int
    command: tuple[str, ...]
    failed_hosts: tuple[str, ...]
    output: str
    seconds: float
    errors: tuple[str, ...] = ()  # the applier's own error lines (ansible's `fatal:` ...)
    timed_out: float | None = None  # the apply.timeout it was stopped at (None: it ended)

    @property
    def failure(self) -> str:
        """Why it failed, in a few words."""
        if self.timed_out is not None:
            return f"stopped at apply.timeout: {self.timed_out:g} s"
        return f"exit {self.returncode}"


class Applier(Protocol):
    def apply(
        self, hosts: Sequence[Host], *, revision: str, stage: str, wave: int, workdir: Path
    ) -> ApplyResult: ...


@dataclass(frozen=True)
class AnsibleApplier:
    spec: AnsibleApply
    inventory: Path
    env: Mapping[str, str]
    program: str = "ansible-playbook"

    def command(self, hosts: Sequence[Host], revision: str, stage: str) -> list[str]:
        # Option values in the option's own argument (`--limit=HOSTS`), the playbook after
        # `--`: no inventory, host or playbook name (`--check.yml`) can be read as an option.
        argv = [self.program, f"--inventory={self.inventory}"]
        argv += [f"--limit={','.join(h.name for h in hosts)}"]
        argv += [f"--extra-vars=cd_checks_revision={revision}"]
        argv += [f"--extra-vars=cd_checks_stage={stage}"]
        if self.spec.forks is not None:
            argv += [f"--forks={self.spec.forks}"]
        if self.spec.tags:
            argv += [f"--tags={','.join(self.spec.tags)}"]
        return [*argv, *self.spec.extra_args, "--", self.spec.playbook]

    def apply(
        self, hosts: Sequence[Host], *, revision: str, stage: str, wave: int, workdir: Path
    ) -> ApplyResult:
        argv = self.command(hosts, revision, stage)
        env = {**self.env, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False"}
        code, output, seconds, stopped = _run(argv, workdir, env, self.spec.timeout)
        failed = recap_failures(output, [h.name for h in hosts])
        if code != 0 and not failed:
            failed = tuple(h.name for h in hosts)
        ok = code == 0 and not failed
        errors = error_lines(output)
        return ApplyResult(ok, code, tuple(argv), failed, output, seconds, errors, stopped)


def error_lines(output: str, limit: int = 10) -> tuple[str, ...]:
    """ansible's per-host error lines (`fatal: [host]: FAILED! => ...`, `ERROR! ...`), unescaped."""
    found = []
    for line in _ANSI.sub("", output).splitlines():
        if line.startswith(("fatal:", "ERROR!")) or "UNREACHABLE!" in line:
            found.append(line.replace('\\"', '"').replace("\\n", " ")[:500])
    return tuple(found[:limit])


def recap_failures(output: str, hosts: Sequence[str]) -> tuple[str, ...]:
    """Hosts that failed, were unreachable or are missing in ansible's PLAY RECAP."""
    seen: dict[str, bool] = {}
    recap = _ANSI.sub("", output).split("PLAY RECAP", 1)
    for line in recap[1].splitlines() if len(recap) == 2 else ():
        match = _RECAP.match(line.strip())
        if match:
            seen[match.group(1)] = match.group(2) == "0" and match.group(3) == "0"
    return tuple(h for h in hosts if not seen.get(h, False))


@dataclass(frozen=True)
class CommandApplier:
    spec: CommandApply
    env: Mapping[str, str]

    def command(self, hosts: Sequence[Host], revision: str, stage: str, wave: int) -> list[str]:
        values = {
            "hosts": ",".join(h.name for h in hosts),
            "revision": revision,
            "stage": stage,
            "wave": str(wave),
        }
        return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in self.spec.argv]

    def apply(
        self, hosts: Sequence[Host], *, revision: str, stage: str, wave: int, workdir: Path
    ) -> ApplyResult:
        argv = self.command(hosts, revision, stage, wave)
        env = {
            **self.env,
            "CD_CHECKS_HOSTS": ",".join(h.name for h in hosts),
            "CD_CHECKS_REVISION": revision,
            "CD_CHECKS_STAGE": stage,
            "CD_CHECKS_WAVE": str(wave),
        }
        code, output, seconds, stopped = _run(argv, workdir, env, self.spec.timeout)
        failed = () if code == 0 else tuple(h.name for h in hosts)
        return ApplyResult(code == 0, code, tuple(argv), failed, output, seconds, timed_out=stopped)


def make(spec: Apply, *, inventory: Path, env: Mapping[str, str]) -> Applier:
    """The applier for the `apply:` section (the registry of appliers)."""
    if isinstance(spec, AnsibleApply):
        program = shutil.which("ansible-playbook", path=env.get("PATH"))
        if program is None:
            raise ToolError("ansible-playbook not found on PATH (pip install ansible-core)")
        return AnsibleApplier(spec, inventory, env, program)
    return CommandApplier(spec, env)


# The exit code of an apply stopped at its timeout (as coreutils' timeout(1) gives).
TIMED_OUT = 124


def _run(
    argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float
) -> tuple[int, str, float, float | None]:
    """Run an apply: (exit code, output, seconds, the timeout it was stopped at or None).
    Past `timeout` seconds it and everything it started are stopped, and the apply failed
    (`processes.run_bounded`)."""
    start = time.monotonic()
    try:
        done = processes.run_bounded(argv, cwd=cwd, env=env, timeout=timeout, merge_stderr=True)
    except OSError as exc:
        return 127, f"cannot run {argv[0]}: {exc}", time.monotonic() - start, None
    if done.returncode is None:
        said = f"cd-checks: the apply ran longer than apply.timeout ({timeout:g} s) and was stopped"
        return TIMED_OUT, f"{done.stdout}\n{said}\n", time.monotonic() - start, timeout
    return done.returncode, done.stdout, time.monotonic() - start, None


def tail(output: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])
