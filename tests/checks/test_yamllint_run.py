"""yamllint's problems in one scan (`cd_checks.checks.yamllint_run`) are `linter.run`'s, exactly.

`linter.run` scans a text twice (its rules, then a syntax check); cd-checks scans
once and lets PyYAML's parser read the kept tokens. These tests hold the two to
the same list of problems (line, column, message, rule, level, order) on mutated
texts and on each path: a clean text, a parser error read from the kept tokens,
a scanner error (where yamllint's own syntax check runs), the texts where libyaml
and PyYAML disagree (tabs, `?` in flow context), directives, unreadable characters.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yamllint import linter
from yamllint.config import YamlLintConfig

from cd_checks.checks import yamllint_run

CONFIGS = {
    "default": YamlLintConfig("extends: default"),
    "relaxed": YamlLintConfig("extends: relaxed\nrules: {line-length: {max: 20}}"),
}


def answer(function: Any, text: str, conf: YamlLintConfig) -> object:
    """The problems as comparable tuples, or the exception raised."""
    try:
        return [(p.line, p.column, p.desc, p.rule, p.level) for p in function(text, conf, "f.yml")]
    except Exception as exc:  # noqa: BLE001 - yamllint's own crashes must match too
        return (type(exc).__name__, str(exc))


def yamllint_alone(text: str, conf: YamlLintConfig, path: str) -> list[Any]:
    return list(linter.run(text, conf, path))


# (text, whether the scan reaches the end of the stream: the syntax check reads the kept tokens)
CASES = [
    ("---\nkey: value\nlist: [1, 2]\n", True),
    ("key: value   \nother: 1\n", True),  # trailing spaces, no document start
    ("---\n[a? , b]: c\n", True),  # libyaml accepts, PyYAML's parser refuses
    ("---\nlist: [a, b\nnext: 1   \n", True),  # parser error, a problem after it
    ("---\n- a\nb: c\n", True),
    ("---\na: b: c\n", False),  # scanner error
    ("---\na: \tb\n", False),  # a tab libyaml takes and PyYAML refuses
    ("---\nkey: 'unterminated\n", False),
    ("# yamllint disable-file\n[[[\n", True),
    ("---\n# yamllint disable\na:    b  \n# yamllint enable\nc:    d\n", True),
    ("---\nk: v # yamllint disable-line rule:colons\nx:    y\n", True),
    ("", True),
    ("---\nbad: \x01\n", False),  # a character PyYAML's reader refuses
    ("%YAML 1.1\n--- !&a!map\na: b\n", False),
    ("---\nk: >#-\n  text\n", False),
]


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("text", [text for text, _ in CASES])
def test_one_scan_gives_linter_runs_answer(text: str, name: str) -> None:
    conf = CONFIGS[name]
    assert answer(yamllint_run.problems, text, conf) == answer(yamllint_alone, text, conf)


@pytest.mark.parametrize(("text", "complete"), CASES)
def test_yamllints_syntax_check_runs_only_when_the_scan_stopped_early(
    text: str, complete: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = CONFIGS["default"]
    expected = answer(yamllint_alone, text, conf)
    calls: list[str] = []
    syntax_check = linter.get_syntax_error

    def counted(buffer: str) -> Any:
        calls.append(buffer)
        return syntax_check(buffer)

    monkeypatch.setattr(linter, "get_syntax_error", counted)
    assert answer(yamllint_run.problems, text, conf) == expected
    scanned_twice = bool(calls)
    # A reader error or `disable-file` stops both before any syntax check.
    stopped_before = "\x01" in text or text.startswith("# yamllint disable-file")
    assert scanned_twice == (not complete and not stopped_before)


def test_a_syntax_error_takes_the_place_of_the_first_problem_at_or_after_it() -> None:
    # yamllint's rules also trip over the `:` the parser refuses (3:5); the syntax error
    # stands there instead, and the trailing spaces after it follow.
    text = "---\nlist: [a, b\nnext: 1   \n"
    found = yamllint_run.problems(text, CONFIGS["default"], "f.yml")
    assert [(p.line, p.column, p.rule) for p in found] == [(3, 5, None), (3, 8, "trailing-spaces")]
    assert found[0].desc == "syntax error: expected ',' or ']', but got ':' (syntax)"


def test_an_unreadable_character_raises_as_yamllint_does() -> None:
    with pytest.raises(yaml.reader.ReaderError):
        yamllint_run.problems("---\nbad: \x01\n", CONFIGS["default"], "f.yml")


SEEDS = [
    "---\nname: web\nreplicas: 3\nports: [80, 443]\nanchors: &a {x: 1}\nuse: *a\n",
    "a:\n  - b: 1\n    c: [1, 2, {d: e}]\n  - 'q''x'\n  - \"esc\\n\\t\"\n",
    "k: |\n  line1\n   line2\nj: >-\n  folded\n? complex\n: value\n",
    "- =\n- !!str x\n- !custom {a: 1}\n%YAML 1.1\n--- !!map\na: b\n...\n",
    "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: |\n      up == 0\n    for: 5m\n",
]
PIECES = [" ", "\t", "\n", ": ", "- ", "? ", ",", "[", "]", "{", "}", "#", "&a", "*a", "!"]
PIECES += ["|", ">", "'", '"', "%", "---", "...", "\r\n", "\\", "=", "\ufeff", "\x85", "  "]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = list(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        if draw(st.booleans()):
            text[at:at] = list(draw(st.sampled_from(PIECES)))
        else:
            del text[at : at + draw(st.integers(min_value=1, max_value=6))]
    return "".join(text)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=mutated(), name=st.sampled_from(sorted(CONFIGS)))
def test_mutated_texts_get_linter_runs_answer(text: str, name: str) -> None:
    conf = CONFIGS[name]
    assert answer(yamllint_run.problems, text, conf) == answer(yamllint_alone, text, conf)
