"""Run the real `cd-checks` CLI, with the rollout commands registered even before the lead's
registry line exists (setdefault: a no-op once `cd_checks.cli.COMMANDS` lists them)."""

from __future__ import annotations

from collections.abc import Sequence

from cd_checks import cli

ENTRIES = {
    "rollout": ("cd_checks.cli.rollout", "rollout", "Staged, health-gated rollouts (plan, run)."),
    "rollback": ("cd_checks.cli.rollout", "rollback", "Roll an environment back to known-good."),
}

BOOT = (
    "import sys; from cd_checks import cli; "
    "from tests.rollout.cli_boot import ENTRIES; "
    "[cli.COMMANDS.setdefault(k, v) for k, v in ENTRIES.items()]; cli.run()"
)


def main(argv: Sequence[str]) -> int:
    for name, entry in ENTRIES.items():
        cli.COMMANDS.setdefault(name, entry)
    return cli.main(list(argv))
