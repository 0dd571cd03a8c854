"""The one user-facing exception type and its kinds.

A `CdChecksError` is a user error: the CLI prints it as one line,
`cd-checks: error: <message>`, and exits 2. Raise it `from` the library
error it replaces so `--traceback` can still show the cause.
"""

from __future__ import annotations


class CdChecksError(Exception):
    """A user error: bad option, bad config, unreadable input, missing tool."""

    exit_code = 2


class ConfigError(CdChecksError):
    """cd-checks.yml (or another config file) is missing, unparsable or invalid.

    `at`: where in the rollout section the mistake is, as keys below `rollout`
    (("health", "metrics", "checks", 0)), so `validate` can point at its line."""

    def __init__(self, message: str, *, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.at = at


class InputError(CdChecksError):
    """A file or directory named by the user cannot be used."""


class PolicyError(CdChecksError):
    """A Rego policy cannot be loaded or compiled, or an engine is missing."""


class ToolError(CdChecksError):
    """An external tool (git, conftest, ansible-playbook, sshd, nginx) is missing or failed."""


class RolloutError(CdChecksError):
    """A rollout cannot start: lock held, interrupted run, unknown stage, ..."""


class AuditError(CdChecksError):
    """The audit trail cannot be read or written."""
