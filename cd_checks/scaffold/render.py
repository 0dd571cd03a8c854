"""The files `cd-checks init` writes, as text: pure functions of a survey and the user's choices.

`cd-checks.yml` is written from the survey (the builtin policy sets and the
globs that fit the repository's files, its schemas and policies, a rollout
when its inventory and playbook make one obvious); the CI files come from the
templates shipped in `templates/` and follow the repository's rollout stages.
Everything written passes yamllint's default rules (lines of at most 80
characters, `---`, indented sequences), actionlint, zizmor and the GitHub and
GitLab schemas: a line that cannot be shorter (a pinned `uses:`) carries a
yamllint directive. This module reads only its templates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cd_checks.builtin_policies import BUILTIN_SETS
from cd_checks.scaffold.pin import Pin
from cd_checks.scaffold.survey import RolloutGuess, Survey, default_globs, derive_globs, globs_for

MAX_LINE = 80
GITHUB_REPOSITORY = "cd-checks/cd-checks"
GITLAB_COMPONENTS = "$CI_SERVER_FQDN/cd-checks/cd-checks"
PRE_COMMIT_REPO = "https://github.com/cd-checks/cd-checks"
# Third-party actions, pinned by commit SHA (zizmor) to releases on the node24
# runtime (actionlint flags node20 ones); the same pins as examples/ci/github.
CHECKOUT = ("08c6903cd8c0fde910a37f88322edcfb5dd907a8", "v5.0.0")
UPLOAD_SARIF = ("9e907b5e64f6b83e7804b09294d44122997950d6", "v4.32.3")
SARIF_FILE = "cd-checks.sarif"
CONFIG_FILE = "cd-checks.yml"
GITHUB_VALIDATE = ".github/workflows/cd-checks.yml"
GITHUB_DEPLOY = ".github/workflows/deploy.yml"
GITLAB_CI = ".gitlab-ci.yml"
PRE_COMMIT = ".pre-commit-config.yaml"
GITIGNORE = ".gitignore"
YAMLLINT = ".yamllint"
GITIGNORE_ENTRY = ".cd-checks/"
_TOKEN = re.compile(r"@([A-Z_]+)@")
LINE_LENGTH_DIRECTIVE = "# yamllint disable-line rule:line-length"


@dataclass(frozen=True)
class Setup:
    """What the user chose and what the repository's git says."""

    ci: frozenset[str]  # "github", "gitlab"
    pin: Pin
    branch: str  # the default branch deploys run from
    subdir: str = ""  # the config's directory relative to the git top ("" at the top)


@dataclass(frozen=True)
class Stage:
    """A rollout stage as the CI files need it."""

    name: str
    environment: str  # whose hosts it changes (the concurrency / resource group)
    canary: bool


@dataclass(frozen=True)
class Planned:
    """One file to write: its path from the top of the git work tree, its text, what it is."""

    path: str
    text: str
    what: str


# --- templates ------------------------------------------------------------------------------


def template(name: str) -> str:
    return resources.files("cd_checks.scaffold.templates").joinpath(name).read_text("utf-8")


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace @TOKEN@s. A token alone on its line is a block: indented like the token,
    one line per line of its value, and the line goes away when the value is empty."""
    out: list[str] = []
    for line in text.splitlines():
        alone = _TOKEN.fullmatch(line.strip())
        if alone is not None:
            indent = line[: len(line) - len(line.lstrip())]
            block = values[alone.group(1)]
            out += [indent + part if part else "" for part in block.splitlines()]
            continue
        out.append(_TOKEN.sub(lambda m: values[m.group(1)], line))
    return yamllint_clean("\n".join(out).rstrip("\n") + "\n")


def yamllint_clean(text: str) -> str:
    """Put a yamllint directive above each line longer than 80 characters (pinned refs)."""
    out: list[str] = []
    for line in text.splitlines():
        if len(line) > MAX_LINE and not (out and out[-1].strip() == LINE_LENGTH_DIRECTIVE):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + LINE_LENGTH_DIRECTIVE)
        out.append(line)
    return "\n".join(out) + "\n"


def pinned(ref: str, comment: str) -> str:
    return f"{ref}  # {comment}"


def cd_checks_ref(pin: Pin) -> str:
    """The `@…` of a cd-checks action: the SHA with its release as a comment, or the tag."""
    if pin.is_sha:
        return pinned(pin.ref, pin.tag)
    return f"{pin.ref}  # pin this to the commit SHA of the tag (zizmor: unpinned-uses)"


# --- cd-checks.yml --------------------------------------------------------------------------


def config_text(survey: Survey) -> str:
    """cd-checks.yml for the surveyed repository."""
    checked = _checked_files(survey)
    lines = [
        "---",
        '# cd-checks configuration (see the cd-checks README, "Configuration"),',
        "# written by `cd-checks init` from what this repository holds:",
        *[f"#   {line}" for line in found_lines(survey)],
        *_files_section(survey),
        *_syntax_section(survey, checked),
        *_schema_section(survey),
        *_policy_section(survey, checked),
        *(_rollout_section(survey.rollout) if survey.rollout else _rollout_hint(survey)),
    ]
    return "\n".join(lines) + "\n"


def found_lines(survey: Survey) -> list[str]:
    """What the survey found, one short line per kind (also printed by the CLI)."""
    names = {
        "nginx": ("NGINX config", "NGINX configs"),
        "monitoring": ("Prometheus rule file", "Prometheus rule files"),
        "ansible": ("Ansible playbook or tasks file", "Ansible playbooks and tasks files"),
        "patches": ("patch manifest", "patch manifests"),
        "agents": ("agent upgrade manifest", "agent upgrade manifests"),
    }
    counted = [(len(survey.kinds[k]), names[k]) for k in BUILTIN_SETS if k in survey.kinds]
    counted += [(len(survey.alertmanager), ("Alertmanager config", "Alertmanager configs"))]
    counted += [(len(survey.inventories), ("Ansible inventory", "Ansible inventories"))]
    lines = [f"{n} {one if n == 1 else many}" for n, (one, many) in counted if n]
    lines += [f"{use.files} files described by {use.schema}" for use in survey.schemas]
    if survey.policy is not None:
        lines.append(f"conftest policies in {', '.join(survey.policy.paths)}")
    if survey.rollout is not None:
        lines.append(f"a rollout: {survey.rollout.playbook} on {survey.rollout.inventory}")
    return lines or ["no NGINX, Prometheus, Ansible, schema or policy files"]


def _checked_files(survey: Survey) -> list[str]:
    skipped = set(survey.templates)
    return [p for p in survey.files if p not in skipped]


def _flow(items: Sequence[str], *, quote: bool = True) -> str:
    shown = [json.dumps(i) if quote else i for i in items]
    return "[" + ", ".join(shown) + "]"


def _list(key: str, items: Sequence[str], indent: int, *, quote: bool = True) -> list[str]:
    """`key: [a, b]` when it fits in a line, else a block sequence."""
    pad = " " * indent
    one = f"{pad}{key}: {_flow(items, quote=quote)}"
    if len(one) <= MAX_LINE:
        return [one]
    shown = [json.dumps(i) if quote else i for i in items]
    return [f"{pad}{key}:", *[f"{pad}  - {item}" for item in shown]]


def _files_section(survey: Survey) -> list[str]:
    own = [f"{d}/**" for d in survey.other_roots]
    templates = list(derive_globs(survey.templates, survey.files)) if survey.templates else []
    if not own and not templates:
        return []
    lines = ["files:", "  exclude:"]
    lines += [f"    - {json.dumps(g)}  # has a cd-checks.yml of its own" for g in own]
    lines += [f"    - {json.dumps(g)}  # templates, not YAML" for g in templates]
    return lines


def _syntax_section(survey: Survey, checked: list[str]) -> list[str]:
    nginx = survey.kinds.get("nginx", ())
    globs = globs_for(nginx, checked, default_globs("nginx")) if nginx else None
    if globs is None:
        return []
    return ["syntax:", "  # the files that are NGINX configs", *_list("nginx", globs, 2)]


def _schema_section(survey: Survey) -> list[str]:
    if not survey.schemas:
        return []
    lines = ["schema:"]
    for use in survey.schemas:
        files = use.globs[0] if len(use.globs) == 1 else None
        if files is not None:
            lines.append(f"  - files: {json.dumps(files)}")
        else:
            lines += _list("  - files", use.globs, 0)
        lines.append(f"    schema: {use.schema}")
    return lines


def builtin_sets(survey: Survey) -> list[str]:
    """The shipped policy sets that fit, in the library's order."""
    wanted = set(survey.kinds) | ({"pipeline"} if survey.rollout else set())
    return [name for name in BUILTIN_SETS if name in wanted]


def _policy_section(survey: Survey, checked: list[str]) -> list[str]:
    lines: list[str] = []
    policy = survey.policy
    if policy is not None:
        lines += _list("paths", policy.paths, 2, quote=False)
        lines += _list("data", policy.data, 2, quote=False) if policy.data else []
        if policy.namespaces != ("main",):
            lines += _list("namespaces", policy.namespaces, 2, quote=False)
        lines += ["  rego_version: v0  # old-style rules (deny[msg] {...})"] * (
            policy.rego_version == "v0"
        )
    sets = builtin_sets(survey)
    if sets:
        lines += ["  # shipped policy sets (policies/README.md in cd-checks)"]
        lines += _list("builtin", sets, 2, quote=False)
    overrides = _builtin_files(survey, checked)
    if overrides:
        lines += ["  # the files each set applies to, where its default globs do not fit"]
        lines += ["  builtin_files:"]
        for name, globs in overrides.items():
            lines += _list(name, globs, 4)
    return ["policy:", *lines] if lines else []


def _builtin_files(survey: Survey, checked: list[str]) -> dict[str, tuple[str, ...]]:
    overrides: dict[str, tuple[str, ...]] = {}
    for name, found in survey.kinds.items():
        globs = globs_for(found, checked, default_globs(name))
        if globs is not None:
            overrides[name] = globs
    return overrides


def _rollout_section(guess: RolloutGuess) -> list[str]:
    lines = [
        "# Deploys: staging, then a canary of 10 % of production, then the rest",
        "# of production in two waves; every step gated on health, with automatic",
        '# rollback (README: "Rollouts").',
        "rollout:",
        f"  inventory: {guess.inventory}",
        "  apply:",
        f"    ansible: {{playbook: {guess.playbook}}}",
        "  stages:",
        f"    - {{name: staging, hosts: {guess.staging}}}",
        f"    - {{name: canary, hosts: {guess.production}, percent: 10}}",
        f'    - {{name: production, hosts: {guess.production}, waves: ["50%", "100%"]}}',
        "  health:",
    ]
    if guess.testinfra is not None:
        lines.append(f"    testinfra: {guess.testinfra}")
    else:
        lines += [
            "    # No health checks were found: add testinfra tests or HTTP probes, e.g.",
            '    # http: [{url: "http://{host}/healthz", status: 200}]',
            "    # (until then the pipeline policy set reports PIPE-003).",
        ]
    lines += [
        "    bake_seconds: 60",
        "  rollback: {automatic: true}",
        "# CI deploy jobs start from fresh checkouts: the trail (and with it the",
        "# last known-good revision) lives on a git branch pushed to origin.",
        "audit: {store: git, remote: origin}",
    ]
    return lines


def _rollout_hint(survey: Survey) -> list[str]:
    if "ansible" not in survey.kinds and not survey.inventories:
        return []
    return [
        '# To deploy with cd-checks, describe the rollout (README: "Rollouts"),',
        "# then run `cd-checks init` again for the deploy workflow:",
        "# rollout:",
        "#   inventory: inventory/hosts.ini",
        "#   apply:",
        "#     ansible: {playbook: site.yml}",
        "#   stages:",
        "#     - {name: staging, hosts: staging}",
        "#     - {name: canary, hosts: production, percent: 10}",
        '#     - {name: production, hosts: production, waves: ["50%", "100%"]}',
        "#   health:",
        '#     http: [{url: "http://{host}/healthz", status: 200}]',
        "#     bake_seconds: 60",
        "#   rollback: {automatic: true}",
        "# audit: {store: git, remote: origin}",
    ]


# --- rollout stages -------------------------------------------------------------------------


def stages_of(rollout: Mapping[str, Any] | None) -> tuple[Stage, ...]:
    """The stages of a (validated) `rollout:` section, for the deploy jobs."""
    if not rollout:
        return ()
    return tuple(
        Stage(
            name=str(s["name"]),
            environment=str(s.get("environment", s["hosts"])),
            canary="percent" in s,
        )
        for s in rollout.get("stages") or ()
    )


def stages_of_guess(guess: RolloutGuess | None) -> tuple[Stage, ...]:
    if guess is None:
        return ()
    return (
        Stage("staging", guess.staging, canary=False),
        Stage("canary", guess.production, canary=True),
        Stage("production", guess.production, canary=False),
    )


# --- CI files -------------------------------------------------------------------------------


def _working_directory(setup: Setup) -> str:
    return f"working-directory: {setup.subdir}" if setup.subdir else ""


def github_validate(setup: Setup, *, with_plan: bool) -> str:
    plan = ""
    if with_plan:
        plan = fill(
            template("github-plan-step.yml.tmpl"), {"WORKING_DIRECTORY": _working_directory(setup)}
        )
    sarif = f"{setup.subdir}/{SARIF_FILE}" if setup.subdir else SARIF_FILE
    return fill(
        template("github-validate.yml.tmpl"),
        {
            "BRANCH": setup.branch,
            "CHECKOUT": pinned(*CHECKOUT),
            "UPLOAD_SARIF": pinned(*UPLOAD_SARIF),
            "REF": cd_checks_ref(setup.pin),
            "WORKING_DIRECTORY": _working_directory(setup),
            "SARIF_FILE": sarif,
            "PLAN_STEP": plan,
        },
    )


def _job_id(stage: str) -> str:
    job = re.sub(r"[^A-Za-z0-9_-]", "-", stage)
    return job if re.match(r"[A-Za-z_]", job) else f"stage-{job}"


def github_deploy(setup: Setup, stages: Sequence[Stage]) -> str:
    jobs = [_job_id(s.name) for s in stages]
    blocks = [
        fill(
            template("github-deploy-job.yml.tmpl"),
            {
                "JOB": job,
                "STAGE": stage.name,
                "NEEDS": f"needs: {jobs[index - 1]}" if index else "",
                "ENVIRONMENT": stage.name,
                "HOSTS_ENVIRONMENT": _job_id(stage.environment),
                "CHECKOUT": pinned(*CHECKOUT),
                "REF": cd_checks_ref(setup.pin),
                "WORKING_DIRECTORY": _working_directory(setup),
            },
        )
        for index, (job, stage) in enumerate(zip(jobs, stages, strict=True))
    ]
    return fill(
        template("github-deploy.yml.tmpl"),
        {
            "BRANCH": setup.branch,
            "STAGE_ARROWS": " -> ".join(s.name for s in stages),
            "ENVIRONMENT_LINES": "\n".join(_environment_line(s) for s in stages),
            "JOBS": "\n".join(blocks),
            "ALL_JOBS": ", ".join(jobs),
            "CHECKOUT": pinned(*CHECKOUT),
            "REF": cd_checks_ref(setup.pin),
            "WORKING_DIRECTORY": _working_directory(setup),
        },
    )


def _environment_line(stage: Stage) -> str:
    if stage.canary:
        return f"#   {stage.name}: no reviewers (health-gated)"
    if stage.environment in ("production", "prod") or stage.name in ("production", "prod"):
        return f"#   {stage.name}: required reviewers (the job waits for one: the approval)"
    return f"#   {stage.name}: no reviewers"


def gitlab_fits(stages: Sequence[Stage]) -> bool:
    """The deploy component has three jobs: a staging, a canary and a production stage."""
    return len(stages) == 3 and [s.canary for s in stages] == [False, True, False]


def gitlab_ci(setup: Setup, stages: Sequence[Stage]) -> str:
    # Components are released by version (the catalog's `@0.2.0`); the job installs
    # that same release. Only an explicit --action-ref picks another ref.
    gitlab_ref = setup.pin.ref if setup.pin.source == "--action-ref" else setup.pin.version
    deploy = ""
    if stages and gitlab_fits(stages):
        # The component's jobs run the stages staging, canary and production by default.
        inputs = [
            f"{default}-stage: {stage.name}"
            for default, stage in zip(("staging", "canary", "production"), stages, strict=True)
            if stage.name != default
        ]
        deploy = fill(
            template("gitlab-deploy-include.yml.tmpl"),
            {
                "STAGE_INPUTS": "\n".join(inputs),
                "COMPONENT": GITLAB_COMPONENTS,
                "GITLAB_REF": gitlab_ref,
            },
        )
    return fill(
        template("gitlab-ci.yml.tmpl"),
        {
            "DEPLOY_COMMENT": template("gitlab-deploy-comment.yml.tmpl") if deploy else "",
            "STAGES": "test, deploy" if deploy else "test",
            "COMPONENT": GITLAB_COMPONENTS,
            "GITLAB_REF": gitlab_ref,
            "DEPLOY_INCLUDE": deploy,
        },
    )


def pre_commit(setup: Setup, *, policy_tests: bool) -> str:
    rev = pinned(setup.pin.ref, f"frozen: {setup.pin.tag}") if setup.pin.is_sha else setup.pin.ref
    return fill(
        template("pre-commit-config.yaml.tmpl"),
        {
            "PRE_COMMIT_REV": rev,
            "POLICY_TEST_HOOK": "- id: cd-checks-policy-test" if policy_tests else "",
        },
    )


def yamllint_config(survey: Survey) -> str | None:
    """A .yamllint that bends yamllint's defaults to the repository's YAML, if it must."""
    style = survey.yaml_style
    if style.line_length is None and style.indent_sequences is None:
        return None
    lines = [
        "---",
        "# yamllint config written by `cd-checks init`: yamllint's defaults, bent",
        "# to fit this repository's YAML as it was then. Tighten it over time.",
        "extends: default",
        "rules:",
    ]
    if style.line_length is not None:
        lines.append(f"  line-length: {{max: {style.line_length}}}  # the longest line then")
    if style.indent_sequences is not None:
        lines.append(f"  indentation: {{indent-sequences: {style.indent_sequences}}}")
    return "\n".join(lines) + "\n"


def gitignore_block() -> str:
    return template("gitignore.tmpl")
