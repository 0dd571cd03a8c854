"""Applied conftest exceptions in `cd-checks validate`, end to end (conftest's acceptance
"Exceptions output" and "Suppress exceptions output"): the EXCP line in conftest's
words, the count in the summary, and --suppress-exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cli.test_conftest_flags import DEPLOYMENT, lines
from tests.conftest import Run, write_tree

Cli = Callable[..., Run]

EXCEPTIONS = {
    "policy/policy.rego": """package main

deny_run_as_root contains msg if {
\tinput.kind == "Deployment"
\tnot input.spec.template.spec.securityContext.runAsNonRoot
\tmsg := sprintf("Containers must not run as root in Deployment %s", [input.metadata.name])
}
""",
    "policy/exception.rego": """package main

exception contains rules if {
\tinput.kind == "Deployment"
\tinput.metadata.name == "can-run-as-root"
\trules := ["run_as_root"]
}
""",
    "deployments.yaml": DEPLOYMENT.replace("hello-kubernetes", "cannot-run-as-root")
    + DEPLOYMENT.replace("hello-kubernetes", "can-run-as-root"),
}


def test_exceptions_are_shown_and_counted(cli: Cli, tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "exceptions", EXCEPTIONS)
    run = cli("-C", repo, "validate", "--no-cache", "--no-color", "deployments.yaml")
    assert run.code == 1, run.err
    assert lines(run) == [
        "deployments.yaml  error    policy/main.deny_run_as_root  "
        "Containers must not run as root in Deployment cannot-run-as-root",
        'EXCP - deployments.yaml - main - data.main.exception[_][_] == "run_as_root"',
        "",
        "1 error, 1 exception in 1 file",
    ]


def test_suppress_exceptions_hides_the_lines_keeps_the_count(cli: Cli, tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "exceptions", EXCEPTIONS)
    run = cli("-C", repo, "validate", "--no-cache", "--suppress-exceptions", "deployments.yaml")
    assert run.code == 1
    assert lines(run)[1:] == ["", "1 error, 1 exception in 1 file"]
    document = json.loads(
        cli("-C", repo, "validate", "--no-cache", "-o", "json", "deployments.yaml").out
    )
    assert document[0]["exceptions"] == [{"msg": 'data.main.exception[_][_] == "run_as_root"'}]


def test_cd_checks_exceptions_file_waivers_are_shown_like_conftests(
    cli: Cli, tmp_path: Path
) -> None:
    """An entry of .cd-checks-exceptions.yml that covers a finding is visible too: an EXCP
    line with the reason and expiry, counted, failing nothing; --suppress-exceptions hides it."""
    nginx = "server {\n    listen 8080;\n    server_tokens on;\n}\n"
    repo = write_tree(
        tmp_path / "waivers",
        {
            "cd-checks.yml": "---\npolicy: {builtin: [nginx]}\n",
            "nginx/sites/legacy.conf": nginx,
            ".cd-checks-exceptions.yml": (
                "---\nexceptions:\n"
                "  - rule: NGINX-001\n    paths: [nginx/sites/legacy.conf]\n"
                "    reason: vendor appliance, OPS-1\n    expires: 2099-01-01\n"
            ),
        },
    )
    run = cli("-C", repo, "validate", "--no-cache", "--format", "json")
    document = json.loads(run.out)
    assert run.code == 0, run.out
    assert document["summary"]["exceptions"] == 1
    (record,) = document["exceptions"]
    assert (record["path"], record["line"], record["rule"], record["severity"]) == (
        "nginx/sites/legacy.conf",
        3,
        "NGINX-001",
        "exception",
    )
    assert record["message"].endswith(
        "(excepted until 2099-01-01 by .cd-checks-exceptions.yml:3: vendor appliance, OPS-1)"
    )
    text = cli("-C", repo, "validate", "--no-cache")
    assert [line for line in lines(text) if line.startswith("EXCP")] == [
        f"EXCP - nginx/sites/legacy.conf - policy - {record['message']}"
    ]
    quiet = cli("-C", repo, "validate", "--no-cache", "--suppress-exceptions")
    assert not [line for line in lines(quiet) if line.startswith("EXCP")]
    assert lines(quiet)[-1].endswith(", 1 exception in 3 files")
