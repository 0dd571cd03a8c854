"""Ordinary and hostile inputs that used to abort `validate` with exit 3 (issue 9, item 4).

Each is now a finding on the file, with its line, or one `cd-checks: error:` line
(exit 2) when the whole run cannot go on; never a traceback. Where a finding
is enough, `other.yml` beside the bad file proves the run went on: its
trailing space (line 2) is still reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run, init_repo

Cli = Callable[..., Run]
Repo = Callable[..., Path]

OTHER = {"other.yml": "---\nkey: value \n"}
OTHER_SEEN = ("other.yml", 2, "trailing-spaces")


def findings(run: Run) -> list[dict[str, object]]:
    return list(json.loads(run.out)["findings"])


def where(run: Run) -> set[tuple[object, object, object]]:
    return {(f["path"], f["line"], f["rule"]) for f in findings(run)}


def message(run: Run, path: str, rule: str) -> str:
    found = [f["message"] for f in findings(run) if f["path"] == path and f["rule"] == rule]
    assert found, (path, rule, findings(run))
    return str(found[0])


def validate(cli: Cli, root: Path, *args: str) -> Run:
    run = cli("-C", root, "validate", "--format", "json", "--no-cache", *args)
    assert "Traceback" not in run.err
    return run


def without_read_override(root: Path, *args: str) -> Run:
    """`cd-checks -C root ARGS` as a process that file modes apply to.

    The tests run as root, who reads a mode-000 file anyway: as root the process
    drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (setpriv), so the kernel refuses
    it as it refuses any user. A real permission error, not a simulated one.
    """
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to drop root's read override")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "cd_checks", "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def locked() -> list[Path]:
    """Paths a test made unreadable; readable again afterwards, so tmp_path is cleaned."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        path.chmod(0o755)


# -- 1, 2: a YAML date that is no date -------------------------------------------------


def test_an_impossible_date_is_valid_yaml_read_as_text(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "when.yml": "---\nwhen: 2024-02-30\nok: 2024-02-28\n",
            "policy/p.rego": "package main\n\n"
            'deny contains "read as text" if input.when == "2024-02-30"\n',
            **OTHER,
        }
    )
    run = validate(cli, root)
    assert run.code == 1, run.err
    # yamllint accepts it; policies see the text as written.
    assert where(run) == {("when.yml", None, "main.deny"), OTHER_SEEN}


def test_an_impossible_expiry_date_is_a_finding_on_its_line(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            ".cd-checks-exceptions.yml": "---\nexceptions:\n  - rule: NGINX-001\n"
            "    paths: [a.yml]\n    reason: INC-1\n    expires: 2024-02-30\n",
            **OTHER,
        }
    )
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert (".cd-checks-exceptions.yml", 6, "exceptions/invalid") in where(run)
    assert message(run, ".cd-checks-exceptions.yml", "exceptions/invalid") == (
        "expires '2024-02-30' is not a date (YYYY-MM-DD)"
    )
    assert OTHER_SEEN in where(run)


# -- 3, 4: integers over Python's 4,300-digit limit ------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "line", "column"),
    [
        ("big.yml", "---\nn: " + "9" * 5000 + "\n", 2, 4),
        ("big.toml", "n = " + "9" * 5000 + "\n", 1, 5),
        ("big.json", '{"n":\n ' + "9" * 5000 + "}\n", 2, 2),
    ],
)
def test_an_integer_of_5000_digits_is_a_finding(
    cli: Cli, repo: Repo, name: str, content: str, line: int, column: int
) -> None:
    root = repo({name: content, **OTHER})
    run = validate(cli, root)
    assert run.code == 1, run.err
    found = [f for f in findings(run) if f["rule"] == "number-too-long"]
    assert [(f["path"], f["line"], f["column"]) for f in found] == [(name, line, column)]
    assert found[0]["message"] == (
        "an integer of 5,000 digits is longer than cd-checks reads (4,300 digits)"
    )
    assert OTHER_SEEN in where(run)


# -- 5: a NUL byte past the first 8 KB -------------------------------------------------


@pytest.mark.parametrize("suffix", ["yml", "json", "toml"])
def test_a_nul_byte_past_8_kb_is_a_finding_at_its_line(cli: Cli, repo: Repo, suffix: str) -> None:
    comment = "#" if suffix != "json" else ""
    head = "".join(f"{comment} line {i}\n" for i in range(1, 1001)) if comment else ""
    body = head + "a: \0\n" if suffix != "json" else '{"a": "' + "x" * 9000 + '\0"}'
    root = repo({f"nul.{suffix}": body.encode(), **OTHER})
    run = validate(cli, root)
    assert run.code == 1, run.err
    line = 1001 if suffix != "json" else 1
    assert (f"nul.{suffix}", line, "binary") in where(run)
    kind = {"yml": "yaml"}.get(suffix, suffix)
    assert message(run, f"nul.{suffix}", "binary") == f"a NUL byte: binary data, not {kind}"
    assert OTHER_SEEN in where(run)


# -- 6: symbolic link loops ------------------------------------------------------------


@pytest.mark.parametrize("in_git", [False, True])
def test_symlink_loops_are_warnings_not_a_crash(cli: Cli, repo: Repo, in_git: bool) -> None:
    root = repo(OTHER)
    os.symlink("loop-b.yml", root / "loop-a.yml")
    os.symlink("loop-a.yml", root / "loop-b.yml")
    os.symlink("self.yml", root / "self.yml")
    if in_git:
        init_repo(root)
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert {
        ("loop-a.yml", None, "symlink-loop"),
        ("loop-b.yml", None, "symlink-loop"),
        ("self.yml", None, "symlink-loop"),
        OTHER_SEEN,
    } == where(run)
    assert message(run, "self.yml", "symlink-loop") == "symbolic link loop; not followed"


def test_a_looping_path_argument_is_one_error_line(cli: Cli, repo: Repo) -> None:
    root = repo(OTHER)
    os.symlink("self.yml", root / "self.yml")
    run = cli("-C", root, "validate", root / "self.yml")
    assert run.code == 2
    assert run.err.startswith("cd-checks: error:") and len(run.err.splitlines()) <= 2


# -- 7: an unreadable directory --------------------------------------------------------


@pytest.mark.parametrize("in_git", [False, True])
def test_an_unreadable_directory_is_a_finding_and_the_rest_is_checked(
    repo: Repo, locked: list[Path], in_git: bool
) -> None:
    root = repo({"secret/a.yml": "---\na: 1\n", **OTHER})
    if in_git:
        init_repo(root)
    (root / "secret").chmod(0)
    locked.append(root / "secret")
    run = without_read_override(root, "validate", "--format", "json", "--no-cache")
    assert run.code == 1, run.err
    # Not a silent skip: before, a plain directory's unreadable part went unchecked, exit 0.
    assert ("secret", None, "unreadable") in where(run)
    assert message(run, "secret", "unreadable") == (
        "cannot read this directory: Permission denied; the files in it are not checked"
    )
    if in_git:  # git still lists the tracked file
        assert ("secret/a.yml", None, "unreadable") in where(run)
    assert OTHER_SEEN in where(run)


# -- 8: a bad glob ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ("files:\n  include: ['**/*', '[z-a]']\n", "files.include[1]"),
        ("syntax:\n  nginx: ['[z-a]']\n", "syntax.nginx[0]"),
        ("schema:\n  - {files: ['[z-a]'], schema: s.json}\n", "schema[0].files[0]"),
    ],
)
def test_a_bad_glob_in_the_config_is_one_error_line_naming_the_key(
    cli: Cli, repo: Repo, config: str, key: str
) -> None:
    root = repo({"cd-checks.yml": config, "s.json": "{}", **OTHER})
    run = cli("-C", root, "validate", "--no-cache")
    assert run.code == 2
    assert run.err == (
        f"cd-checks: error: {root / 'cd-checks.yml'}: {key}: bad glob '[z-a]': "
        "bad character range z-a\n"
    )


def test_a_bad_glob_in_the_exceptions_file_is_a_finding_on_its_line(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            ".cd-checks-exceptions.yml": "---\nexceptions:\n  - rule: NGINX-001\n"
            "    paths: ['[z-a]']\n    reason: INC-1\n    expires: 2099-01-01\n",
            **OTHER,
        }
    )
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert (".cd-checks-exceptions.yml", 4, "exceptions/invalid") in where(run)
    assert message(run, ".cd-checks-exceptions.yml", "exceptions/invalid") == (
        "paths: bad glob '[z-a]': bad character range z-a"
    )


# -- 9, 10: recursive $ref, $ref to something that is no schema ------------------------


def schema_repo(repo: Repo, schemas: dict[str, str]) -> Path:
    return repo(
        {
            "cd-checks.yml": "schema:\n  - {files: 'svc/*.yml', schema: s.json}\n",
            "svc/a.yml": "---\nname: a\n",
            **schemas,
            **OTHER,
        }
    )


@pytest.mark.parametrize(
    ("schemas", "ref"),
    [
        ({"s.json": '{"$ref": "#"}'}, "#"),
        ({"s.json": '{"$ref": "t.json"}', "t.json": '{"allOf": [{"$ref": "s.json"}]}'}, "t.json"),
        (
            {
                "s.json": '{"properties": {"name": {"$ref": "#/$defs/x"}},'
                ' "$defs": {"x": {"anyOf": [{"$ref": "#/$defs/x"}]}}}'
            },
            "#/$defs/x",
        ),
    ],
)
def test_a_ref_loop_is_a_finding_on_the_schema(
    cli: Cli, repo: Repo, schemas: dict[str, str], ref: str
) -> None:
    run = validate(cli, schema_repo(repo, schemas))
    assert run.code == 1, run.err
    assert ("s.json", None, "invalid-schema") in where(run)
    assert message(run, "s.json", "invalid-schema") == (
        f"$ref {ref!r} leads back to itself without descending into the document: "
        "validation would never end"
    )
    assert OTHER_SEEN in where(run)


def test_a_recursive_schema_that_descends_is_fine(cli: Cli, repo: Repo) -> None:
    tree = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "kids": {"items": {"$ref": "#"}}},
    }
    root = schema_repo(repo, {"s.json": json.dumps(tree)})
    (root / "svc/a.yml").write_text("---\nname: a\nkids: [{name: b, kids: [{name: 3}]}]\n")
    run = validate(cli, root)
    assert ("svc/a.yml", 3, "type") in where(run)
    assert not any(f["path"] == "s.json" for f in findings(run))


@pytest.mark.parametrize(
    ("schemas", "ref", "kind"),
    [
        ({"s.json": '{"$ref": "list.json"}', "list.json": "[1, 2]"}, "list.json", "an array"),
        ({"s.json": '{"$ref": "#/x", "x": "text"}'}, "#/x", "a string"),
    ],
)
def test_a_ref_to_something_that_is_no_schema_is_a_finding(
    cli: Cli, repo: Repo, schemas: dict[str, str], ref: str, kind: str
) -> None:
    run = validate(cli, schema_repo(repo, schemas))
    assert run.code == 1, run.err
    assert message(run, "s.json", "invalid-schema") == (
        f"$ref {ref!r} does not point to a schema (it is {kind}: a schema is an object "
        "or a boolean)"
    )
    assert OTHER_SEEN in where(run)


# -- 11: deeply nested schema or config ------------------------------------------------


def test_a_deeply_nested_schema_is_a_finding(cli: Cli, repo: Repo) -> None:
    deep = '{"items": ' * 3000 + "{}" + "}" * 3000
    run = validate(cli, schema_repo(repo, {"s.json": deep}))
    assert run.code == 1, run.err
    assert message(run, "s.json", "invalid-schema") == (
        "cannot read schema: nested deeper than 128 levels"
    )
    assert OTHER_SEEN in where(run)


@pytest.mark.parametrize(
    "config",
    [
        "files:\n  include: " + "[" * 3000 + "]" * 3000 + "\n",
        "policy:\n  builtin_data:\n" + "".join("  " * (i + 2) + f"k{i}:\n" for i in range(200)),
    ],
)
def test_a_deeply_nested_config_is_one_error_line(cli: Cli, repo: Repo, config: str) -> None:
    root = repo({"cd-checks.yml": config, **OTHER})
    run = cli("-C", root, "validate")
    assert run.code == 2
    assert run.err.startswith(f"cd-checks: error: {root / 'cd-checks.yml'}:")
    assert run.err.endswith(": nested deeper than 128 levels\n")


# -- 12: an unreadable policy file -----------------------------------------------------


def test_an_unreadable_policy_file_is_one_error_line(repo: Repo, locked: list[Path]) -> None:
    root = repo(
        {
            "policy/a.rego": 'package main\n\ndeny contains "x" if false\n',
            "policy/b.rego": "package main\n",
            **OTHER,
        }
    )
    (root / "policy/b.rego").chmod(0)
    locked.append(root / "policy/b.rego")
    for cache in ([], ["--no-cache"]):  # the cache's fingerprint reads it too
        run = without_read_override(root, "validate", *cache)
        assert run.code == 2, run.err
        assert run.err == (
            f"cd-checks: error: {root / 'policy/b.rego'}: cannot read: Permission denied\n"
        )


def test_an_unreadable_policy_directory_is_one_error_line(repo: Repo, locked: list[Path]) -> None:
    root = repo(
        {
            "policy/a.rego": 'package main\n\ndeny contains "x" if false\n',
            "policy/more/b.rego": "package main\n",
            **OTHER,
        }
    )
    (root / "policy/more").chmod(0)
    locked.append(root / "policy/more")
    run = without_read_override(root, "validate", "--no-cache")
    assert run.code == 2, run.err
    assert run.err == f"cd-checks: error: {root / 'policy/more'}: cannot read: Permission denied\n"


# -- 13: an unreadable file under --combine --------------------------------------------

COMBINED = """package main

deny contains {"msg": "too few replicas", "path": [i, "contents", "replicas"]} if {
\tsome i, entry in input
\tentry.contents.replicas < 2
}
"""


@pytest.mark.parametrize("in_git", [False, True])
def test_an_unreadable_file_under_combine_is_a_finding(
    repo: Repo, locked: list[Path], in_git: bool
) -> None:
    root = repo(
        {
            "policy/p.rego": COMBINED,
            "svc/locked.yml": "---\nreplicas: 1\n",
            "svc/one.yml": "---\nreplicas: 1\n",
            **OTHER,
        }
    )
    if in_git:
        init_repo(root)
    (root / "svc/locked.yml").chmod(0)
    locked.append(root / "svc/locked.yml")
    run = without_read_override(root, "validate", "--format", "json", "--no-cache", "--combine")
    assert run.code == 1, run.err
    assert ("svc/locked.yml", None, "unreadable") in where(run)
    assert message(run, "svc/locked.yml", "unreadable") == "cannot read: Permission denied"
    # The combined policy still saw the readable files.
    assert ("svc/one.yml", 2, "main.deny") in where(run)
    assert OTHER_SEEN in where(run)


def test_an_unreadable_file_outside_the_pr_is_a_finding_under_combine(
    tmp_path: Path, locked: list[Path]
) -> None:
    from tests.conftest import git, write_tree

    root = write_tree(
        tmp_path / "repo",
        {"policy/p.rego": COMBINED, "svc/locked.yml": "---\nreplicas: 1\n"},
    )
    init_repo(root)
    write_tree(root, {"svc/one.yml": "---\nreplicas: 1\n"})
    git(root, "add", "-A")
    (root / "svc/locked.yml").chmod(0)
    locked.append(root / "svc/locked.yml")
    run = without_read_override(
        root, "validate", "--format", "json", "--no-cache", "--combine", "--changed-since", "HEAD"
    )
    assert run.code == 1, run.err
    assert ("svc/locked.yml", None, "unreadable") in where(run)
    assert ("svc/one.yml", 2, "main.deny") in where(run)


# -- the guard itself ------------------------------------------------------------------


def test_an_unexpected_error_in_one_file_is_its_finding_and_the_run_goes_on(
    cli: Cli, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cd_checks.checks import syntax

    def broken(source: object, text: str, options: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setitem(syntax.PARSERS, "toml", broken)
    root = repo({"a.toml": "a = 1\n", **OTHER})
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert ("a.toml", None, "input/error") in where(run)
    text = message(run, "a.toml", "input/error")
    assert text.startswith("internal error while checking this file: KeyError: 'surprise' (at ")
    assert text.endswith("test_hostile_inputs.py:" + text.rsplit(":", 1)[1])
    assert text.endswith("; please report")
    assert OTHER_SEEN in where(run)


def test_a_value_error_in_one_file_says_which_value(
    cli: Cli, repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cd_checks.checks import syntax

    def broken(source: object, text: str, options: object) -> None:
        raise ValueError("month must be in 1..12")

    monkeypatch.setitem(syntax.PARSERS, "toml", broken)
    run = validate(cli, repo({"a.toml": "a = 1\n", **OTHER}))
    assert message(run, "a.toml", "input/error") == "a value cannot be read: month must be in 1..12"
    assert OTHER_SEEN in where(run)


# -- bounds: the same guard for every YAML the tool reads ------------------------------


def bomb(levels: int = 9) -> str:
    lines = ["x0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_a_one_kilobyte_alias_bomb_in_the_config_is_refused_at_once(cli: Cli, repo: Repo) -> None:
    from cd_checks import config

    text = "files:\n  max_size_mb: 5\n" + bomb()
    assert len(text) < 1100
    root = repo({"cd-checks.yml": text, **OTHER})
    started = time.perf_counter()
    with pytest.raises(config.ConfigError) as caught:
        config.load(root)
    elapsed = time.perf_counter() - started
    # Was 77 s and 0.9 GB; measured here ~1 ms. The bound only catches a regression.
    assert elapsed < 2.0, elapsed
    assert str(caught.value) == (
        f"{root / 'cd-checks.yml'}:1:1: aliases expand to more than 100,000 nodes (an alias bomb)"
    )
    run = cli("-C", root, "validate")
    assert run.code == 2 and run.err.startswith("cd-checks: error:")


def test_an_alias_bomb_in_policy_data_is_one_error_line(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "cd-checks.yml": "policy:\n  data: [data]\n",
            "policy/p.rego": 'package main\n\ndeny contains "x" if false\n',
            "data/bomb.yaml": bomb(),
            **OTHER,
        }
    )
    run = cli("-C", root, "validate", "--no-cache")
    assert run.code == 2
    assert run.err == (
        f"cd-checks: error: {root / 'data/bomb.yaml'}:1:1: aliases expand to more than "
        "100,000 nodes (an alias bomb)\n"
    )


def test_an_alias_bomb_in_a_yaml_schema_is_a_finding(cli: Cli, repo: Repo) -> None:
    root = repo(
        {
            "cd-checks.yml": "schema:\n  - {files: 'svc/*.yml', schema: s.yaml}\n",
            "svc/a.yml": "---\nname: a\n",
            "s.yaml": bomb(),
            **OTHER,
        }
    )
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert message(run, "s.yaml", "invalid-schema") == (
        "cannot read schema: aliases expand to more than 100,000 nodes (an alias bomb)"
    )
    assert OTHER_SEEN in where(run)


def test_an_alias_bomb_in_the_exceptions_file_is_a_finding(cli: Cli, repo: Repo) -> None:
    root = repo({".cd-checks-exceptions.yml": bomb(), **OTHER})
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert message(run, ".cd-checks-exceptions.yml", "exceptions/invalid") == (
        "the exceptions file: aliases expand to more than 100,000 nodes (an alias bomb)"
    )
    assert OTHER_SEEN in where(run)


def test_an_alias_bomb_in_the_yamllint_config_is_one_error_line(cli: Cli, repo: Repo) -> None:
    root = repo({".yamllint": "extends: default\n" + bomb(), **OTHER})
    run = cli("-C", root, "validate", "--no-cache")
    assert run.code == 2
    assert run.err == (
        "cd-checks: error: .yamllint: invalid yamllint config: aliases expand to more than "
        "100,000 nodes (an alias bomb)\n"
    )


def test_200_kb_of_deep_flow_yaml_is_refused_fast(cli: Cli, repo: Repo) -> None:
    deep = "---\na: " + "[" * 100_000 + "]" * 100_000 + "\n"
    assert len(deep) > 200_000
    root = repo({"deep.yml": deep, **OTHER})
    started = time.perf_counter()
    run = validate(cli, root)
    # yamllint's scanner took minutes on this (quadratic in open flow levels).
    assert time.perf_counter() - started < 20
    assert run.code == 1, run.err
    assert ("deep.yml", 2, "too-deep") in where(run)
    assert message(run, "deep.yml", "too-deep") == "nested deeper than 128 levels"
    assert OTHER_SEEN in where(run)


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("deep.yml", "---\na: " + "[" * 200 + "]" * 200 + "\n", 2),
        (
            "block.yml",
            "---\n" + "".join(" " * i + "k:\n" for i in range(200)) + " " * 200 + "v: 1\n",
            130,
        ),
        ("deep.json", '{"a": ' + "[" * 200 + "]" * 200 + "}", 1),
        ("deep.toml", "a = " + "[" * 200 + "]" * 200 + "\n", None),
    ],
)
def test_nesting_past_the_depth_limit_is_a_finding(
    cli: Cli, repo: Repo, name: str, content: str, line: int | None
) -> None:
    run = validate(cli, repo({name: content, **OTHER}))
    assert run.code == 1, run.err
    assert (name, line, "too-deep") in where(run)
    assert OTHER_SEEN in where(run)


def test_a_redos_pattern_in_a_schema_does_not_hang(cli: Cli, repo: Repo) -> None:
    schema = {"properties": {"name": {"type": "string", "pattern": "^(a|aa)+$"}}}
    root = schema_repo(repo, {"s.json": json.dumps(schema)})
    (root / "svc/b.yml").write_text("---\nname: " + "a" * 60 + "!\n")
    (root / "svc/c.yml").write_text("---\nname: " + "a" * 61 + "!\n")
    started = time.perf_counter()
    run = validate(cli, root)
    elapsed = time.perf_counter() - started
    assert run.code == 1, run.err
    # Python's re takes longer than the universe's age on 60 a's; one timeout, then
    # the pattern is known slow and the next file is told at once.
    assert elapsed < 15, elapsed
    expected = (
        "$.name: pattern '^(a|aa)+$' took more than 1 s on this value "
        "(catastrophic backtracking?); simplify the pattern"
    )
    assert message(run, "svc/b.yml", "pattern") == expected
    assert message(run, "svc/c.yml", "pattern") == expected
    assert ("svc/a.yml", 2, "pattern") not in where(run)  # 'a' matches, in time


def test_patterns_still_mean_what_they_meant(cli: Cli, repo: Repo) -> None:
    schema = {
        "properties": {"name": {"pattern": "^[a-z]+$"}},
        "patternProperties": {"^x-": {"type": "string"}},
        "additionalProperties": False,
    }
    root = schema_repo(repo, {"s.json": json.dumps(schema)})
    (root / "svc/a.yml").write_text("---\nname: Bad\nx-ok: 1\nextra: 2\n")
    run = validate(cli, root)
    messages = {str(f["message"]) for f in findings(run) if f["path"] == "svc/a.yml"}
    assert messages == {
        "$.name: 'Bad' does not match '^[a-z]+$'",
        "$['x-ok']: 1 is not of type 'string'",
        "$: 'extra' does not match any of the regexes: '^x-'",
    }


# -- JSON NaN/Infinity and duplicate keys ----------------------------------------------


def test_nan_and_infinity_are_not_json(cli: Cli, repo: Repo) -> None:
    root = repo({"nan.json": '{"a": 1,\n "b": NaN}\n', "inf.json": "[\n -Infinity]", **OTHER})
    run = validate(cli, root)
    assert run.code == 1, run.err
    assert {("nan.json", 2, "syntax"), ("inf.json", 2, "syntax")} <= where(run)
    assert message(run, "nan.json", "syntax") == "NaN is not valid JSON (RFC 8259)"
    assert message(run, "inf.json", "syntax") == "-Infinity is not valid JSON (RFC 8259)"


def test_duplicate_json_keys_are_findings_at_the_second_key(cli: Cli, repo: Repo) -> None:
    text = '{\n  "a": 1,\n  "b": {"x": 1, "y": 2},\n  "a": 2,\n  "c": {"x": 1, "x": 3}\n}\n'
    run = validate(cli, repo({"dup.json": text, **OTHER}))
    assert run.code == 1, run.err
    found = [
        (f["line"], f["column"], f["message"]) for f in findings(run) if f["path"] == "dup.json"
    ]
    assert found == [
        (4, 3, "duplicate key 'a' (the last value wins)"),
        (5, 17, "duplicate key 'x' (the last value wins)"),
    ]


def test_duplicate_yaml_keys_are_reported_by_yamllint(cli: Cli, repo: Repo) -> None:
    run = validate(cli, repo({"dup.yml": "---\na: 1\nb: 2\na: 3\n"}))
    assert where(run) == {("dup.yml", 4, "key-duplicates")}
