"""The shipped policy library: its Rego unit tests pass, and every rule id has a failing case.

Coverage is read from the sources, not declared: rule ids are the ids a
policy passes to `finding(...)`; a test covers an id with a failing case when
one of its lines asserts `"<ID>" in denied|warned|combined_denied ...` (a Rego
body is a conjunction, so a passing test proves the rule fired on that
input), and with a passing case when a line asserts `not "<ID>" in ...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from cd_checks.builtin_policies import BUILTIN_SETS, policies_dir
from cd_checks.rego import PolicySource, TestResult, run_tests

# Rule ids the library defines; a new rule must bump this (and bring its tests).
RULE_COUNT = 43

ID = r"[A-Z]+-\d{3}"
RULE_ID = re.compile(rf'finding\("({ID})"')
TEST_RULE = re.compile(r"^(test_\w+) if \{\n(.*?)^\}", re.M | re.S)
FIRES = re.compile(rf'^\s*"({ID})" in (?:denied|warned|combined_denied)\b', re.M)
QUIET = re.compile(rf'^\s*not "({ID})" in (?:denied|warned|combined_denied)\b', re.M)


@dataclass(frozen=True)
class RegoTest:
    name: str
    fires: frozenset[str]
    quiet: frozenset[str]


def defined_ids(set_dir: Path) -> set[str]:
    sources = [p for p in set_dir.glob("*.rego") if not p.name.endswith("_test.rego")]
    return {m for p in sources for m in RULE_ID.findall(p.read_text("utf-8"))}


def cases_of(set_dir: Path) -> list[RegoTest]:
    text = (set_dir / f"{set_dir.name}_test.rego").read_text("utf-8")
    return [
        RegoTest(name, frozenset(FIRES.findall(body)), frozenset(QUIET.findall(body)))
        for name, body in TEST_RULE.findall(text)
    ]


@pytest.fixture(scope="module")
def results() -> list[TestResult]:
    return run_tests(PolicySource(paths=(policies_dir(),)))


def test_every_rego_unit_test_passes(results: list[TestResult]) -> None:
    failed = [f"{r.file}:{r.line} {r.name}: {r.message}" for r in results if not r.passed]
    assert failed == []
    assert len(results) >= 2 * RULE_COUNT


def test_every_test_rule_in_the_sources_was_run(results: list[TestResult]) -> None:
    ran = {(r.namespace, r.name) for r in results}
    for name in BUILTIN_SETS:
        namespace = f"cd_checks.{name}_test"
        expected = {(namespace, case.name) for case in cases_of(policies_dir() / name)}
        assert expected and expected <= ran


def test_every_rule_has_a_failing_and_a_passing_case(results: list[TestResult]) -> None:
    passed = {(r.namespace, r.name) for r in results if r.passed}
    defined: set[str] = set()
    failing: set[str] = set()
    passing: set[str] = set()
    for name in BUILTIN_SETS:
        ids = defined_ids(policies_dir() / name)
        defined |= ids
        for case in cases_of(policies_dir() / name):
            if (f"cd_checks.{name}_test", case.name) in passed:
                failing |= case.fires & ids
                passing |= case.quiet & ids
    assert sorted(defined - failing) == []
    assert sorted(defined - passing) == []
    assert len(failing) == len(defined) == RULE_COUNT


def test_rule_ids_are_unique_per_set_and_prefixed() -> None:
    prefixes = {
        "nginx": "NGINX",
        "monitoring": "MON",
        "patches": "PATCH",
        "agents": "AGENT",
        "ansible": "ANS",
        "pipeline": "PIPE",
        "terraform": "TF",
    }
    assert set(prefixes) == set(BUILTIN_SETS)
    for name, prefix in prefixes.items():
        ids = defined_ids(policies_dir() / name)
        assert ids and all(i.startswith(prefix + "-") for i in ids)


def test_readme_documents_every_rule() -> None:
    readme = (policies_dir() / "README.md").read_text("utf-8")
    documented = set(re.findall(rf"^\| ({ID}) \|", readme, re.M))
    defined = set().union(*(defined_ids(policies_dir() / n) for n in BUILTIN_SETS))
    assert documented == defined


def test_layout_matches_the_registry() -> None:
    for name, builtin in BUILTIN_SETS.items():
        set_dir = policies_dir() / name
        policy = (set_dir / f"{name}.rego").read_text("utf-8")
        tests = (set_dir / f"{name}_test.rego").read_text("utf-8")
        assert builtin.package == f"cd_checks.{name}"
        assert re.search(rf"^package {re.escape(builtin.package)}$", policy, re.M)
        assert re.search(rf"^package cd_checks\.{name}_test$", tests, re.M)
        assert re.search(rf"^import data\.cd_checks\.{name}$", tests, re.M)
        combined = set_dir / "combined.rego"
        assert combined.exists() == (builtin.combined_package is not None)
        if builtin.combined_package:
            text = combined.read_text("utf-8")
            assert re.search(rf"^package {re.escape(builtin.combined_package)}$", text, re.M)
