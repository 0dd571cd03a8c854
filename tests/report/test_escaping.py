"""File names and messages a pull request chooses cannot forge lines in any output format.

Issue 9 item 9: names with newlines reached the text and JUnit output raw, and in a
GitHub Actions log a line starting with `::` (after white space) or holding `##[` is a
workflow command. Real files with hostile names go through `cd-checks validate` in
every format; each output is read the way the Actions runner reads a log (lines end at
\\n, \\r or \\r\\n) and parsed back the way its consumer parses it.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cd_checks.findings import Finding, Report
from cd_checks.report import FORMATS, github
from cd_checks.report.escaping import defuse_json, defuse_text, defuse_xml, quote_path
from tests.conftest import Run, git, init_repo, run_process

Cli = Callable[..., Run]
INVISIBLE = {"Mn", "Me", "Cf", "Cc"}

BROKEN = b"key: [\n"  # a syntax error (line 2) and a missing document start (line 1)
HOSTILE = [
    b"a\n::error::b.yml",
    b"::add-mask::x.yml",
    b" ::notice::s.yml",
    b"%0A::error::y.yml",
    b"c\r::warning::w.yml",
    b"x##[add-mask]z.yml",
    b"<&>.yml",
    b"\x1b[31mred.yml",
    b"\x1b]8;;https:example.com\x07link.yml",  # an OSC 8 hyperlink
    b"comma,colon:name.yml",
    b'q"uote\\.yml',
    b"\xe2\x80\xaertl.yml",  # U+202E RIGHT-TO-LEFT OVERRIDE
    b"\xff.yml",  # not UTF-8
    "\ufe0f::add-mask::vs.yml".encode(),  # a variation selector weighs nothing in .NET
    "x#\u200b#[add-mask]zw.yml".encode(),  # nor does a zero-width space
]
# yamllint quotes the key in its message: a message can carry a newline and an escape too.
DUPLICATE_KEYS = b'---\n"k\\n::add-mask::v\\e[2J": 1\n"k\\n::add-mask::v\\e[2J": 2\n'
# The commands cd-checks itself means to give, in the github format.
OWN_COMMAND = re.compile(r"::(error|warning) file=[^,:]*(,line=\d+(,col=\d+)?)?,title=[^:]*::")


def runner_lines(text: str) -> list[str]:
    """The log lines the Actions runner sees (.NET ReadLine: \\n, \\r and \\r\\n end one)."""
    return re.split(r"\r\n|\r|\n", text)


def commands(text: str) -> Iterator[str]:
    """Every line a runner would treat as a workflow command, in either syntax, also when
    its culture-aware search skips invisible characters."""
    for line in runner_lines(text):
        seen = "".join(c for c in line if unicodedata.category(c) not in INVISIBLE)
        if seen.lstrip().startswith("::") or "##[" in seen:
            yield line


@pytest.fixture(scope="module")
def hostile_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name in HOSTILE:
        (root / os.fsdecode(name)).write_bytes(BROKEN)
    (root / "dup.yml").write_bytes(DUPLICATE_KEYS)
    (root / "good.yml").write_bytes(b"---\nkey: value\n")
    return init_repo(root)


@pytest.fixture(scope="module")
def outputs(hostile_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each format's report, written with -o (bytes exactly as rendered) by a real process."""
    out = tmp_path_factory.mktemp("out")
    rendered = {}
    summary = out / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    for name in FORMATS:
        target = out / name
        done = run_process(
            "-C", hostile_repo, "validate", "--no-cache", "--format", name, "-o", target, env=env
        )
        assert done.code == 1, done.err
        rendered[name] = target.read_bytes().decode("utf-8")  # strict: every byte is UTF-8
    rendered["step-summary"] = summary.read_bytes().decode("utf-8")
    return rendered


@pytest.mark.parametrize("name", [*FORMATS, "step-summary"])
def test_no_output_line_is_a_workflow_command_but_our_own(
    outputs: dict[str, str], name: str
) -> None:
    forged = [line for line in commands(outputs[name]) if not OWN_COMMAND.match(line)]
    assert forged == []
    # No escape sequence reaches a terminal either; only an annotation's file= property
    # holds the real name, so GitHub can attach it to that file.
    shown = re.sub("file=[^,]*,", "", outputs[name]) if name == "github" else outputs[name]
    assert "\x1b" not in shown
    assert "\r" not in outputs[name]


def test_text_quotes_unusual_names_as_git_does(outputs: dict[str, str]) -> None:
    lines = outputs["text"].splitlines()
    for name in HOSTILE:
        shown = quote_path(os.fsdecode(name))
        assert any(line.startswith(f"{shown}:2:1  error    syntax/syntax  ") for line in lines)
    assert '"a\\n::error::b.yml":2:1  error    syntax/syntax  ' in outputs["text"]
    assert '"\\377.yml":2:1  error    syntax/syntax  ' in outputs["text"]
    assert '"\\342\\200\\256rtl.yml":1:1' in outputs["text"]
    assert "<&>.yml:2:1  error" in outputs["text"]  # a plain name stays as it is
    assert "good.yml" not in outputs["text"]
    assert lines[-1] == "16 errors, 15 warnings in 17 files"


def test_a_message_with_a_newline_continues_indented_and_defused(outputs: dict[str, str]) -> None:
    lines = outputs["text"].splitlines()
    at = lines.index('dup.yml:3:1  error    syntax/key-duplicates  duplication of key "k')
    assert lines[at + 1] == '    \\072:add-mask::v\\033[2J" in mapping'
    github_lines = [line for line in runner_lines(outputs["github"]) if "dup.yml" in line]
    assert github_lines[-1].endswith('key "k%0A::add-mask::v\\033[2J" in mapping')


def test_quote_path_matches_git(hostile_repo: Path) -> None:
    # git's own quoting (core.quotePath on: every byte outside ASCII in octal), for the
    # names git and a CI log agree on; the rest are quoted by cd-checks only.
    listed = git(hostile_repo, "ls-files").splitlines()
    names = [os.fsdecode(n) for n in HOSTILE]
    ours = {quote_path(n) for n in names if not list(commands(n))}
    ours_only = ours - set(listed)
    assert ours_only == set()
    assert '"::add-mask::x.yml"' not in listed and "::add-mask::x.yml" in listed


def test_json_formats_parse_back_to_the_real_names(outputs: dict[str, str]) -> None:
    real = {os.fsdecode(name) for name in HOSTILE}
    paths = {f["path"] for f in json.loads(outputs["json"])["findings"]}
    assert real <= paths
    gitlab = {issue["location"]["path"] for issue in json.loads(outputs["gitlab"])}
    assert real <= gitlab
    sarif = json.loads(outputs["sarif"])["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif}
    assert "a%0A%3A%3Aerror%3A%3Ab.yml" in uris and "%FF.yml" in uris


def test_junit_is_valid_xml_naming_each_file_as_git_quotes_it(outputs: dict[str, str]) -> None:
    root = ET.fromstring(outputs["junit"].encode("utf-8"))
    cases = {case.get("name") for case in root.iter("testcase")}
    assert {quote_path(os.fsdecode(name)) for name in HOSTILE} <= cases
    body = "".join(failure.text or "" for failure in root.iter("failure"))
    assert '"c\\r::warning::w.yml":2:1  error  syntax/syntax' in body


def test_github_commands_carry_the_real_names(outputs: dict[str, str]) -> None:
    files = set()
    for line in runner_lines(outputs["github"]):
        if not line:
            continue
        match = OWN_COMMAND.match(line)
        assert match, line
        files.add(_runner_property(line.split(",")[0].split("=", 1)[1]))
    real = {os.fsdecode(name) for name in HOSTILE if name != b"\xff.yml"}
    assert real <= files
    assert "\\377.yml" in files  # a name that is not UTF-8 cannot be named; it is shown


def _runner_property(value: str) -> str:
    """The Actions runner's UnescapeProperty (ActionCommand.cs), in its order."""
    for token, replacement in (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C")):
        value = value.replace(replacement, token)
    return value.replace("%25", "%")


def test_step_summary_code_spans_and_markup_stay_closed() -> None:
    finding = Finding(
        "a`b``c|d.yml", 1, 1, "syntax", "yaml", "error", "see [x](https://e.test) <img src=x> `x`"
    )
    row = next(
        line
        for line in github.step_summary(Report.build([finding], 1)).splitlines()
        if line.startswith("| :x:")
    )
    assert "```a`b``c\\|d.yml:1:1```" in row
    assert "see \\[x\\](https://e.test) &lt;img src=x&gt; \\`x\\`" in row


@pytest.mark.parametrize(
    ("text", "defused"),
    [
        ("::add-mask::x", "\\072:add-mask::x"),
        ("   ::error::x", "   \\072:error::x"),
        ("a ##[add-mask]b", "a ##\\133add-mask]b"),
        ("fine: text :: here", "fine: text :: here"),
    ],
)
def test_defuse_text(text: str, defused: str) -> None:
    assert defuse_text(text) == defused


def test_defuse_keeps_the_value_of_xml_and_json() -> None:
    value = "\n ::add-mask::x\r##[stop-commands]y\u2028z\x85"
    xml = defuse_xml(ET.tostring(ET.Element("a", b=value), encoding="unicode"))
    element = ET.fromstring(xml)
    assert element.get("b") == value.replace("\r", "\r")
    text_xml = ET.Element("t")
    text_xml.text = value
    parsed = ET.fromstring(defuse_xml(ET.tostring(text_xml, encoding="unicode")))
    assert parsed.text == value
    assert list(commands(defuse_xml(ET.tostring(text_xml, encoding="unicode")))) == []
    dumped = defuse_json(json.dumps({"v": value, "w": "\U000e0001"}, ensure_ascii=False))
    assert json.loads(dumped) == {"v": value, "w": "\U000e0001"}
    assert list(commands(dumped)) == [] and "\u2028" not in dumped and "\x85" not in dumped


def test_a_missing_path_argument_with_a_newline_is_one_error_line(cli: Cli, tmp_path: Path) -> None:
    root = init_repo(tmp_path)
    run = cli("-C", root, "validate", "no\n::add-mask::such.yml")
    assert run.code == 2
    assert run.err.count("\n") == 1 and list(commands(run.err)) == []
    assert run.err.endswith("no\\n::add-mask::such.yml\n")
