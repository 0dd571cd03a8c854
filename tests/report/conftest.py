"""Fixtures for the report format tests: one fixed report with a few findings."""

from __future__ import annotations

import pytest

from cd_checks.findings import Finding, Report


@pytest.fixture
def report() -> Report:
    """Errors and warnings in three files; one finding with no line, one with a
    comma, colon, percent sign and newline in its message (escaping cases)."""
    return Report.build(
        [
            Finding(
                "roles/web/tasks/main.yml",
                12,
                3,
                "syntax",
                "yaml",
                "error",
                "mapping values are not allowed here",
            ),
            Finding(
                "roles/web/tasks/main.yml",
                30,
                None,
                "schema",
                "required",
                "warning",
                "'name' is a required property",
            ),
            Finding(
                "nginx/site.conf",
                None,
                None,
                "policy",
                "server_tokens",
                "error",
                "server_tokens must be off, got: on (100% of servers)\nsee policies/nginx.rego",
            ),
            Finding(
                "cd-checks.yml",
                4,
                7,
                "policy",
                "canary_size",
                "warning",
                'canary "size" is 20%, above the 10% limit',
            ),
        ],
        files=12,
    )


@pytest.fixture
def empty_report() -> Report:
    return Report.build([], files=12)
