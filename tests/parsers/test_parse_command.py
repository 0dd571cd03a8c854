"""`cd-checks parse`: what a policy sees, printed as `conftest parse` prints it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Run

Cli = Callable[..., Run]
Repo = Callable[[Mapping[str, str | bytes]], Path]

# One file per parser, found by its name, and the input conftest gives a policy for it.
FILES: dict[str, tuple[str, object]] = {
    "Dockerfile": (
        "FROM alpine:3.20\nUSER app\n",
        [
            {
                "Cmd": "from",
                "SubCmd": "",
                "JSON": False,
                "Flags": [],
                "Value": ["alpine:3.20"],
                "Stage": 0,
            },
            {"Cmd": "user", "SubCmd": "", "JSON": False, "Flags": [], "Value": ["app"], "Stage": 0},
        ],
    ),
    ".env": ("PORT=8080\n", {"PORT": "8080"}),
    "main.tf": (
        'resource "aws_s3_bucket" "logs" {\n  acl = "private"\n}\n',
        {"resource": {"aws_s3_bucket": {"logs": [{"acl": "private"}]}}},
    ),
    "legacy.hcl1": (
        'provider "aws" {\n  region = "eu-west-1"\n}\n',
        {"provider": [{"aws": [{"region": "eu-west-1"}]}]},
    ),
    ".gitignore": (
        "id_rsa\n",
        [
            {"Kind": "Path", "Value": "id_rsa", "Original": "id_rsa"},
            {"Kind": "Empty", "Value": "", "Original": ""},
        ],
    ),
    "grafana.ini": ("[server]\nhttp_port = 3000\n", {"server": {"http_port": 3000}}),
    "data.json": ('{"a": [1, 2]}', {"a": [1, 2]}),
    "settings.jsonc": ('{\n  // c\n  "a": 1,\n}\n', {"a": 1}),
    "app.properties": ("a.b=c\n", {"a.b": "c"}),
    "Cargo.toml": ('[package]\nname = "x"\n', {"package": {"name": "x"}}),
    "pom.xml": ("<project><name>x</name></project>", {"project": {"name": "x"}}),
    "deploy.yaml": ("kind: Service\n", {"kind": "Service"}),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_parse_prints_the_input_of_each_kind(cli: Cli, repo: Repo, name: str) -> None:
    text, expected = FILES[name]
    root = repo({name: text})
    run = cli("-C", root, "parse", name)
    assert (run.code, run.err) == (0, "")
    assert json.loads(run.out) == expected


def test_output_is_gos_json(cli: Cli, repo: Repo) -> None:
    root = repo({"a.yaml": "b: 1\na: '<x & y>'\n"})
    run = cli("-C", root, "parse", "a.yaml")
    assert run.out == '{\n  "a": "\\u003cx \\u0026 y\\u003e",\n  "b": 1\n}\n'


def test_several_files_are_keyed_by_path_and_streams_are_lists(cli: Cli, repo: Repo) -> None:
    root = repo({"a.yaml": "x: 1\n---\nx: 2\n", "b.env": "K=v\n"})
    run = cli("-C", root, "parse", "a.yaml", "b.env")
    assert json.loads(run.out) == {"a.yaml": [{"x": 1}, {"x": 2}], "b.env": {"K": "v"}}


def test_combine_prints_the_combined_input(cli: Cli, repo: Repo) -> None:
    root = repo({"b.yaml": "x: 1\n---\nx: 2\n", "a.env": "K=v\n"})
    run = cli("-C", root, "parse", "--combine", "b.yaml", "a.env")
    assert json.loads(run.out) == [
        {"path": "a.env", "contents": {"K": "v"}},
        {"path": "b.yaml", "contents": {"x": 1}},
        {"path": "b.yaml", "contents": {"x": 2}},
    ]
    assert run.out.startswith(
        '[\n\t{\n\t\t"contents"'
    )  # conftest indents the combined form with tabs


def test_parser_flag_forces_the_kind(cli: Cli, repo: Repo) -> None:
    root = repo({"app.conf": "[main]\nworkers = 4\n"})
    run = cli("-C", root, "parse", "--parser", "ini", "app.conf")
    assert json.loads(run.out) == {"main": {"workers": 4}}


def test_stdin_is_yaml_unless_told(cli: Cli, repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    root = repo({"README": ""})
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"kind: Pod\n")))
    assert json.loads(cli("-C", root, "parse", "-").out) == {"kind": "Pod"}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"FROM alpine\n")))
    run = cli("-C", root, "parse", "--parser", "dockerfile", "-")
    assert run.err == ""
    assert json.loads(run.out)[0]["Value"] == ["alpine"]


BAD = [
    (
        "Dockerfile",
        "FROM alpine\nFOO bar\n",
        "Dockerfile:2:1: dockerfile: unknown instruction: FOO",
    ),
    (".env", "A=1\nnot valid\n", ".env:2:1: dotenv: cannot parse line 2: 'not valid'"),
    ("main.tf", 'resource "a" "b" {\n  x = \n}\n', "main.tf:2:7: hcl2: unexpected '}'"),
    ("a.ini", "[a]\njunk\n", "a.ini:2:1: ini: key-value delimiter not found: junk"),
    ("a.json", '{"a": 1,}', "a.json:1:9: json: Expecting property name enclosed in double quotes"),
    ("a.jsonc", '{"a": 1 "b": 2}', "a.jsonc:1:9: jsonc: Expecting ',' delimiter"),
    ("a.toml", "a = \n", "a.toml:1:5: toml: Invalid value"),
    ("a.xml", "<a><b></a>", "a.xml:1:9: xml: mismatched tag"),
    ("a.yaml", "a: [\n", "a.yaml:2:1: yaml: did not find expected node content"),
    (
        "a.properties",
        "a=\\uZZZZ\n",
        "a.properties: properties: Invalid \\u escape sequence: \\uZZZZ",
    ),
]


@pytest.mark.parametrize(("name", "text", "error"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_error_line(
    cli: Cli, repo: Repo, name: str, text: str, error: str
) -> None:
    root = repo({name: text})
    run = cli("-C", root, "parse", name)
    assert (run.code, run.out) == (2, "")
    assert run.err == f"cd-checks: error: {error}\n"


def test_usage_errors(cli: Cli, repo: Repo, tmp_path: Path) -> None:
    root = repo({"a.cfg": "x\n"})
    (tmp_path / "outside.yaml").write_text("a: 1\n")
    cases = {
        (
            "parse",
            "a.cfg",
        ): "cd-checks: error: a.cfg: no parser for this file name; give one with --parser",
        (
            "parse",
            "--parser",
            "cue",
            "a.cfg",
        ): "cd-checks: error: --parser cue: unknown parser; choose from",
        ("parse", str(tmp_path / "outside.yaml")): "is outside the repository",
        (
            "parse",
            "missing.yaml",
        ): "cd-checks: error: missing.yaml: cannot read: No such file or directory",
    }
    for args, error in cases.items():
        run = cli("-C", root, *args)
        assert run.code == 2, args
        assert error in run.err and run.err.count("\n") == 1, run.err
