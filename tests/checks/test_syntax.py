"""Syntax checks per file kind: each parse error is a finding with its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint.config import YamlLintConfig

from cd_checks.checks import syntax
from cd_checks.findings import Finding

OPTIONS = syntax.SyntaxOptions(YamlLintConfig("extends: default"), 5 * 2**20)


def check(
    tmp_path: Path,
    name: str,
    content: str | bytes,
    kind: str,
    options: syntax.SyntaxOptions = OPTIONS,
) -> tuple[object, list[Finding]]:
    full = tmp_path / name
    full.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    full.write_bytes(data)
    return syntax.parse(syntax.Source(name, full, data), kind, options)


def where(findings: list[Finding]) -> list[tuple[int | None, int | None, str]]:
    return [(f.line, f.column, f.rule) for f in findings]


# (name, kind, content, expected (line, column, rule) of each finding)
CASES = [
    ("ok.yml", "yaml", "---\na: 1\nb: [1, 2]\n", []),
    ("dup.yml", "yaml", "---\na: 1\na: 2\n", [(3, 1, "key-duplicates")]),
    ("bad.yml", "yaml", "---\na: b: c\n", [(2, 5, "syntax")]),
    ("indent.yml", "yaml", "---\na:\n  b: 1\n c: 2\n", [(4, 2, "syntax")]),
    ("ok.json", "json", '{"a": [1, 2]}\n', []),
    ("bad.json", "json", '{\n  "a": 1,\n  "b": \n}\n', [(4, 1, "syntax")]),
    ("trailing.json", "json", '{"a": 1,}\n', [(1, 9, "syntax")]),
    ("ok.toml", "toml", 'title = "x"\n[owner]\nname = "y"\n', []),
    ("bad.toml", "toml", 'title = "x"\nname = \n', [(2, 8, "syntax")]),
    ("ok.ini", "ini", "[defaults]\nforks = 10\n", []),
    # As conftest (go-ini): a repeated section adds to the first, keys before any section
    # are DEFAULT's; a line without `=` or `:`, or an unclosed section, is an error.
    ("dup.ini", "ini", "[a]\nx = 1\n[a]\n", []),
    ("nosection.ini", "ini", "x = 1\n", []),
    ("nodelimiter.ini", "ini", "[a]\nx = 1\njunk\n", [(3, 1, "syntax")]),
    ("unclosed.ini", "ini", "[a]\nx = 1\n[b\n", [(3, 1, "syntax")]),
    ("nginx/ok.conf", "nginx", "server {\n    listen 80;\n}\n", []),
    ("nginx/bad.conf", "nginx", "server {\n    listen 80;\n", [(2, None, "syntax")]),
    (
        "nginx/args.conf",
        "nginx",
        "server {\n  location / {\n    proxy_pass http://a\n"
        "    proxy_set_header Host $host;\n  }\n}\n",
        [(3, None, "syntax")],
    ),
    (
        "nginx/ctx.conf",
        "nginx",
        "server {\n  location / {\n    listen 80;\n  }\n}\n",
        [(3, None, "syntax")],
    ),
    ("nginx/main.conf", "nginx", "events {}\nhttp {\n  server {\n    listen 80;\n  }\n}\n", []),
    (
        "nginx/snippet.conf",
        "nginx",
        "location /api/ {\n  proxy_pass http://127.0.0.1:8080;\n}\n",
        [],
    ),
    ("nginx/stream.conf", "nginx", "server {\n  listen 5432;\n  proxy_pass db:5432;\n}\n", []),
    (
        "nginx/semi.conf",
        "nginx",
        "events {}\nhttp {\n  server_tokens off\n}\n",
        [(3, None, "syntax")],
    ),
]


@pytest.mark.parametrize(("name", "kind", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parse_errors_are_located(
    tmp_path: Path, name: str, kind: str, content: str, expected: list[tuple[int, int | None, str]]
) -> None:
    parsed, findings = check(tmp_path, name, content, kind)
    assert where(findings) == expected
    assert all(f.check == "syntax" and f.path == name for f in findings)
    assert (parsed is None) == any(f.rule == "syntax" for f in findings)


def test_yamllint_config_is_honoured(tmp_path: Path) -> None:
    long_line = "---\nkey: " + "x" * 100 + "\n"
    _, default = check(tmp_path, "a.yml", long_line, "yaml")
    assert where(default) == [(2, 81, "line-length")]
    relaxed = syntax.SyntaxOptions(
        YamlLintConfig("extends: default\nrules: {line-length: {max: 200}}"), 2**20
    )
    assert check(tmp_path, "a.yml", long_line, "yaml", relaxed)[1] == []


def test_multi_document_yaml_gives_each_document(tmp_path: Path) -> None:
    parsed, findings = check(tmp_path, "m.yml", "---\na: 1\n---\nb: 2\n", "yaml")
    assert findings == []
    assert parsed.documents == ({"a": 1}, {"b": 2})  # type: ignore[attr-defined]
    assert parsed.locate(1, ["b"]) == (4, 4)  # type: ignore[attr-defined]


def test_nginx_documents_follow_conftest_shape(tmp_path: Path) -> None:
    parsed, _ = check(tmp_path, "nginx/a.conf", "http {\n  server_tokens off;\n}\n", "nginx")
    assert parsed.documents == (
        {
            "directives": [
                {  # type: ignore[attr-defined]
                    "name": "http",
                    "parameters": [],
                    "line": 1,
                    "block": {
                        "directives": [{"name": "server_tokens", "parameters": ["off"], "line": 2}]
                    },
                }
            ]
        },
    )
    path = ["directives", 0, "block", "directives", 0]
    assert parsed.locate(0, path) == (2, None)  # type: ignore[attr-defined]


# Bad input: a finding each, never an exception.
def test_binary_file_with_yaml_name(tmp_path: Path) -> None:
    _, findings = check(tmp_path, "x.yml", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "yaml")
    assert where(findings) == [(None, None, "binary")]


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    _, findings = check(tmp_path, "x.yml", b"---\na: ok\nb: caf\xe9\n", "yaml")
    assert where(findings) == [(3, 7, "encoding")]


@pytest.mark.parametrize(
    ("kind", "rules"),
    [("yaml", []), ("json", ["syntax"]), ("toml", []), ("ini", []), ("nginx", [])],
)
def test_empty_file(tmp_path: Path, kind: str, rules: list[str]) -> None:
    name = "nginx/e.conf" if kind == "nginx" else f"e.{kind}"
    _, findings = check(tmp_path, name, "", kind)
    assert [f.rule for f in findings] == rules


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["---", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    parsed, findings = check(tmp_path, "bomb.yml", "\n".join(lines) + "\n", "yaml")
    assert "alias-bomb" in [f.rule for f in findings]
    assert parsed.documents == (None,)  # type: ignore[attr-defined]


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    parsed, findings = check(tmp_path, "loop.yml", "---\na: &x [*x]\n", "yaml")
    assert "alias-bomb" in [f.rule for f in findings] or "syntax" in [f.rule for f in findings]


def test_deep_nesting_is_a_finding(tmp_path: Path) -> None:
    _, findings = check(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000, "json")
    assert [f.rule for f in findings] == ["too-deep"]


def test_file_too_large_for_yamllint_is_parsed_and_says_so(tmp_path: Path) -> None:
    small_limit = syntax.SyntaxOptions(YamlLintConfig("extends: default"), 64)
    content = "---\n" + "".join(f"key{i}: value {i}\n" for i in range(20))
    parsed, findings = check(tmp_path, "big.yml", content, "yaml", small_limit)
    assert [(f.rule, f.severity) for f in findings] == [("too-large", "warning")]
    assert parsed.documents[0]["key19"] == "value 19"  # type: ignore[attr-defined]


def test_yaml_dates_and_keys_become_json_data(tmp_path: Path) -> None:
    parsed, _ = check(tmp_path, "d.yml", "---\nexpires: 2027-01-31\n1: one\n", "yaml")
    assert parsed.documents == ({"expires": "2027-01-31", "1": "one"},)  # type: ignore[attr-defined]


def test_application_tags_are_read_as_plain_values(tmp_path: Path) -> None:
    content = (
        "---\npassword: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6231\n"
        "job:\n  script: !reference [.setup, script]\n"
    )
    parsed, findings = check(tmp_path, "vars.yml", content, "yaml")
    assert findings == []
    document = parsed.documents[0]  # type: ignore[attr-defined]
    assert document["password"].startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert document["job"] == {"script": [".setup", "script"]}
