"""`cd-checks init`: parse options, plan and write the files, say what was written and what next."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cd_checks import scaffold
from cd_checks.scaffold import render

EXAMPLES = (
    "\b\nExamples:\n"
    "  cd-checks init                    # what fits this repository, CI for its host\n"
    "  cd-checks init --ci github        # GitHub Actions only (gitlab, both, none)\n"
    "  cd-checks init --force            # write every file again, over the old ones\n"
)


@click.command(epilog=EXAMPLES)
@click.option(
    "--force", is_flag=True, help="Overwrite files that exist (.gitignore only gets its entry)."
)
@click.option(
    "--ci",
    type=click.Choice(scaffold.CI_CHOICES),
    default="auto",
    show_default=True,
    help="CI files to write. auto: GitHub and/or GitLab, as .github/, .gitlab-ci.yml "
    "and the origin remote tell (both when nothing does).",
)
@click.option(
    "--action-ref",
    metavar="REF",
    help="Ref of cd-checks the CI files use (default: the installed commit's SHA when "
    "known, else the release tag).",
)
@click.pass_context
def init(ctx: click.Context, force: bool, ci: str, action_ref: str | None) -> int:
    """Add cd-checks to this repository.

    Writes cd-checks.yml with the policy sets and globs that fit what the
    repository holds (NGINX, Prometheus rules, Ansible, schemas, a conftest
    policy/ directory), the .gitignore entry for .cd-checks/, the GitHub
    workflows (pull request checks, deploys) and/or .gitlab-ci.yml, and the
    pre-commit hooks. A file that exists is kept unless --force; then run
    cd-checks validate, commit, and make the check required.
    """
    root: Path = ctx.obj["root"]
    planned = scaffold.plan(root, ci=ci, action_ref=action_ref, force=force)
    outcomes = scaffold.write(planned, force=force)
    click.echo(f"cd-checks init in {_shown(planned.root)}")
    for line in _found(planned):
        click.echo(f"  found: {line}")
    width = max(len(_shown(planned.top / o.path)) for o in outcomes)
    for outcome in outcomes:
        click.echo(
            f"  {outcome.action:9} {_shown(planned.top / outcome.path):{width}}  {_why(outcome)}"
        )
    for note in planned.notes:
        click.echo(f"  note: {note}")
    changed = [_shown(planned.top / o.path) for o in outcomes if o.action != "kept"]
    if not changed:
        click.echo("Nothing written: every file is already there (--force overwrites them).")
    else:
        click.echo("\n".join(["Next:", *next_steps(changed, planned)]))
    return 0


def _shown(path: Path) -> str:
    """A path as the user would type it from where they are (absolute from elsewhere)."""
    cwd = Path.cwd()
    return os.path.relpath(path, cwd) if path.resolve().is_relative_to(cwd.resolve()) else str(path)


def _found(planned: scaffold.Plan) -> list[str]:
    if planned.kept_config:
        return ["cd-checks.yml, which is kept and decides the CI files"]
    return render.found_lines(planned.survey)


def _why(outcome: scaffold.Outcome) -> str:
    if outcome.action != "kept":
        return outcome.what
    if outcome.path == render.GITIGNORE:
        return "already ignores .cd-checks/"
    return "exists (--force overwrites it)"


def next_steps(changed: list[str], planned: scaffold.Plan) -> list[str]:
    """What to do after init, numbered."""
    steps = [
        "cd-checks validate   # what the checks find today: fix it, or except it",
        f"git add {' '.join(changed)} && git commit -m 'Add cd-checks'",
    ]
    if "github" in planned.setup.ci:
        steps.append(
            'GitHub: require the check "validate" (pull requests show it as "cd-checks / '
            'validate"): Settings -> Rules -> Rulesets, "Require status checks to pass"'
        )
    if "gitlab" in planned.setup.ci:
        steps.append('GitLab: turn on "Pipelines must succeed" (Settings -> Merge requests)')
    if any(p.path == render.PRE_COMMIT for p in planned.files):
        steps.append("pre-commit install   # the same checks before each commit")
    return [f"  {number}. {step}" for number, step in enumerate(steps, 1)]
