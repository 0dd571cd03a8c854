"""`cd-checks scope`: the change types, hosts and plan a change would deploy."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cd_checks.cli import examples

if TYPE_CHECKING:
    from cd_checks.config import Config
    from cd_checks.scope import LoadInventory

FORMATS = ("text", "markdown", "json")


@click.command(
    epilog=examples(
        "cd-checks scope                                   # this branch against the default one",
        "cd-checks scope --changed-since origin/main --format markdown  # for the PR",
        "cd-checks scope --revision HEAD~1 --format json",
    )
)
@click.option(
    "--changed-since",
    "ref",
    metavar="REF",
    help="Compare from where REVISION left REF (default: the pull/merge request's target "
    "branch in CI, else the default branch, origin's copy first).",
)
@click.option("--revision", default="HEAD", show_default=True, help="The revision to scope.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: cd-checks.yml at the repository root).",
)
@click.option(
    "--inventory",
    "inventory_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory to use instead of each change type's inventory.",
)
@click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 when there is a warning: files no change type deploys, a change type "
    "frozen now, a host pattern term or scope_by group that matches nothing.",
)
@click.pass_context
def scope(
    ctx: click.Context,
    ref: str | None,
    revision: str,
    config_path: Path | None,
    inventory_path: Path | None,
    output_format: str,
    strict: bool,
) -> int:
    """Show what a change deploys: its change types, their hosts and plans, the share of
    the fleet, and the files no change type deploys.

    Exit 0; with --strict 1 when there is a warning; 2 on a usage or config error.
    """
    from cd_checks import config as config_module
    from cd_checks import scope as scope_module

    root: Path = ctx.obj["root"]
    config = config_module.load(root, config_path)
    base_ref = ref or _default_ref(root, os.environ)
    base, head, files = scope_module.changed_files(root, base_ref, revision)
    found = scope_module.build(
        config,
        files,
        base=base,
        revision=head,
        load_inventory=_inventory_loader(config),
        inventory=inventory_path,
        now=datetime.now(timezone.utc),
    )
    click.echo(scope_module.RENDERERS[output_format](found), nl=False)
    return 1 if strict and found.warnings else 0


def _default_ref(root: Path, env: Mapping[str, str]) -> str:
    """The pull/merge request's target in CI, else the repository's default branch."""
    from cd_checks import scaffold
    from cd_checks import scope as scope_module

    if env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA"):  # GitLab merge request pipelines
        return env["CI_MERGE_REQUEST_DIFF_BASE_SHA"]
    target = env.get("GITHUB_BASE_REF") or env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
    return scope_module.default_ref(root, target or scaffold.default_branch(root))


def _inventory_loader(config: Config) -> LoadInventory:
    from cd_checks import changes
    from cd_checks.rollout import inventory
    from cd_checks.rollout.context import with_own_tools
    from cd_checks.rollout.scrub import scrub

    # As `rollout plan`: a non-YAML inventory is listed by ansible-inventory, which gets
    # the job's environment without credentials but those a change type passes on.
    passed = {name for change in changes.change_types(config) for name in change.rollout.pass_env}
    env, _ = scrub(with_own_tools(dict(os.environ)), passed)
    return lambda path: inventory.load(path, env=env, cwd=config.root)
