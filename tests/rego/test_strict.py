"""--strict: OPA's strict-mode errors, found on regorus' syntax tree (cd_checks.rego.strict).

The expected lines are OPA's own messages for the same policies (`opa check --strict`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cd_checks.builtin_policies import policies_dir
from cd_checks.rego.model import PolicySource, RegoVersion
from cd_checks.rego.strict import check_text, strict_problems


def problems(body: str, version: RegoVersion = "v1") -> list[str]:
    head = "package main\n" + ("import rego.v1\n" if version == "v1" else "")
    return [
        line.removeprefix("p.rego:").replace(" rego_compile_error:", "")
        for line in check_text("p.rego", head + body, version)
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('deny contains m if {\n x := 1\n m := "a"\n}\n', ["4: assigned var x unused"]),
        ('deny contains m if {\n some q\n m := "a"\n}\n', ["4: declared var q unused"]),
        (
            "deny contains m if {\n [a, b] := [1, 2]\n m := a\n}\n",
            ["4: assigned var b unused"],
        ),
        (
            "f(a, b) := a\n",
            ["3: unused argument b. (hint: use _ (wildcard variable) instead)"],
        ),
        ("import data.lib\nallow := true\n", ["3: import data.lib unused"]),
        ("import data.lib as l\nallow := true\n", ["3: import data.lib as l unused"]),
        (
            'deny contains m if {\n any([true])\n m := "a"\n}\n',
            ["4: deprecated built-in function calls in expression: any"],
        ),
        (
            'deny contains m if {\n net.cidr_overlap("10.0.0.0/8", "10.1.0.0")\n m := "a"\n}\n',
            ["4: deprecated built-in function calls in expression: net.cidr_overlap"],
        ),
    ],
)
def test_each_strict_mode_error(body: str, expected: list[str]) -> None:
    assert problems(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        # used in the head, in a comprehension's term, as a ref index, in every, in else
        'deny contains m if {\n m := "a"\n}\n',
        "xs := [y | some v in input.a; y := v * 2]\n",
        'deny contains m if {\n some i\n input.a[i]\n m := sprintf("%d", [i])\n}\n',
        'deny contains m if {\n n := 3\n every v in input.a { v < n }\n m := "a"\n}\n',
        "f(x) := 1 if { x > 2 } else := y if { y := 3 }\n",
        # wildcards, an import used through its alias or its last segment, keyword imports
        "g(_, b) := b\n",
        "import data.lib as l\nallow if l.ok\n",
        "import data.lib.k8s\nallow if k8s.ok\n",
        "import future.keywords.in\nallow if 1 in input.a\n",
        # an object's value destructured and used
        'deny contains m if {\n {"k": v} := input\n m := v\n}\n',
    ],
)
def test_what_opa_accepts_is_not_reported(body: str) -> None:
    assert problems(body) == []


def test_rego_v0_policies_are_checked_too() -> None:
    assert problems('deny[msg] {\n x := 1\n msg := "a"\n}\n', "v0") == ["3: assigned var x unused"]


def test_a_policy_that_does_not_parse_is_left_to_the_loader() -> None:
    assert check_text("p.rego", "package main\ndeny contains if {\n") == []


def test_the_shipped_policy_library_and_its_tests_are_strict_clean() -> None:
    source = PolicySource(paths=(policies_dir(),))
    assert strict_problems(source, tests=True, root=policies_dir()) == []


def test_file_names_are_shown_relative_to_the_repository(tmp_path: Path) -> None:
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy/a.rego").write_text("package main\nimport data.x\nallow := true\n")
    source = PolicySource(paths=(tmp_path / "policy",), root=tmp_path)
    assert strict_problems(source) == ["policy/a.rego:2: rego_compile_error: import data.x unused"]
