"""Policy evaluation is bounded (issue 9, items 5 and 7): a rule that crashes the engine,
runs out of memory or time, or asks for the network is a finding naming the rule and
its file; the other rules and files still run, and the run never crashes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cd_checks.errors import PolicyError
from cd_checks.rego import PolicySource, open_engine, sandbox
from tests.conftest import Run

Cli = Callable[..., Run]
Repo = Callable[..., Path]

HEADER = 'package main\n\nwarn contains "still evaluated" if true\n\n'
RECURSION = """f(x) := y if { y := g(x) }
g(x) := y if { y := f(x) }

deny contains "never" if {
\tinput.recurse
\tf(1)
}
"""
HUGE = """deny contains "never" if {
\tinput.huge
\tcount([x | some x in numbers.range(1, 1000000000)]) > 0
}
"""
SLOW = """deny contains "never" if {
\tinput.slow
\tsome i in numbers.range(1, 100000)
\tsome j in numbers.range(1, 100000)
\ti == j + 1000000
}
"""
NETWORK = """deny contains "down" if {
\tinput.url
\tresponse := http.send({"method": "get", "url": input.url})
\tresponse.status_code != 200
}

deny_dns contains "unknown host" if {
\tinput.host
\tcount(net.lookup_ip_addr(input.host)) == 0
}
"""


def findings(run: Run) -> list[dict[str, object]]:
    return list(json.loads(run.out)["findings"])


def by_path(run: Run) -> dict[str, set[tuple[object, object]]]:
    grouped: dict[str, set[tuple[object, object]]] = {}
    for f in findings(run):
        grouped.setdefault(str(f["path"]), set()).add((f["rule"], f["message"]))
    return grouped


def validate(cli: Cli, root: Path, *args: str) -> Run:
    run = cli("-C", root, "validate", "--format", "json", "--no-cache", *args)
    assert "Traceback" not in run.err
    return run


def test_mutual_recursion_is_a_finding_not_a_segfault(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "policy/p.rego": HEADER + RECURSION,
            "a.yml": "---\nrecurse: true\n",
            "b.yml": "---\nrecurse: true\n",
            "c.yml": "---\nother: true\n",
        }
    )
    run = validate(cli, root)
    assert run.code == 1, run.err  # was 139, no message
    rule = f"{root / 'policy/p.rego'}:8"
    crashed = "crashed the Rego engine (SIGSEGV: most likely unbounded recursion)"
    assert by_path(run) == {
        "a.yml": {
            ("main.deny", f"rule main.deny failed to evaluate: {rule}: {crashed}"),
            ("main.warn", "still evaluated"),
        },
        # Not run again (each try would cost a crash): said so on every later file.
        "b.yml": {
            (
                "main.deny",
                f"rule main.deny failed to evaluate: {rule}: not evaluated: it {crashed} "
                "on an earlier document",
            ),
            ("main.warn", "still evaluated"),
        },
        "c.yml": {
            (
                "main.deny",
                f"rule main.deny failed to evaluate: {rule}: not evaluated: it {crashed} "
                "on an earlier document",
            ),
            ("main.warn", "still evaluated"),
        },
    }


def test_a_huge_comprehension_hits_the_memory_limit(cli: Cli, repo: Repo) -> None:
    root = repo({"policy/p.rego": HEADER + HUGE, "a.yml": "---\nhuge: true\n"})
    started = time.perf_counter()
    run = validate(cli, root)
    assert time.perf_counter() - started < 60
    assert run.code == 1, run.err
    assert by_path(run)["a.yml"] == {
        (
            "main.deny",
            f"rule main.deny failed to evaluate: {root / 'policy/p.rego'}:5: "
            f"needed more than {sandbox.MEMORY // 2**20:,} MB of memory (the limit)",
        ),
        ("main.warn", "still evaluated"),
    }


def test_an_endless_rule_hits_the_time_limit(
    cli: Cli, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "TIMEOUT", 1.0)
    root = repo(
        {
            "policy/p.rego": HEADER + SLOW,
            "a.yml": "---\nslow: true\n",
            "b.yml": "---\nslow: true\n",
        }
    )
    started = time.perf_counter()
    run = validate(cli, root)
    # One timeout, not one per file.
    assert time.perf_counter() - started < 10
    assert run.code == 1, run.err
    rule = f"{root / 'policy/p.rego'}:5"
    assert (
        "main.deny",
        f"rule main.deny failed to evaluate: {rule}: took longer than 1 s "
        "(the limit) and was stopped",
    ) in by_path(run)["a.yml"]
    assert ("main.warn", "still evaluated") in by_path(run)["b.yml"]


@pytest.mark.parametrize(
    ("document", "rule", "builtin", "line"),
    [
        ("url: http://127.0.0.1:9/health", "deny", "http.send", 7),
        ("host: example.com", "deny_dns", "net.lookup_ip_addr", 13),
    ],
)
def test_network_builtins_are_an_evaluation_error_never_silence(
    cli: Cli, repo: Repo, document: str, rule: str, builtin: str, line: int
) -> None:
    root = repo({"policy/p.rego": HEADER + NETWORK, "a.yml": f"---\n{document}\n"})
    run = validate(cli, root)
    assert run.code == 1, run.err  # was 0: http.send yielded nothing, the rule never fired
    messages = dict(by_path(run)["a.yml"])
    assert messages[f"main.{rule}"].startswith(
        f"rule main.{rule} failed to evaluate: {root / 'policy/p.rego'}:{line}:"
    )
    assert messages[f"main.{rule}"].endswith(
        f": uses {builtin}, which cd-checks does not evaluate (no network)"
    )
    assert messages["main.warn"] == "still evaluated"


def test_a_network_builtin_not_reached_costs_nothing(cli: Cli, repo: Repo) -> None:
    root = repo({"policy/p.rego": HEADER + NETWORK, "a.yml": "---\nname: x\n"})
    run = validate(cli, root)
    assert by_path(run) == {"a.yml": {("main.warn", "still evaluated")}}


def test_bounded_runs_in_parallel_workers_too(cli: Cli, repo: Repo) -> None:
    files = {f"f{i:03}.yml": "---\nrecurse: true\n" for i in range(60)}
    root = repo({"policy/p.rego": HEADER + RECURSION, **files})
    run = validate(cli, root, "--jobs", "2")
    assert run.code == 1, run.err
    grouped = by_path(run)
    assert len(grouped) == 60
    for path, found in grouped.items():
        rules = {rule for rule, _ in found}
        assert rules == {"main.deny", "main.warn"}, path
    crashed = [m for f in grouped.values() for r, m in f if "SIGSEGV" in str(m)]
    assert all("crashed the Rego engine" in str(m) for m in crashed)


def test_a_crash_in_a_combined_evaluation_is_a_finding(cli: Cli, repo: Repo) -> None:
    policy = HEADER.replace("if true", "if { count(input) > 0 }") + RECURSION.replace(
        "input.recurse", "some entry in input; entry.contents.recurse"
    )
    root = repo({"policy/p.rego": policy, "a.yml": "---\nrecurse: true\n"})
    run = validate(cli, root, "--combine")
    assert run.code == 1, run.err
    messages = dict(by_path(run)["."])
    assert "crashed the Rego engine (SIGSEGV" in str(messages["main.deny"])
    assert messages["main.warn"] == "still evaluated"


def test_a_rule_that_crashes_while_loading_is_stopped_not_the_run(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(HEADER + RECURSION.replace("\tinput.recurse\n", ""))
    evaluator = open_engine(PolicySource((tmp_path,)), engine="embedded")
    (outcome,) = evaluator.evaluate([{"a": 1}], namespaces=None)
    assert [r.message for r in outcome.results] == ["still evaluated"]
    (error,) = outcome.errors
    assert (error.namespace, error.rule) == ("main", "deny")
    assert error.message.endswith(
        ": not evaluated: it crashed the Rego engine (SIGSEGV: most likely unbounded "
        "recursion) while the policies were loaded"
    )


def test_a_policy_error_still_comes_from_the_child(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package main\n\ndeny contains msg if {\n  msg := \n}\n")
    with pytest.raises(PolicyError):
        open_engine(PolicySource((tmp_path,)), engine="embedded")


def test_the_child_ends_with_the_evaluator(tmp_path: Path) -> None:
    import gc

    (tmp_path / "p.rego").write_text(HEADER)
    evaluator = open_engine(PolicySource((tmp_path,)), engine="embedded")
    assert isinstance(evaluator, sandbox.BoundedEvaluator)
    process = evaluator._child.process  # type: ignore[union-attr]
    assert process.is_alive()
    del evaluator
    gc.collect()
    process.join(5)
    assert not process.is_alive()


def test_a_rego_unit_test_that_crashes_the_engine_fails_and_the_others_run(
    cli: Cli, repo: Repo
) -> None:
    root = repo(
        {
            "policy/p.rego": HEADER + RECURSION,
            "policy/p_test.rego": "package main\n\n"
            "test_quiet if { count(deny) == 0 with input as {} }\n"
            'test_recurse if { count(deny) == 1 with input as {"recurse": true} }\n'
            'test_network if { http.send({"method": "get", "url": "http://127.0.0.1:9"}) }\n'
            "test_after if { true }\n",
        }
    )
    run = cli("-C", root, "policy", "test")
    assert run.code == 1, run.err  # was 139, no message
    assert run.out.replace(f"{root}/", "").splitlines() == [
        "PASS - policy/p_test.rego:3 - main.test_quiet",
        "FAIL - policy/p_test.rego:4 - main.test_recurse: crashed the Rego engine "
        "(SIGSEGV: most likely unbounded recursion)",
        "FAIL - policy/p_test.rego:5 - main.test_network: policy/p_test.rego:5:28: uses "
        "http.send, which cd-checks does not evaluate (no network)",
        "PASS - policy/p_test.rego:6 - main.test_after",
        "",
        "4 tests, 2 passed, 2 failed",
    ]
