"""The registry of builtin Rego policy sets shipped in `policies/`.

One explicit entry per set: its Rego package, the files it applies to by
default (gitwildmatch globs against repo-relative paths, overridable with
`policy.builtin_files`), its cross-file package for `--combine`, and the JSON
schema it ships for its manifest format. This module only names things; it
does not load, evaluate or match anything (it reads the rule ids out of the
shipped Rego, which is where a rule gets its id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cd_checks.config import DEFAULT_NGINX_GLOBS

# A rule's id is the first argument of its `finding(...)` call (policies/README.md).
RULE_ID = re.compile(r'\bfinding\("([A-Z]+-[0-9]{3})"')


@dataclass(frozen=True)
class BuiltinSet:
    """One shipped policy set: `policies/<name>/<name>.rego`, package `cd_checks.<name>`."""

    name: str
    package: str
    files: tuple[str, ...]
    combined_package: str | None = None
    schema: str | None = None  # path inside the set's directory
    # Files the set reads only when they hold a playbook (a list with a play), the way
    # ansible-lint tells a play from other YAML: a root `deploy.yml` is read, a root
    # docker-compose.yml is not. Replaced, like `files`, by `policy.builtin_files`.
    playbook_files: tuple[str, ...] = ()


BUILTIN_SETS: dict[str, BuiltinSet] = {
    "nginx": BuiltinSet(
        name="nginx",
        package="cd_checks.nginx",
        # The files read as NGINX by default: nginx.conf anywhere, .conf under nginx/,
        # conf.d/, sites-available/, sites-enabled/, snippets/; no templates.
        files=DEFAULT_NGINX_GLOBS,
    ),
    "monitoring": BuiltinSet(
        name="monitoring",
        package="cd_checks.monitoring",
        # Rule directories and rule file names (kube-prometheus, mixins, node_exporter,
        # dockprom), and PrometheusRule manifests. A `.rules` file only where its name
        # or place says Prometheus: udev, polkit and audit `.rules` files are no YAML.
        # Other YAML these match (a CRD, prometheus.yml) has no rule groups: passed over.
        files=(
            "**/rules/**/*.yml",
            "**/rules/**/*.yaml",
            "**/alerts/**/*.yml",
            "**/alerts/**/*.yaml",
            "**/*.rules.yml",
            "**/*.rules.yaml",
            "**/*_rules.yml",
            "**/*_rules.yaml",
            "**/*-rules.yml",
            "**/*-rules.yaml",
            "**/*_alerts.yml",
            "**/*_alerts.yaml",
            "**/*-alerts.yml",
            "**/*-alerts.yaml",
            "**/prometheus/**/*rules*.yml",
            "**/prometheus/**/*rules*.yaml",
            "**/prometheus/**/*alerts*.yml",
            "**/prometheus/**/*alerts*.yaml",
            "**/prometheus/**/*.rules",
            "**/*alert*.rules",
            "**/*record*.rules",
            "**/*prometheusRule.yaml",
            "**/*prometheusRule.yml",
            "**/*PrometheusRule.yaml",
            "**/*PrometheusRule.yml",
        ),
        combined_package="cd_checks.monitoring.combined",
    ),
    "patches": BuiltinSet(
        name="patches",
        package="cd_checks.patches",
        files=("patches/**/*.yml", "patches/**/*.yaml"),
        schema="schema.json",
    ),
    "agents": BuiltinSet(
        name="agents",
        package="cd_checks.agents",
        files=("agents/**/*.yml", "agents/**/*.yaml"),
        schema="schema.json",
    ),
    "ansible": BuiltinSet(
        name="ansible",
        package="cd_checks.ansible",
        # Where Ansible reads tasks and variables: a role's tasks/ handlers/ defaults/
        # vars/ meta/ (a Galaxy role at the root, or under any roles/), inventory
        # group_vars/ and host_vars/ (files without an extension too), playbooks/.
        # Not templates/ (Jinja) nor files/ (copied as they are).
        files=(
            "**/tasks/**/*.yml",
            "**/tasks/**/*.yaml",
            "**/handlers/**/*.yml",
            "**/handlers/**/*.yaml",
            "**/defaults/**/*.yml",
            "**/defaults/**/*.yaml",
            "**/vars/**/*.yml",
            "**/vars/**/*.yaml",
            "**/meta/main.yml",
            "**/meta/main.yaml",
            "**/group_vars/**",
            "**/host_vars/**",
            "**/playbooks/**/*.yml",
            "**/playbooks/**/*.yaml",
            "**/site.yml",
            "**/site.yaml",
        ),
        playbook_files=("**/*.yml", "**/*.yaml"),
    ),
    "pipeline": BuiltinSet(
        name="pipeline",
        package="cd_checks.pipeline",
        files=("/cd-checks.yml",),  # the root config only
    ),
    "terraform": BuiltinSet(
        name="terraform",
        package="cd_checks.terraform",
        # Plans written by `terraform show -json PLAN > tfplan.json`, under the names the
        # Terraform docs and CI examples use; other JSON these match has no resource_changes.
        files=("**/tfplan.json", "**/*.tfplan.json", "**/plan.json", "**/*.plan.json"),
    ),
}


def policies_dir() -> Path:
    """The shipped `policies/` directory: inside the installed package, else the repo's top."""
    packaged = resources.files("cd_checks") / "policies"
    if isinstance(packaged, Path) and (packaged / "nginx").is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "policies"


def rule_ids() -> dict[str, str]:
    """Every rule id of the shipped sets, and its set: read from the Rego sources,
    so that a new rule is known to `policy.rules` without a second list to keep."""
    ids: dict[str, str] = {}
    for name in BUILTIN_SETS:
        for source in sorted((policies_dir() / name).glob("*.rego")):
            if not source.name.endswith("_test.rego"):
                ids.update(dict.fromkeys(RULE_ID.findall(source.read_text("utf-8")), name))
    return ids


def config_schema_path() -> Path:
    """The JSON schema of `policy.builtin_data` (each set's settings), to validate once up front."""
    return policies_dir() / "config.schema.json"


def schema_path(set_name: str) -> Path | None:
    """The JSON schema a set ships for its manifest files, or None (KeyError for unknown sets)."""
    known = BUILTIN_SETS[set_name]
    if known.schema is None:
        return None
    return policies_dir() / known.name / known.schema
