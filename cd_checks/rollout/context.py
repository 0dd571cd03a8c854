"""Wire a rollout together from the repository, its config and the caller's environment.

Reads cd-checks.yml's `rollout:` section, the inventory (from the config,
relative to the repository, or an override), and builds the real parts:
git worktrees, the applier, the health gate and the state directory; the
last known-good revision and a deploy's base revision come from the audit
trail the caller opens (and git). The environment is passed in by the CLI;
every child process (git, ansible-inventory, the applier, testinfra) gets it
without secrets (`cd_checks.rollout.scrub`, `rollout.pass_env`). The state
directory must resolve inside the repository.

When the environment sets no ANSIBLE_SSH_ARGS and the inventory's directory
holds an `ssh_config` (as a `cd-checks lab` fleet does), ansible and
testinfra both use that file: `-F ssh_config` with connection sharing.

With change types (`changes:`), a context is one type's: its rollout settings
(`defaults:` merged with its own), its eligible hosts (the `hosts` pattern,
narrowed by `scope_by` for the files a deploy changes) and its own state
directory, `<state_dir>/<type>/`, so locks and run records are per
environment and change type.
"""

from __future__ import annotations

import datetime
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cd_checks import changes as changes_module
from cd_checks import config as config_module
from cd_checks import state_dir
from cd_checks.audit.identity import git_runner
from cd_checks.audit.trail import AuditKnownGood, AuditTrail
from cd_checks.config import Config
from cd_checks.rollout import apply, inventory, plan
from cd_checks.rollout.engine import NoObserver, Observer, Parts
from cd_checks.rollout.health import HealthGate, Testinfra
from cd_checks.rollout.inventory import Inventory
from cd_checks.rollout.progress import Reporter
from cd_checks.rollout.recorder import TrailHistory
from cd_checks.rollout.scrub import scrub
from cd_checks.rollout.spec import RolloutSpec
from cd_checks.rollout.state import StateDir
from cd_checks.rollout.workspace import GitWorkspace

SSH_CONFIG_NAME = "ssh_config"
PROMETHEUS_ENV = ("CD_CHECKS_PROMETHEUS_URL", "CD_CHECKS_PROMETHEUS_TOKEN")


@dataclass(frozen=True)
class Context:
    root: Path
    spec: RolloutSpec
    inventory: Inventory
    inventory_path: Path
    workspace: GitWorkspace
    state: StateDir
    env: Mapping[str, str]  # what every child gets: the caller's, without secrets
    config: Config
    change: changes_module.ChangeType | None = None  # name None: a single `rollout:` section
    withheld: tuple[str, ...] = ()  # names of the caller's variables the children do not get
    # Where Prometheus is and its bearer token: for the metric gate, never for a child.
    prometheus_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def ssh_config(self) -> Path | None:
        candidate = self.inventory_path.parent / SSH_CONFIG_NAME
        return candidate if candidate.is_file() else None

    @property
    def change_name(self) -> str | None:
        return self.change.name if self.change is not None else None

    def plan(self, revision: str, files: Sequence[str] | None = None) -> plan.Plan:
        """The plan of `revision`; a named change type's covers its eligible hosts only
        (narrowed by `scope_by` for `files`, the files the deploy changes)."""
        eligible = None
        if self.change is not None and self.change.name is not None:
            eligible = changes_module.eligible(self.change, self.inventory, files)
        return plan.build(
            self.inventory, self.spec, self.workspace.resolve(revision), eligible=eligible
        )


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def with_own_tools(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the directory of cd-checks' own interpreter at the end of PATH.

    The rollout extra installs ansible-playbook beside cd-checks; in a venv that is not
    activated (pipx, `.venv/bin/cd-checks`) it is not on PATH. The caller's PATH still wins.
    """
    own = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p]
    return {**env, "PATH": os.pathsep.join([*path, own] if own not in path else path)}


def load(
    root: Path,
    *,
    config_path: Path | None,
    inventory_path: Path | None,
    env: Mapping[str, str],
    change: str | None = None,
) -> Context:
    config = config_module.load(root, config_path)
    change_type = changes_module.change_type(config, change)
    spec = change_type.rollout
    path = (inventory_path or root / spec.inventory).resolve()
    named = change_type.name
    where = spec.state_dir if named is None else f"{spec.state_dir}/{named}"
    state = StateDir(state_dir.inside(root, where, "rollout.state_dir"), now)
    context_env, withheld = scrub(with_own_tools(env), spec.pass_env)
    ssh_config = path.parent / SSH_CONFIG_NAME
    if "ANSIBLE_SSH_ARGS" not in context_env and ssh_config.is_file():
        quoted = shlex.quote(str(ssh_config))
        context_env["ANSIBLE_SSH_ARGS"] = f"-F {quoted} -o ControlMaster=auto -o ControlPersist=60s"
        context_env.setdefault("ANSIBLE_PIPELINING", "True")
    return Context(
        root=root,
        spec=spec,
        inventory=inventory.load(path, env=context_env, cwd=root),
        inventory_path=path,
        workspace=GitWorkspace(root, context_env),
        state=state,
        env=context_env,
        config=config,
        change=change_type,
        withheld=withheld,
        prometheus_env={k: env[k] for k in PROMETHEUS_ENV if k in env},
    )


def known_good(context: Context, trail: AuditTrail) -> AuditKnownGood:
    """Known-good per environment (and change type) from the trail: the last run of its
    last stage."""
    last = {e: context.spec.stages_of(e)[-1].name for e in context.spec.environments()}
    return AuditKnownGood.of(trail, last, change=context.change_name)


def parts(
    context: Context,
    *,
    report: Reporter,
    workers: int,
    trail: AuditTrail,
    observer: Observer | None = None,
) -> Parts:
    health = context.spec.health
    testinfra = None
    if health.testinfra is not None:
        testinfra = Testinfra(
            tests=health.testinfra,
            backend=health.testinfra_backend,
            inventory=context.inventory_path,
            ssh_config=context.ssh_config,
            env=context.env,
            python=sys.executable,
            workers=workers,
            timeout=health.testinfra_timeout,
        )
    return Parts(
        inventory=context.inventory,
        spec=context.spec,
        applier=apply.make(context.spec.apply, inventory=context.inventory_path, env=context.env),
        gate=HealthGate(health, testinfra, prometheus_env=context.prometheus_env),
        workspace=context.workspace,
        state=context.state,
        known_good=known_good(context, trail),
        history=TrailHistory(trail, git_runner(context.root), change=context.change_name),
        report=report,
        observer=observer or NoObserver(),
    )
