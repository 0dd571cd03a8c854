"""Valid YAML that yamllint accepts is read, not refused (issue 10, item 4).

Each case is YAML 1.1 found in real repositories: prometheus-operator's CRDs
carry `- =` (the value key), configs use complex keys and application tags.
yamllint accepts all of them; so must `validate`, and the document must still
reach the policies with a value they can compare.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run

Cli = Callable[..., Run]
Repo = Callable[..., Path]

# A rule that prints what it saw, so a test asserts the value policies get.
ECHO = 'package main\n\nwarn contains msg if msg := sprintf("%v", [input])\n'


def validate(cli: Cli, root: Path) -> tuple[Run, list[dict[str, object]]]:
    run = cli("-C", root, "validate", "--format", "json", "--no-cache")
    assert "Traceback" not in run.err
    assert run.code == 0, (run.out, run.err)
    return run, list(json.loads(run.out)["findings"])


def seen(found: list[dict[str, object]]) -> str:
    return next(str(f["message"]) for f in found if f["rule"] == "main.warn")


def test_the_value_key_of_a_crd_enum_is_the_text_equals(cli: Cli, repo: Repo) -> None:
    # From prometheus-operator's monitoring.coreos.com_prometheusrules CRD.
    root = repo({"crd.yml": "---\nenum:\n  - =\n  - '!='\n", "policy/p.rego": ECHO})
    _, found = validate(cli, root)
    assert [f["rule"] for f in found] == ["main.warn"]
    assert seen(found) == '{"enum": ["=", "!="]}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("? [a, b]\n: 1\n", '{"[\\"a\\",\\"b\\"]": 1}'),
        ("? {x: 1}\n: 2\n", '{"{\\"x\\":1}": 2}'),
    ],
)
def test_a_complex_key_is_read_as_its_json_text(
    cli: Cli, repo: Repo, text: str, expected: str
) -> None:
    root = repo({"keys.yml": "---\n" + text, "policy/p.rego": ECHO})
    _, found = validate(cli, root)
    assert [f["rule"] for f in found] == ["main.warn"]
    assert seen(found) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/tuple [1, 2]\n",
        "%TAG !e! tag:example.com,2000:\n---\na: !e!thing 1\n",
        "a: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n",
        "a: !!set {x, y}\n",
    ],
)
def test_any_tag_yamllint_accepts_is_read(cli: Cli, repo: Repo, text: str) -> None:
    body = text if text.startswith("%") else "---\n" + text
    root = repo({"tags.yml": body})
    run, found = validate(cli, root)
    assert found == [], run.out
