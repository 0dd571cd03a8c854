"""`cd-checks validate --trace` and `--show-builtin-errors`, end to end (conftest's
acceptance "Test command has trace flag"): the trace comes first, then the report;
the exit code is the run's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.cli.test_conftest_flags import KUBERNETES, SERVICE, lines
from tests.conftest import Run, write_tree

Cli = Callable[..., Run]


def test_trace_shows_each_query_then_the_report(cli: Cli, tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "repo", {"policy/k.rego": KUBERNETES, "service.yaml": SERVICE})
    run = cli("-C", repo, "validate", "--trace", "service.yaml")
    assert run.code == 0, run.err
    out = lines(run)
    assert "file: service.yaml | query: data.main.warn" in out
    assert out[-3:] == [
        "service.yaml  warning  policy/main.warn  "
        "Found service hello-kubernetes but services are not allowed",
        "",
        "1 warning in 1 file",
    ]


def test_show_builtin_errors_reports_a_failing_builtin(cli: Cli, tmp_path: Path) -> None:
    policy = 'package main\n\ndeny contains "never" if to_number(input.port) > 1\n'
    repo = write_tree(tmp_path / "repo", {"policy/p.rego": policy, "a.yaml": "---\nport: x\n"})
    quiet = cli("-C", repo, "validate", "--no-cache", "a.yaml")
    assert (quiet.code, lines(quiet)[-1]) == (0, "no problems in 1 file")
    shown = cli("-C", repo, "validate", "--no-cache", "--show-builtin-errors", "a.yaml")
    assert shown.code == 1
    assert lines(shown)[0].startswith("a.yaml  error    policy/main.deny  rule main.deny failed")
