"""Which of the caller's environment variables reach the code a rollout runs.

A rollout runs code of the repository (the playbook or deploy command, the
testinfra health tests, a dynamic inventory) with the environment of the job
that started it. That job also holds credentials the deployed code has no
business reading: cd-checks' own (`CD_CHECKS_AUDIT_KEY` signs the audit
trail, `CD_CHECKS_CACHE_KEY`, `CD_CHECKS_GITLAB_TOKEN`) and the CI system's
(`GITHUB_TOKEN`, `ACTIONS_RUNTIME_TOKEN`, `CI_JOB_TOKEN`, `CI_REPOSITORY_URL`,
which carries the job token). So every child of a rollout gets the environment
without them, and without anything named like a credential; the config's
`rollout.pass_env` names the ones a deploy does need (cloud credentials for a
dynamic inventory, a vault password), as GitHub Actions and tox pass only what
is asked for. Ansible's own settings (`ANSIBLE_*`, e.g.
`ANSIBLE_VAULT_PASSWORD_FILE`) and the ssh agent (`SSH_AUTH_SOCK`) pass.
Pure: this module is handed the environment and reads nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

# Always withheld unless named in rollout.pass_env, whatever their names say.
WITHHELD_NAMES = frozenset(
    {
        "CD_CHECKS_AUDIT_KEY",
        "CD_CHECKS_CACHE_KEY",
        "CD_CHECKS_GITLAB_TOKEN",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "CI_JOB_TOKEN",
        "CI_JOB_JWT",
        "CI_JOB_JWT_V1",
        "CI_JOB_JWT_V2",
        "CI_REPOSITORY_URL",  # https://gitlab-ci-token:<CI_JOB_TOKEN>@...
        "CI_REGISTRY_PASSWORD",
        "CI_DEPENDENCY_PROXY_PASSWORD",
        "CI_DEPLOY_PASSWORD",
        "DOCKER_AUTH_CONFIG",
    }
)
# A name containing one of these (upper-cased) is taken for a credential.
WITHHELD_PARTS = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "PRIVATE_KEY",
    "APIKEY",
    "API_KEY",
    "JWT",
)
WITHHELD_SUFFIXES = ("_KEY",)
# Ansible's own settings name files and options of the applier, not credentials.
PASSED_PREFIXES = ("ANSIBLE_",)


def is_secret(name: str) -> bool:
    """Whether `name` is withheld from a rollout's children unless `pass_env` names it."""
    upper = name.upper()
    if upper in WITHHELD_NAMES:
        return True
    if upper.startswith(PASSED_PREFIXES):
        return False
    return any(part in upper for part in WITHHELD_PARTS) or upper.endswith(WITHHELD_SUFFIXES)


def scrub(
    env: Mapping[str, str], pass_env: Collection[str] = ()
) -> tuple[dict[str, str], tuple[str, ...]]:
    """`env` without its secrets (those in `pass_env` kept), and the names withheld, sorted."""
    kept = {k: v for k, v in env.items() if k in pass_env or not is_secret(k)}
    return kept, tuple(sorted(k for k in env if k not in kept))
