"""Each parser gives the exact shape conftest hands to policies.

Cases are translated from conftest's parser tests (parser/*/..._test.go) and
examples; the expected values are what conftest's Go parsers produce.
"""

from __future__ import annotations

from typing import Any

import pytest

from cd_checks.parsers import PARSER_NAMES, ParseError, parse_text, parser_for


def test_hcl2_blocks_nest_their_labels_and_bodies_are_lists() -> None:
    # conftest parser/hcl2/convert_test.go "simple-resources", reduced.
    text = """
resource "aws_elastic_beanstalk_environment" "example" {
  name        = "test_environment"
  application = "testing"

  setting {
    namespace = "aws:autoscaling:asg"
    name      = "MinSize"
    value     = "1"
  }

  dynamic "setting" {
    for_each = data.consul_key_prefix.environment.var
    content {
      heredoc = <<-EOF
        This is a heredoc template.
        It references ${local.other.3}
        EOF
      simple = "${4 - 2}"
      cond = test3 > 2 ? 1: 0
      name      = setting.key
    }
  }
}
"""
    assert parse_text("hcl2", text) == [
        {
            "resource": {
                "aws_elastic_beanstalk_environment": {
                    "example": [
                        {
                            "name": "test_environment",
                            "application": "testing",
                            "setting": [
                                {
                                    "namespace": "aws:autoscaling:asg",
                                    "name": "MinSize",
                                    "value": "1",
                                }
                            ],
                            "dynamic": {
                                "setting": [
                                    {
                                        "for_each": "${data.consul_key_prefix.environment.var}",
                                        "content": [
                                            {
                                                "heredoc": "This is a heredoc template.\n"
                                                "It references ${local.other.3}\n",
                                                "simple": "${4 - 2}",
                                                # conftest: the source text, "${test3 > 2 ?
                                                # 1: 0}"; python-hcl2 re-renders expressions
                                                # with normal spacing (documented difference).
                                                "cond": "${test3 > 2 ? 1 : 0}",
                                                "name": "${setting.key}",
                                            }
                                        ],
                                    }
                                ]
                            },
                        }
                    ]
                }
            }
        }
    ]


def test_hcl2_repeated_blocks_share_one_list() -> None:
    # conftest parser/hcl2/convert_test.go "multiple-providers".
    text = (
        'provider "aws" {\n  version = "=2.46.0"\n  alias   = "one"\n}\n'
        'provider "aws" {\n  version = "=2.47.0"\n  alias   = "two"\n}\n'
    )
    assert parse_text("hcl2", text) == [
        {
            "provider": {
                "aws": [
                    {"alias": "one", "version": "=2.46.0"},
                    {"alias": "two", "version": "=2.47.0"},
                ]
            }
        }
    ]


def test_hcl2_literals_keep_their_types_and_objects_stay_objects() -> None:
    text = 'locals {\n  n = 3\n  f = 1.5\n  t = true\n  z = null\n  tags = { env = "prod" }\n}\n'
    assert parse_text("hcl2", text) == [
        {"locals": [{"n": 3, "f": 1.5, "t": True, "z": None, "tags": {"env": "prod"}}]}
    ]


def test_hcl1() -> None:
    # hashicorp/hcl v1 into interface{} (conftest's examples/hcl1/policy/gke_combine.rego
    # reads `provider[0].google[0].project`): an object inside an object is a list.
    text = 'provider "aws" {\n  region = "us-east-1"\n  tags = { env = "prod" }\n}\n'
    text += 'variable "zones" {\n  default = ["a", "b"]\n}\nlisted = [{ a = 1 }]\n'
    assert parse_text("hcl1", text) == [
        {
            "provider": [{"aws": [{"region": "us-east-1", "tags": [{"env": "prod"}]}]}],
            "variable": [{"zones": [{"default": ["a", "b"]}]}],
            "listed": [{"a": 1}],
        }
    ]


def command(cmd: str, value: list[str], stage: int = 0) -> dict[str, Any]:
    return {"Cmd": cmd, "SubCmd": "", "JSON": False, "Flags": [], "Value": value, "Stage": stage}


def test_dockerfile_commands() -> None:
    # conftest parser/docker/docker_test.go TestParser_Unmarshal.
    assert parse_text("dockerfile", "FROM foo\nCOPY . /\nRUN echo hello") == [
        [
            {"Cmd": "from", "SubCmd": "", "JSON": False, "Flags": [], "Value": ["foo"], "Stage": 0},
            {
                "Cmd": "copy",
                "SubCmd": "",
                "JSON": False,
                "Flags": [],
                "Value": [".", "/"],
                "Stage": 0,
            },
            {
                "Cmd": "run",
                "SubCmd": "",
                "JSON": False,
                "Flags": [],
                "Value": ["echo hello"],
                "Stage": 0,
            },
        ]
    ]


def test_dockerfile_multistage_stages_comments_and_argument_forms() -> None:
    # conftest parser/docker/docker_test.go TestParser_Unmarshal_Multistage, and the
    # shapes of examples/docker's Dockerfile.
    text = (
        "FROM golang:1.13-alpine as base\nCOPY go.mod .\nCOPY go.sum .\nRUN go mod download\n\n"
        "COPY . .\n\t\nFROM base as builder\nRUN go build -o conftest\n"
        "# the entry point\n"
        'ENTRYPOINT ["java","-cp","app:app/lib/*","hello.Application"]\n'
        "COPY --from=base --chown=1:1 /a /b\nENV A=1 B=2\nARG DEPENDENCY=target/dependency\n"
        "RUN apk add \\\n  curl\n"
    )
    commands = parse_text("dockerfile", text)[0]
    assert [c["Stage"] for c in commands[:5]] == [0] * 5
    assert commands[5] == {
        "Cmd": "from",
        "SubCmd": "",
        "JSON": False,
        "Flags": [],
        "Value": ["base", "as", "builder"],
        "Stage": 1,
    }
    assert commands[6]["Stage"] == 1
    assert commands[7] == {
        "Cmd": "comment",
        "SubCmd": "",
        "JSON": False,
        "Flags": None,
        "Value": ["the entry point"],
        "Stage": 1,
    }
    assert commands[8]["JSON"] is True
    assert commands[8]["Value"] == ["java", "-cp", "app:app/lib/*", "hello.Application"]
    assert commands[9]["Flags"] == ["--from=base", "--chown=1:1"]
    assert commands[10]["Value"] == ["A", "1", "B", "2"]
    assert commands[11]["Value"] == ["DEPENDENCY=target/dependency"]
    assert commands[12]["Value"] == ["apk add   curl"]  # buildkit keeps the continuation's indent


def test_ini_as_conftest() -> None:
    # conftest parser/ini/ini_test.go: the indented sample, and TestConvertTypes.
    text = (
        "[Local Variables]\n\tName=name\n\tTitle=title\n\tVisibility=show/hide\n\tDelay=10\n\n\n"
        "\t[Navigation Controls]\n\tOnNext=node path\n\tHelp=help file\n\n\t# Test comment"
    )
    assert parse_text("ini", text) == [
        {
            "Local Variables": {
                "Name": "name",
                "Title": "title",
                "Visibility": "show/hide",
                "Delay": 10,
            },
            "Navigation Controls": {"OnNext": "node path", "Help": "help file"},
        }
    ]


@pytest.mark.parametrize(
    ("value", "typed"),
    [
        ("3.0", 3),
        ("3.5", 3.5),
        ("-2", -2),
        ("1e3", 1000),
        ("conftest", "conftest"),
        ("true", True),
        ("F", False),
        ("TRUE", True),
        ("yes", "yes"),  # not a Go boolean
        ("NaN", "NaN"),  # conftest keeps NaN and Inf as strings
        ("Inf", "Inf"),
        ("1_000", "1_000"),  # Go's ParseFloat takes no underscores in decimals
        ("0x1p-2", 0.25),
        ("", ""),
    ],
)
def test_ini_values_are_typed_as_conftest_types_them(value: str, typed: Any) -> None:
    (document,) = parse_text("ini", f"[s]\nk = {value}\n")
    assert document["s"]["k"] == typed
    assert type(document["s"]["k"]) is type(typed)


def test_ini_default_section_and_keys_before_a_section_are_left_out() -> None:
    text = 'top = 1\n[DEFAULT]\nshared = x\n[web]\nPort = 80 ; inline comment\nname = "quoted"\n'
    assert parse_text("ini", text) == [{"web": {"Port": 80, "name": "quoted"}}]


def test_dotenv() -> None:
    # conftest examples/dotenv: KEY=value pairs, all strings.
    text = "# comment\nexport APP_NAME=web\nPORT=8080\nURL=\"http://${APP_NAME}:${PORT}\"\nRAW='${PORT}'\n"
    assert parse_text("dotenv", text) == [
        {"APP_NAME": "web", "PORT": "8080", "URL": "http://web:8080", "RAW": "${PORT}"}
    ]


def test_properties() -> None:
    # conftest parser/properties: a flat map of strings, ${key} expanded.
    text = (
        "SAMPLE_VALUE=some-value\n"
        "other.value.url = https://${SAMPLE_VALUE}.com\n"
        "multi: one \\\n  two\n"
    )
    assert parse_text("properties", text) == [
        {
            "SAMPLE_VALUE": "some-value",
            "other.value.url": "https://some-value.com",
            "multi": "one two",
        }
    ]


def test_ignore_entries() -> None:
    # conftest parser/ignore/ignore_test.go.
    assert parse_text("ignore", "!bar\n\n# Test") == [
        [
            {"Kind": "NegatedPath", "Value": "bar", "Original": "!bar"},
            {"Kind": "Empty", "Value": "", "Original": ""},
            {"Kind": "Comment", "Value": "Test", "Original": "# Test"},
        ]
    ]


def test_xml_in_goxml2json_shape() -> None:
    text = (
        '<?xml version="1.0"?>\n<project xmlns:m="urn:x" version="4">\n'
        '  <name>demo</name>\n  <dep scope="test">junit</dep>\n  <dep>core</dep>\n'
        "  <m:empty/>\n</project>\n"
    )
    assert parse_text("xml", text) == [
        {
            "project": {
                "-m": "urn:x",
                "-version": "4",
                "name": "demo",
                "dep": [{"#content": "junit", "-scope": "test"}, "core"],
                "empty": "",
            }
        }
    ]


def test_jsonc_comments_and_trailing_commas() -> None:
    text = '{\n  // a comment\n  "a": 1, /* another */\n  "b": [1, 2,],\n  "c": "// kept",\n}\n'
    assert parse_text("jsonc", text) == [{"a": 1, "b": [1, 2], "c": "// kept"}]


def test_json_one_document_and_ndjson_one_per_line() -> None:
    assert parse_text("json", '{"a": 1}') == [{"a": 1}]
    assert parse_text("json", '{"a": 1}\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]


def test_yaml_one_document_each_and_empty_ones_are_null() -> None:
    assert parse_text("yaml", "a: 1\n---\n---\nb: [1, 2]\n") == [{"a": 1}, None, {"b": [1, 2]}]


def test_edn_values_are_the_text_conftest_gives_them() -> None:
    # conftest parser/edn tests: every scalar becomes its text, keywords keep their colon.
    assert parse_text("edn", "{:sample true}") == [{":sample": "true"}]
    text = '{;; a comment\n:sample1 "my-username",\n:sample2 false,\n:sample3 5432}'
    assert parse_text("edn", text) == [
        {":sample1": "my-username", ":sample2": "false", ":sample3": "5432"}
    ]
    # Sets, tags and the rest as Go's fmt prints what olympos.io/encoding/edn decodes.
    text = (
        '{:set #{:b :a} :list (1 2.0 1e21) :nil nil :sym web "k" "v" '
        ':at #inst "2031-06-01T08:00:00.25Z" :every #duration "15m" #_:gone :n 1.5}'
    )
    assert parse_text("edn", text) == [
        {
            ":set": "map[:a:true :b:true]",
            ":list": ["1", "2", "1e+21"],
            ":nil": "<nil>",
            ":sym": "web",
            "k": "v",
            ":at": "2031-06-01 08:00:00.25 +0000 UTC",
            ":every": "{duration 15m}",
            ":n": "1.5",
        }
    ]


def test_an_edn_tag_reader_lasts_one_parse() -> None:
    import edn_format

    parse_text("edn", '#thing "x"')
    with pytest.raises(NotImplementedError):
        edn_format.loads('#thing "x"', write_ply_tables=False)


def test_toml() -> None:
    assert parse_text("toml", 'title = "x"\n[owner]\nport = 8080\n') == [
        {"title": "x", "owner": {"port": 8080}}
    ]


# -- bad input: one ParseError, located where the parser knows -----------------------------

BAD = [
    ("dockerfile", "FROM alpine\nFOO bar\n", 2),
    ("dockerfile", "FROM\n", 1),
    ("dotenv", "A=1\nnot an assignment\n", 2),
    ("hcl2", 'resource "a" "b" {\n  x = \n}\n', 2),
    ("ini", "[a]\nx = 1\n[b\n", 3),
    ("ini", "[a]\njunk\n", 2),
    ("json", '{\n  "a": 1,\n}\n', 3),
    ("jsonc", '{\n  "a": 1\n  "b": 2\n}\n', 3),
    ("toml", "a = 1\nb = \n", 2),
    ("xml", "<a>\n  <b></a>\n", 2),
    ("yaml", "a: [\n", 2),
    ("properties", "a = \\uZZZZ\n", None),
    ("hcl1", "a = {\n", None),
    ("edn", "{:a 1}\n ]\n", 2),
    ("edn", "{:a 1\n :b ~}", 2),
    ("edn", "{:a [1 2}", 1),
    ("edn", "{:a 1\n", None),
]


@pytest.mark.parametrize(("parser", "text", "line"), BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_bad_input_is_one_located_parse_error(parser: str, text: str, line: int | None) -> None:
    with pytest.raises(ParseError) as raised:
        parse_text(parser, text)
    assert raised.value.line == line
    assert raised.value.message.startswith(f"{parser}: ")
    assert "\n" not in raised.value.message


def test_ignore_files_always_parse() -> None:
    assert parse_text("ignore", "") == [[{"Kind": "Empty", "Value": "", "Original": ""}]]


def test_unknown_parser_lists_the_names() -> None:
    with pytest.raises(ParseError, match="unknown parser 'cue': choose from dockerfile, "):
        parse_text("cue", "")


def test_every_named_parser_reads_something() -> None:
    samples = {
        "dockerfile": "FROM x\n",
        "dotenv": "A=1\n",
        "edn": "{:a 1}",
        "hcl1": "a = 1\n",
        "hcl2": "a = 1\n",
        "ignore": "x\n",
        "ini": "[a]\nb=1\n",
        "json": "{}",
        "jsonc": "{}",
        "nginx": "events {}\n",
        "properties": "a=1\n",
        "toml": "a = 1\n",
        "xml": "<a/>",
        "yaml": "a: 1\n",
    }
    assert set(samples) == set(PARSER_NAMES)
    for name, text in samples.items():
        assert parse_text(name, text), name


@pytest.mark.parametrize(
    ("path", "parser"),
    [
        # conftest parser/parser_test.go TestNewFromPath, translated.
        ("-", "yaml"),
        ("Dockerfile", "dockerfile"),
        ("dockerfile.debug", "dockerfile"),
        ("dev.Dockerfile", "dockerfile"),
        ("main.tf", "hcl2"),
        ("sample_config.edn", "edn"),
        ("terraform.tfvars", "hcl2"),
        ("config.hcl", "hcl2"),
        ("Makefile", "yaml"),  # no extension: YAML, as conftest
        ("a.yml", "yaml"),
        ("a.ndjson", "json"),
        (".gitignore", "ignore"),
        ("app/.dockerignore", "ignore"),
        (".env", "dotenv"),
        (".env.prod", "dotenv"),
        ("prod.env", "dotenv"),
        ("grafana.ini", "ini"),
        ("pom.xml", "xml"),
        ("app.properties", "properties"),
        ("settings.jsonc", "jsonc"),
        ("Cargo.toml", "toml"),
        ("a.JSON", "json"),
        # conftest's nginx example reads `parse_config_file("../nginx.conf")`.
        ("site.conf", "nginx"),
        ("a.cfg", None),
    ],
)
def test_parser_by_file_name(path: str, parser: str | None) -> None:
    assert parser_for(path) == parser


def test_nginx_in_conftest_shape_fragments_too() -> None:
    # conftest's examples/nginx unit tests parse fragments with parse_config("nginx", ...):
    # no context check (a bare `server` block reads), each directive's line kept.
    text = "server {\n  listen 8080;\n  location / { root /srv; }\n}\n"
    assert parse_text("nginx", text) == [
        {
            "directives": [
                {
                    "name": "server",
                    "parameters": [],
                    "line": 1,
                    "block": {
                        "directives": [
                            {"name": "listen", "parameters": ["8080"], "line": 2},
                            {
                                "name": "location",
                                "parameters": ["/"],
                                "line": 3,
                                "block": {
                                    "directives": [
                                        {"name": "root", "parameters": ["/srv"], "line": 3}
                                    ]
                                },
                            },
                        ]
                    },
                }
            ]
        }
    ]


def test_bad_nginx_is_a_parse_error_at_its_line() -> None:
    with pytest.raises(ParseError) as raised:
        parse_text("nginx", "events {}\nhttp {\n  server {\n")
    assert raised.value.message == 'nginx: unexpected end of file, expecting "}"'
    assert raised.value.line == 3


def test_dockerfile_heredocs_onbuild_and_the_escape_directive() -> None:
    text = (
        "# escape=`\nFROM mcr.microsoft.com/windows/servercore\n"
        "RUN dir `\n  c:\\\nONBUILD RUN echo built\nRUN <<EOF\napt-get update\nEOF\nUSER app\n"
    )
    commands = parse_text("dockerfile", text)[0]
    assert [c["Cmd"] for c in commands] == ["comment", "from", "run", "onbuild", "run", "user"]
    assert commands[2]["Value"] == ["dir   c:\\"]
    assert (commands[3]["SubCmd"], commands[3]["Value"]) == ("RUN", ["echo built"])
    assert commands[4]["Value"] == ["<<EOF"]  # the heredoc's lines are no instructions


def test_dockerfile_without_instructions_is_an_error() -> None:
    with pytest.raises(ParseError, match="file with no instructions"):
        parse_text("dockerfile", "# only a comment\n")
