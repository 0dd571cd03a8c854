"""conftest's semantics on the embedded engine (issue 13): what a conftest user's policy does
in `cd-checks validate` and `cd-checks policy test`, translated from conftest's engine
(policy/engine.go), its tests/ (problematic-if, builtin-errors) and examples/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cd_checks.rego import PolicySource, open_engine
from tests.conftest import Run

Cli = Callable[..., Run]
Repo = Callable[..., Path]

DEPLOYMENT = "---\nkind: Deployment\nmetadata:\n  name: web\n"


def validate(cli: Cli, root: Path, *args: str) -> Run:
    run = cli("-C", root, "validate", "--format", "json", "--no-cache", *args)
    assert "Traceback" not in run.err
    return run


def policy_findings(run: Run) -> list[tuple[str, str, str]]:
    found = json.loads(run.out)["findings"]
    return sorted((f["path"], f["rule"], f["message"]) for f in found if f["check"] == "policy")


# -- item 1: complete-rule heads ---------------------------------------------------------


def test_violation_as_a_complete_array_rule_is_evaluated(cli: Cli, repo: Repo) -> None:
    # conftest's examples/kubernetes/policy/violation.rego writes `violation := [...] if`.
    root = repo(
        {
            "policy/violation.rego": "package main\n\n"
            'violation := [{"msg": msg, "details": {}}] if {\n'
            '\tinput.kind == "Deployment"\n'
            '\tmsg := sprintf("%s: no resource limits", [input.metadata.name])\n'
            "}\n",
            "deploy.yaml": DEPLOYMENT,
            "service.yaml": "---\nkind: Service\n",
        }
    )
    run = validate(cli, root)
    assert run.code == 1, run.err  # was 2: "rule 'violation' must be a set of messages"
    assert policy_findings(run) == [("deploy.yaml", "main.violation", "web: no resource limits")]


def test_deny_as_a_complete_array_of_strings_is_evaluated(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "policy/p.rego": 'package main\n\ndeny := ["one", "two"] if {\n\tinput.bad\n}\n',
            "a.yaml": "---\nbad: true\n",
        }
    )
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert policy_findings(run) == [("a.yaml", "main.deny", "one"), ("a.yaml", "main.deny", "two")]


def test_a_bare_boolean_deny_passes_as_in_conftest(cli: Cli, repo: Repo) -> None:
    # conftest's tests/problematic-if "Bare deny rule can be used without contains or if":
    # `deny` evaluates to true, which is not a set of messages: 1 test, 1 passed, exit 0.
    policy = "package main\n\ndeny if {\n\ttrue\n}\n"
    root = repo({"policy/p.rego": policy, "a.yaml": "---\na: 1\n"})
    run = validate(cli, root)
    assert run.code == 0, run.err  # was 2
    assert policy_findings(run) == []


def test_partial_object_deny_is_refused_with_conftests_words(cli: Cli, repo: Repo) -> None:
    # conftest's tests/problematic-if "Error is raised when if is used without contains".
    root = repo(
        {
            "policy/invalid.rego": 'package main\n\ndeny[msg] if {\n\tmsg := "foo"\n}\n',
            "a.yaml": "---\na: 1\n",
        }
    )
    run = validate(cli, root)
    assert run.code == 2
    assert "policy/invalid.rego:3: rule is using 'if' keyword without 'contains' keyword" in run.err
    assert run.err.count("\n") == 1


def test_policy_test_runs_units_of_a_complete_rule(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "policy/violation.rego": "package main\n\n"
            'violation := [{"msg": "no limits"}] if {\n\tinput.kind == "Deployment"\n}\n',
            "policy/violation_test.rego": "package main\n\n"
            "test_deployment if {\n"
            '\tcount(violation) == 1 with input as {"kind": "Deployment"}\n}\n',
        }
    )
    run = cli("-C", root, "policy", "test")
    assert run.code == 0, run.out + run.err  # was 2
    assert "1 tests, 1 passed, 0 failed" in run.out


# -- items 2 and 3: namespaces --------------------------------------------------------------

NAMESPACES = {
    "policy/main.rego": 'package main\n\ndeny contains "main" if input.a\n',
    "policy/gke.rego": 'package main.gke\n\ndeny contains "main.gke" if input.a\n',
    "policy/k8s.rego": 'package k8s\n\ndeny contains "k8s" if input.a\n',
    "a.yaml": "---\na: 1\n",
}


def test_an_unknown_namespace_passes_with_no_tests(cli: Cli, repo: Repo) -> None:
    run = validate(cli, repo(NAMESPACES), "--namespace", "nope")
    assert run.code == 0, run.err  # was 2: "namespace 'nope' is not defined by any policy"
    assert policy_findings(run) == []


def test_default_main_without_rules_passes(cli: Cli, repo: Repo) -> None:
    root = repo({"policy/k8s.rego": 'package k8s\n\ndeny contains "k8s" if input.a\n'})
    (root / "a.yaml").write_text("---\na: 1\n", "utf-8")
    run = validate(cli, root)
    assert run.code == 0, run.err  # was 2
    assert policy_findings(run) == []


@pytest.mark.parametrize(
    ("pattern", "messages"),
    [
        ("ma*", ["main", "main.gke"]),
        ("main.*", ["main.gke"]),
        ("*", ["k8s", "main", "main.gke"]),
        ("[k]8?", ["k8s"]),
        ("[^m]*", ["k8s"]),
    ],
)
def test_namespace_globs_match_as_conftests_path_match(
    cli: Cli, repo: Repo, pattern: str, messages: list[str]
) -> None:
    run = validate(cli, repo(NAMESPACES), "--namespace", pattern)
    assert run.code == 1, run.err  # was 2: the pattern was looked up as a literal name
    assert sorted(m for _, _, m in policy_findings(run)) == messages


def test_a_malformed_namespace_glob_is_one_error_line(cli: Cli, repo: Repo) -> None:
    run = validate(cli, repo(NAMESPACES), "--namespace", "[ma")
    assert run.code == 2
    assert run.err == ("cd-checks: error: namespace pattern '[ma': unterminated or empty [...]\n")


# -- item 5: engine gaps ---------------------------------------------------------------------

GAPS = """package main

warn contains "still evaluated" if input.kind

# METADATA
# title: Deployments need an owner
# custom:
#   id: OWN-1
deny contains msg if {
\tinput.kind == "Deployment"
\tnot input.metadata.labels.owner
\tmd := rego.metadata.rule()
\tmsg := sprintf("%s (%s)", [md.title, md.custom.id])
}

deny_chain contains "never" if {
\tinput.kind
\tcount(rego.metadata.chain()) > 0
}
"""


def test_rego_metadata_rule_returns_the_rules_annotations(cli: Cli, repo: Repo) -> None:
    run = validate(cli, repo({"policy/p.rego": GAPS, "d.yaml": DEPLOYMENT}))
    assert ("d.yaml", "main.deny", "Deployments need an owner (OWN-1)") in policy_findings(run)


def test_an_unsupported_builtin_fails_only_its_rule(cli: Cli, repo: Repo) -> None:
    root = repo({"policy/p.rego": GAPS, "d.yaml": DEPLOYMENT})
    run = validate(cli, root)
    assert run.code == 1, run.err  # was 2: "could not find function" aborted the run
    found = policy_findings(run)
    assert ("d.yaml", "main.warn", "still evaluated") in found
    assert ("d.yaml", "main.deny", "Deployments need an owner (OWN-1)") in found
    (chain,) = [m for _, rule, m in found if rule == "main.deny_chain"]
    assert chain == (
        f"rule main.deny_chain failed to evaluate: {root / 'policy/p.rego'}:18:30: "
        "rego.metadata.chain is an OPA builtin not supported by cd-checks' embedded engine "
        "(regorus)"
    )


def test_an_unknown_function_is_still_a_load_error(cli: Cli, repo: Repo) -> None:
    policy = 'package main\n\ndeny contains "x" if {\n\tinput.kind\n\tnot_a_builtin(1)\n}\n'
    run = validate(cli, repo({"policy/p.rego": policy, "d.yaml": DEPLOYMENT}))
    assert run.code == 2
    assert "could not find function not_a_builtin" in run.err


def test_net_lookup_ip_addr_never_resolves(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        'package main\n\ndeny contains "resolved" if {\n'
        '\tcount(net.lookup_ip_addr("localhost")) > 0\n}\n',
        "utf-8",
    )
    evaluator = open_engine(PolicySource((tmp_path,)), engine="embedded")
    (outcome,) = evaluator.evaluate([{}], namespaces=None)
    assert outcome.results == ()
    (error,) = outcome.errors
    assert error.message.endswith(
        "uses net.lookup_ip_addr, which cd-checks does not evaluate (no network)"
    )


# -- item 6: --show-builtin-errors and --trace ----------------------------------------------

BUILTIN_ERROR = """package main

deny contains "port too high" if {
\tto_number(input.port) > 65535
}

warn contains "always" if input.port
"""


@pytest.mark.parametrize("show", [False, True])
def test_builtin_errors_are_ignored_unless_shown(tmp_path: Path, show: bool) -> None:
    (tmp_path / "p.rego").write_text(BUILTIN_ERROR, "utf-8")
    evaluator = open_engine(PolicySource((tmp_path,)), engine="embedded", show_builtin_errors=show)
    (outcome,) = evaluator.evaluate([{"port": "eighty"}], namespaces=None)
    assert [r.message for r in outcome.results] == ["always"]
    if show:
        (error,) = outcome.errors
        assert (error.rule, error.message) == (
            "deny",
            f"{tmp_path / 'p.rego'}:4:20: could not parse string as number",
        )
    else:
        assert outcome.errors == ()


def test_trace_records_each_query_and_print_output(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        'package main\n\ndeny contains "bad" if {\n\tprint("kind is", input.kind)\n'
        '\tinput.kind == "Pod"\n}\n\nwarn contains "w" if false\n',
        "utf-8",
    )
    evaluator = open_engine(PolicySource((tmp_path,)), engine="embedded", trace=True)
    (outcome,) = evaluator.evaluate([{"kind": "Pod"}], namespaces=None)
    deny, warn = outcome.queries
    where = tmp_path / "p.rego"
    assert (deny.query, deny.passed) == ("data.main.deny", False)
    assert deny.lines == (
        f"Enter data.main.deny ({where}:3)",
        f'| Eval {where}:3: deny contains "bad" if {{',
        f'| Eval {where}:4: print("kind is", input.kind)',
        f'| Eval {where}:5: input.kind == "Pod"',
        '1 result: ["bad"]',
    )
    assert deny.outputs == (f"{where}:4: kind is Pod",)
    assert (warn.query, warn.passed, warn.lines[-1]) == ("data.main.warn", True, "0 results: []")
    (quiet,) = open_engine(PolicySource((tmp_path,)), engine="embedded").evaluate(
        [{"kind": "Pod"}], namespaces=None
    )
    assert quiet.queries == ()


# -- item 4: empty documents ---------------------------------------------------------------

NULL_INPUT = """package main

deny contains msg if {
\tinput == null
\tmsg := sprintf("null input in %s", [data.conftest.file.name])
}

deny contains "a list" if is_array(input)
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["null input in a.yaml"]),  # conftest: an empty file is one null input
        ("# only a comment\n", ["null input in a.yaml"]),
        ("---\nkind: A\n---\n", ["null input in a.yaml"]),  # the empty last document
        ("---\nkind: A\n", []),
    ],
)
def test_empty_documents_are_evaluated_with_input_null(
    cli: Cli, repo: Repo, text: str, expected: list[str]
) -> None:
    run = validate(cli, repo({"policy/p.rego": NULL_INPUT, "a.yaml": text}))
    assert run.code == (1 if expected else 0), run.err
    assert [m for _, _, m in policy_findings(run)] == expected


def test_a_list_document_of_a_stream_stays_one_input(cli: Cli, repo: Repo) -> None:
    # conftest splits a file's top-level list; a stream of documents is that list, so a
    # document that is itself a list is one input.
    files = {
        "policy/p.rego": NULL_INPUT,
        "stream.yaml": "---\n- a\n- b\n---\nkind: X\n",
        "list.yaml": "---\n- a\n- b\n",
    }
    run = validate(cli, repo(files))
    assert policy_findings(run) == [("stream.yaml", "main.deny", "a list")]


# -- item 7: data.conftest.file ------------------------------------------------------------


def test_data_conftest_file_names_the_file_being_checked(cli: Cli, repo: Repo) -> None:
    policy = (
        "package main\n\n"
        "deny contains msg if {\n"
        "\tinput.kind\n"
        '\tmsg := sprintf("%s checked", [data.conftest.file.name])\n'
        "}\n"
    )
    root = repo(
        {"policy/p.rego": policy, "a.yaml": "---\nkind: A\n", "sub/b.yaml": "---\nkind: B\n"}
    )
    run = validate(cli, root)
    assert policy_findings(run) == [
        ("a.yaml", "main.deny", "a.yaml checked"),
        ("sub/b.yaml", "main.deny", "b.yaml checked"),
    ]


def test_data_conftest_file_dir_is_the_absolute_directory(tmp_path: Path) -> None:
    from cd_checks.checks.policy import PolicyRunner, PolicySetup
    from cd_checks.documents import Parsed

    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "p.rego").write_text(
        "package main\n\ndeny contains data.conftest.file.dir if input.kind\n", "utf-8"
    )
    source = PolicySource((tmp_path / "policy",))
    setup = PolicySetup(source, ("main",), None, (), "embedded", False, root=tmp_path)
    runner = PolicyRunner(setup)
    (finding,) = runner.check("sub/b.yaml", Parsed("yaml", ({"kind": "B"},)))
    assert finding.message == str(tmp_path / "sub")


def test_a_users_own_data_conftest_file_wins(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        "package main\n\ndeny contains data.conftest.file.name if input.kind\n", "utf-8"
    )
    source = PolicySource((tmp_path,), extra_data={"conftest": {"file": {"name": "mine"}}})
    evaluator = open_engine(source, engine="embedded")
    (outcome,) = evaluator.evaluate([{"kind": "A"}], namespaces=None)
    assert [r.message for r in outcome.results] == ["mine"]


def test_a_dockerfile_is_one_input_its_command_list(cli: Cli, repo: Repo) -> None:
    # conftest's docker parser wraps the commands in one more list: policies see them whole
    # (examples/docker/policy: `input[i].Cmd == "from"`).
    policy = (
        "package main\n\n"
        "deny contains msg if {\n"
        '\tsome i\n\tinput[i].Cmd == "from"\n'
        '\tmsg := sprintf("%d commands, FROM %s", [count(input), input[i].Value[0]])\n'
        "}\n"
    )
    root = repo({"policy/p.rego": policy, "Dockerfile": "FROM alpine:3\nRUN true\n"})
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert policy_findings(run) == [("Dockerfile", "main.deny", "2 commands, FROM alpine:3")]


def test_a_builtin_error_in_one_body_keeps_the_other_bodies_results(tmp_path: Path) -> None:
    # OPA leaves only the failing body undefined: the other `deny` definitions still fire.
    (tmp_path / "p.rego").write_text(
        "package main\n\n"
        'deny contains "port too high" if to_number(input.port) > 65535\n\n'
        'deny contains "no owner" if not input.owner\n\n'
        'deny contains "no team" if not input.team\n',
        "utf-8",
    )
    evaluator = open_engine(PolicySource((tmp_path,)), engine="embedded")
    (outcome,) = evaluator.evaluate([{"port": "eighty"}], namespaces=None)
    assert outcome.errors == ()
    assert sorted(r.message for r in outcome.results) == ["no owner", "no team"]
    (fine,) = evaluator.evaluate([{"port": "70000", "team": "a"}], namespaces=None)
    assert sorted(r.message for r in fine.results) == ["no owner", "port too high"]


def test_successes_are_counted_as_conftest_counts_them(tmp_path: Path) -> None:
    # acceptance.bats "The number of tests run is accurate": every definition of a
    # deny/violation/warn rule is a test; one not accounted for by a result passed.
    (tmp_path / "p.rego").write_text(
        "package main\n\n"
        'deny contains "a" if input.a\n\n'
        'deny contains "b" if input.b\n\n'
        'warn contains "service" if input.kind == "Service"\n',
        "utf-8",
    )
    evaluator = open_engine(PolicySource((tmp_path,)), engine="embedded")
    service, clean = evaluator.evaluate([{"kind": "Service"}, {}], namespaces=None)
    assert [r.message for r in service.results] == ["service"]
    assert service.successes == (("main", 2),)  # 3 tests, 2 passed, 1 warning
    assert clean.successes == (("main", 3),)


# -- a result object's metadata and _loc (output/result.go, tests/source-location) ----------


def test_a_results_loc_and_metadata_reach_conftest_json_and_its_line_the_finding(
    cli: Cli, repo: Repo
) -> None:
    policy = (
        'package main\n\ndeny contains {"msg": "test", "other": "metadata", "_loc": input.loc}\n'
    )
    root = repo(
        {
            "policy/main.rego": policy,
            "data.yaml": "---\nloc:\n  file: test.txt\n  line: 123\n",
            "same.yaml": "---\nloc:\n  file: same.yaml\n  line: 3\n",
        }
    )
    run = cli("-C", root, "validate", "--no-cache", "-o", "json", "data.yaml")
    assert run.code == 1, run.err
    (result,) = json.loads(run.out)
    assert result["failures"] == [
        {"msg": "test", "loc": {"file": "test.txt", "line": 123}, "metadata": {"other": "metadata"}}
    ]
    # A `_loc` naming the file checked places the finding on its line.
    run = cli("-C", root, "validate", "--no-cache", "same.yaml")
    assert "same.yaml:3" in run.out, run.out


# -- a boolean deny (tests/problematic-if, conftest issue #864) ---------------------------

BOOLEAN_POLICY = (
    "package main\n\ndeny if input.debug == true\n\nwarn_x := true if input.x\n\n"
    'deny_list := ["listed"] if input.debug\n\ndeny contains "set" if input.never\n'
)


def test_a_boolean_deny_passes_as_in_conftest_and_a_warning_says_so(cli: Cli, repo: Repo) -> None:
    root = repo({"policy/main.rego": BOOLEAN_POLICY, "on.json": '{"debug": true}\n'})
    run = cli("-C", root, "validate", "--no-cache", "-o", "json", "on.json")
    # conftest: exit 0, the boolean rules counted as passed; deny_list's member fails.
    assert run.code == 1, run.err
    (result,) = json.loads(run.out)
    assert [f["msg"] for f in result["failures"]] == ["listed"]
    assert run.err.splitlines() == [
        "cd-checks: warning: policy/main.rego:3: deny is a boolean rule: conftest counts it"
        " as passed, it never fails; write deny contains msg if { ... }",
        "cd-checks: warning: policy/main.rego:5: warn_x is a boolean rule: conftest counts it"
        " as passed, it never warns; write warn_x contains msg if { ... }",
    ]
    run = cli("-C", root, "policy", "test")
    assert run.code == 0, run.out + run.err
    assert "policy/main.rego:3: deny is a boolean rule" in run.err


def test_no_warning_for_set_and_array_rules(cli: Cli, repo: Repo) -> None:
    policy = (
        'package main\n\ndeny contains "x" if input.a\n\nviolation := [{"msg": "v"}] if input.b\n'
    )
    root = repo({"policy/main.rego": policy, "a.json": "{}\n"})
    run = cli("-C", root, "validate", "--no-cache", "a.json")
    assert run.code == 0 and "warning" not in run.err, run.err


# -- --trace with conftest's other outputs (acceptance.bats "... output and trace flag") ----


@pytest.mark.parametrize("output", ["json", "tap", "table"])
def test_trace_goes_to_stderr_beside_a_parseable_output(output: str, cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "policy/lib.rego": 'package kubernetes\n\nis_service if input.kind == "Service"\n',
            "policy/main.rego": "package main\n\nimport data.kubernetes\n\n"
            'warn contains "a service" if kubernetes.is_service\n',
            "service.yaml": "---\nkind: Service\n",
        }
    )
    run = cli("-C", root, "validate", "--no-cache", "-o", output, "--trace", "service.yaml")
    assert run.code == 0, run.err
    assert "file: service.yaml | query: data.main.warn" in run.err
    assert "data.kubernetes.is_service" in run.err
    assert "TRAC" not in run.out and "a service" in run.out
    if output == "json":
        assert json.loads(run.out)[0]["warnings"] == [{"msg": "a service"}]


def test_builtin_set_findings_carry_no_metadata(cli: Cli, repo: Repo) -> None:
    # The built-in sets' result keys (path, rule) place and name a finding; only a user's
    # policy results keep their metadata for the formats.
    plan = {
        "format_version": "1.2",
        "resource_changes": [
            {
                "address": "aws_db_instance.main",
                "type": "aws_db_instance",
                "name": "main",
                "change": {"actions": ["delete"], "before": {}, "after": None},
            }
        ],
    }
    root = repo({"plans/tfplan.json": json.dumps(plan, indent=2) + "\n"})
    run = validate(cli, root, "--builtin", "terraform")
    assert run.code == 1, run.err
    (finding,) = json.loads(run.out)["findings"]
    assert finding["rule"] == "TF-001" and "metadata" not in finding
