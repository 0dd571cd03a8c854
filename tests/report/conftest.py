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


@pytest.fixture
def excepted_report() -> Report:
    """A conftest-style run: a failure and an applied exception in one file, a warning and
    an exception of a nested namespace in another, standard input, and a clean file."""
    query = 'data.main.exception[_][_] == "run_as_root"'
    return Report.build(
        [
            Finding(
                "k8s/deployments.yaml",
                None,
                None,
                "policy",
                "main.deny_run_as_root",
                "error",
                "Containers must not run as root in Deployment web",
            ),
            Finding(
                "k8s/deployments.yaml",
                None,
                None,
                "policy",
                "main.deny_run_as_root",
                "exception",
                query,
            ),
            Finding(
                "k8s/service.yaml",
                4,
                3,
                "policy",
                "main.gke.warn_ports",
                "warning",
                "port 80 & <443>",
            ),
            Finding(
                "k8s/service.yaml",
                None,
                None,
                "policy",
                "main.gke.deny",
                "exception",
                'data.main.gke.exception[_][_] == ""',
            ),
            Finding("-", 2, 1, "syntax", "yaml", "error", "mapping values are not allowed here"),
        ],
        files=4,
        paths=("k8s/deployments.yaml", "k8s/service.yaml", "k8s/clean.yaml", "-"),
    )
