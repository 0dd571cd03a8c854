"""conftest's acceptance.bats (and tests/*/test.bats) cases, translated to cd-checks.

Each test names the bats case it stands for. The flags are conftest's (`-p`, `-d`,
`--parser`, `--namespace`, ...), mapped only where cd-checks deliberately differs (see the
README, "Coming from conftest"): conftest's `-o FORMAT` is `--format FORMAT` (`-o` names
the report file in cd-checks), `--fail-on-warn` is `--fail-on warning`, and a usage error
such as a missing policy directory exits 2, not 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_tree
from tests.conftest_parity.parity import (
    cd_checks,
    messages,
)

Capsys = pytest.CaptureFixture[str]
SERVICE_WARNING = "Found service hello-kubernetes but services are not allowed"


# -- files and the command line ----------------------------------------------------------


def test_the_old_partial_set_form_is_refused(repo_dir: Path, capsys: Capsys) -> None:
    # tests/problematic-if: "Error is raised when if is used without contains".
    write_tree(
        repo_dir,
        {
            "policy/main.rego": 'package main\n\ndeny[msg] if {\n\tmsg := "foo"\n}\n',
            "data.json": "{}\n",
        },
    )
    run = cd_checks(capsys, "validate", "data.json")
    assert run.code == 2, run.out + run.err
    assert run.err.startswith("cd-checks: error: ") and "contains" in run.err


def test_a_builtin_error_loses_no_other_finding(repo_dir: Path, capsys: Capsys) -> None:
    # examples/builtin-errors, and issue 13 defect 6: one failing builtin never aborts
    # the run; every other rule's finding is still reported.
    policy = (
        "package main\n\n"
        'deny_dns contains "testing DNS resolution" if net.lookup_ip_addr("not-real-domainxyz")\n\n'
        'deny contains "real finding" if input.kind == "Deployment"\n'
    )
    write_tree(repo_dir, {"policy/main.rego": policy, "d.json": '{"kind": "Deployment"}\n'})
    run = cd_checks(capsys, "validate", "d.json", "--format", "json")
    assert run.code == 1, run.out + run.err
    assert "real finding" in messages(run)
