"""`cd-checks init`: add cd-checks to an existing repository.

`plan` surveys the repository (`survey.py`), asks git where its top and
default branch are, and renders every file (`render.py`): `cd-checks.yml`,
the `.gitignore` entry, the GitHub workflows, `.gitlab-ci.yml` and
`.pre-commit-config.yaml`. `write` writes each file that is absent, or every
file with `force`; the `.gitignore` entry is added to the existing file,
never overwriting it. An existing `cd-checks.yml` that is kept decides the CI
files (its rollout stages become the deploy jobs). Nothing here prints.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cd_checks import config as config_module
from cd_checks.scaffold import render
from cd_checks.scaffold.pin import Pin, resolve
from cd_checks.scaffold.survey import Survey, survey

CI_CHOICES = ("auto", "github", "gitlab", "both", "none")
Action = Literal["wrote", "overwrote", "added", "kept"]


@dataclass(frozen=True)
class Outcome:
    """What became of one planned file."""

    path: str  # from the top of the git work tree
    what: str
    action: Action


@dataclass(frozen=True)
class Plan:
    """Everything `init` would write, and what it found on the way."""

    top: Path  # the git work tree's top (the root itself outside git)
    root: Path  # where cd-checks.yml lives
    survey: Survey
    setup: render.Setup
    files: tuple[render.Planned, ...]
    kept_config: bool  # an existing cd-checks.yml decides the CI files
    notes: tuple[str, ...]


def plan(
    root: Path, *, ci: str = "auto", action_ref: str | None = None, force: bool = False
) -> Plan:
    """Survey `root` and render the files for it (nothing is written)."""
    top = git_top(root) or root
    subdir = root.resolve().relative_to(top.resolve()).as_posix()
    subdir = "" if subdir == "." else subdir
    found = survey(root)
    pin: Pin = resolve(action_ref)
    setup = render.Setup(ci_targets(top, ci), pin, default_branch(top), subdir)
    prefix = f"{subdir}/" if subdir else ""
    kept = (root / render.CONFIG_FILE).is_file() and not force
    rollout = _kept_rollout(root) if kept else None
    stages = render.stages_of(rollout) if kept else render.stages_of_guess(found.rollout)
    files = [
        render.Planned(
            prefix + render.CONFIG_FILE,
            render.config_text(found),
            "the checks: " + (", ".join(render.builtin_sets(found)) or "syntax only"),
        ),
        render.Planned(render.GITIGNORE, render.gitignore_block(), "ignores .cd-checks/"),
    ]
    yamllint = render.yamllint_config(found)
    if yamllint is not None and not kept:
        files.append(
            render.Planned(prefix + render.YAMLLINT, yamllint, "yamllint's defaults, bent to fit")
        )
    notes = list(found.notes)
    files += _github(setup, stages, notes)
    files += _gitlab(setup, stages, notes)
    files += _pre_commit(setup, found, notes)
    if not pin.is_sha:
        notes.append(
            f"the CI files use the tag {pin.ref}: pin it to its commit SHA "
            f"(git ls-remote https://github.com/{render.GITHUB_REPOSITORY} {pin.tag}), "
            "or pass --action-ref SHA"
        )
    return Plan(top, root, found, setup, tuple(files), kept, tuple(notes))


def _kept_rollout(root: Path) -> dict[str, object] | None:
    return config_module.load(root).section("rollout") or None


def _github(
    setup: render.Setup, stages: tuple[render.Stage, ...], notes: list[str]
) -> list[render.Planned]:
    if "github" not in setup.ci:
        return []
    files = [
        render.Planned(
            render.GITHUB_VALIDATE,
            render.github_validate(setup, with_plan=bool(stages)),
            'pull request checks: the required check "cd-checks / validate", '
            "SARIF to code scanning",
        )
    ]
    if stages:
        arrows = " -> ".join(s.name for s in stages)
        files.append(
            render.Planned(
                render.GITHUB_DEPLOY, render.github_deploy(setup, stages), f"deploys {arrows}"
            )
        )
    else:
        notes.append("no deploy workflow: cd-checks.yml has no rollout section yet")
    return files


def _gitlab(
    setup: render.Setup, stages: tuple[render.Stage, ...], notes: list[str]
) -> list[render.Planned]:
    if "gitlab" not in setup.ci:
        return []
    if setup.subdir:
        notes.append(
            f"no .gitlab-ci.yml: the GitLab components check the repository's top, "
            f"and cd-checks.yml is in {setup.subdir}/"
        )
        return []
    if stages and not render.gitlab_fits(stages):
        notes.append(
            "GitLab deploys: the deploy component runs a staging, a canary and a "
            "production stage; these stages differ, so .gitlab-ci.yml only validates"
        )
    deploys = bool(stages) and render.gitlab_fits(stages)
    what = "merge request checks" + (" and deploys" if deploys else "")
    return [render.Planned(render.GITLAB_CI, render.gitlab_ci(setup, stages), what)]


def _pre_commit(setup: render.Setup, found: Survey, notes: list[str]) -> list[render.Planned]:
    if setup.subdir:
        notes.append(
            f"no .pre-commit-config.yaml: cd-checks.yml is in {setup.subdir}/, not the top"
        )
        return []
    tests = found.policy is not None and found.policy.has_tests
    text = render.pre_commit(setup, policy_tests=tests)
    return [render.Planned(render.PRE_COMMIT, text, "checks changed files before each commit")]


# --- writing --------------------------------------------------------------------------------


def write(planned: Plan, *, force: bool = False) -> tuple[Outcome, ...]:
    """Write the planned files: absent ones, or all with `force`; .gitignore gets its entry."""
    outcomes: list[Outcome] = []
    for item in planned.files:
        target = planned.top / item.path
        if item.path == render.GITIGNORE:
            action: Action = "added" if _add_gitignore_entry(target, item.text) else "kept"
        elif target.exists() and not force:
            action = "kept"
        else:
            action = "overwrote" if target.exists() else "wrote"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(item.text, "utf-8")
        outcomes.append(Outcome(item.path, item.what, action))
    return tuple(outcomes)


_IGNORED_FORMS = {".cd-checks", ".cd-checks/", "/.cd-checks", "/.cd-checks/", "**/.cd-checks/"}


def _add_gitignore_entry(path: Path, block: str) -> bool:
    """Append the block unless a line already ignores .cd-checks/; True when added."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        text = ""
    if any(line.strip() in _IGNORED_FORMS for line in text.splitlines()):
        return False
    separator = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
    path.write_text(text + separator + block, "utf-8")
    return True


# --- git ------------------------------------------------------------------------------------


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def git_top(directory: Path) -> Path | None:
    top = _git(directory, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def default_branch(top: Path) -> str:
    """origin's default branch, else a local main/master, else init.defaultBranch, else main."""
    remote = _git(top, "symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
    if remote and "/" in remote:
        return remote.split("/", 1)[1]
    for name in ("main", "master"):
        if _git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}"):
            return name
    return _git(top, "config", "init.defaultBranch") or "main"


def ci_targets(top: Path, choice: str) -> frozenset[str]:
    """--ci: github, gitlab, both, none; auto: what the repository and its origin use."""
    if choice != "auto":
        return {
            "github": frozenset({"github"}),
            "gitlab": frozenset({"gitlab"}),
            "both": frozenset({"github", "gitlab"}),
        }.get(choice, frozenset())
    found: set[str] = set()
    remote = (_git(top, "config", "--get", "remote.origin.url") or "").lower()
    if (top / ".github").is_dir() or "github" in remote:
        found.add("github")
    if (top / ".gitlab-ci.yml").is_file() or "gitlab" in remote:
        found.add("gitlab")
    return frozenset(found or {"github", "gitlab"})
