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
