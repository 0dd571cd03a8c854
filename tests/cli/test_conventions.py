"""CLI conventions every command shares, as a user meets them at a shell.

Usage errors are one `cd-checks: error:` line plus a hint (exit 2), with "did
you mean" for a mistyped command, option or config key; colour follows
`--color`, NO_COLOR (no-color.org), FORCE_COLOR and TERM=dumb, on a real
terminal or a pipe; `cd-checks completion SHELL` prints a script that works in
bash; every `--help` ends with examples that parse.
"""

from __future__ import annotations

import os
import pty
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import click
import pytest
import yaml

from cd_checks.cli import COMMANDS, cli
from tests.conftest import REPO, Run

Cli = Callable[..., Run]
ANSI = "\x1b["
COLOUR_VARIABLES = ("NO_COLOR", "FORCE_COLOR", "TERM", "CLICOLOR", "CLICOLOR_FORCE")


# --- usage errors: one line and a hint --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (
            ["validate", "--formt", "json"],
            "no such option '--formt'. Did you mean '--format'?",
            "cd-checks validate --help",
        ),
        (["vaildate"], "no such command 'vaildate'. Did you mean 'validate'?", "cd-checks --help"),
        (
            ["rolout", "plan"],
            "no such command 'rolout'. Did you mean 'rollout'?",
            "cd-checks --help",
        ),
        (
            ["roll"],
            "no such command 'roll'. Did you mean 'rollout' or 'rollback'?",
            "cd-checks --help",
        ),
        (
            ["--colr", "never"],
            "no such option '--colr'. Did you mean '--color'?",
            "cd-checks --help",
        ),
        (
            ["validate", "--format", "xml"],
            "invalid value for '--format': 'xml' is not one of "
            "'text', 'json', 'junit', 'sarif', 'github', 'gitlab', 'conftest-json', 'tap', "
            "'table'.",
            "cd-checks validate --help",
        ),
        (["audit", "show"], "missing argument 'ID'.", "cd-checks audit show --help"),
        # click raises this one without its context: the hint still names the subcommand.
        (
            ["rollout", "run", "--stage"],
            "option '--stage' requires an argument.",
            "cd-checks rollout run --help",
        ),
        (
            ["policy", "test", "--bogus"],
            "no such option '--bogus'.",
            "cd-checks policy test --help",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_a_hint(
    cli: Cli, args: list[str], error: str, hint: str
) -> None:
    run = cli(*args)
    assert run.code == 2 and run.out == ""
    assert run.err.splitlines() == [f"cd-checks: error: {error}", f"Try '{hint}'."]


def test_a_usage_error_from_the_installed_command(tmp_path: Path) -> None:
    done = _process(["policy", "tset"], cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[0].startswith("cd-checks: error: no such command 'tset'.")
    assert done.stderr.splitlines()[1:] == ["Try 'cd-checks policy --help'."]


def test_an_error_line_naming_a_hostile_path_stays_one_inert_line(cli: Cli, tmp_path: Path) -> None:
    # A path is anything a repository holds: escape codes, a carriage return, a
    # GitHub Actions workflow command (`##[` acts anywhere on a line).
    name = "a\033]8;;x\007\r##[add-mask]b"
    run = cli("validate", tmp_path / name / "gone.yml")
    assert run.code == 2 and run.out == ""
    assert run.err.count("\n") == 1 and run.err.startswith("cd-checks: error: ")
    assert "\033" not in run.err and "\r" not in run.err and "##[" not in run.err
    assert "a\\033]8;;x\\a\\r##\\133add-mask]b/gone.yml" in run.err


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("files: {inclde: ['*']}\n", "unknown key 'inclde' in files; did you mean 'include'?"),
        ("rolout: {}\n", "unknown key 'rolout' in (top level); did you mean 'rollout'?"),
        (
            "files: {exlude: [], inclde: ['*'], zzz: 1}\n",
            "unknown key 'exlude', 'inclde', 'zzz' in files; "
            "did you mean 'exclude' for 'exlude', 'include' for 'inclde'?",
        ),
        ("files: {zzz: 1}\n", "unknown key 'zzz' in files"),
    ],
)
def test_an_unknown_config_key_suggests_the_known_one(
    cli: Cli, repo: Callable[..., Path], config: str, message: str
) -> None:
    root = repo({"cd-checks.yml": config, "a.yml": "---\na: 1\n"})
    run = cli("-C", root, "validate")
    assert run.code == 2
    assert run.err == f"cd-checks: error: {root / 'cd-checks.yml'}: {message}\n"


# --- colour -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finding_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("colour")
    (root / "a.yml").write_text("---\nkey: value   \n", "utf-8")  # trailing spaces: an error
    return root


@pytest.mark.parametrize(
    ("terminal", "env", "flags", "coloured"),
    [
        (True, {}, [], True),
        (True, {"NO_COLOR": ""}, [], True),  # no-color.org: only a non-empty value counts
        (True, {"NO_COLOR": "1"}, [], False),
        (True, {"TERM": "dumb"}, [], False),
        (True, {}, ["--color", "never"], False),
        (True, {"NO_COLOR": "1"}, ["--color", "always"], True),  # the flag beats the environment
        (False, {}, [], False),
        (False, {"FORCE_COLOR": "1"}, [], True),
        (False, {"FORCE_COLOR": ""}, [], False),
        (False, {"FORCE_COLOR": "1", "TERM": "dumb"}, [], True),
        (False, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, [], False),  # as pytest: NO_COLOR wins
        (False, {}, ["--color", "always"], True),
        (False, {"FORCE_COLOR": "1"}, ["--color", "never"], False),
        (False, {}, ["--color", "auto"], False),
    ],
)
def test_colour_follows_the_flag_and_the_environment(
    finding_repo: Path, terminal: bool, env: dict[str, str], flags: list[str], coloured: bool
) -> None:
    args = [*flags, "-C", str(finding_repo), "validate"]
    if terminal:
        code, out = _on_terminal(args, env=env)
    else:
        done = _process(args, env=env)
        code, out = done.returncode, done.stdout
    assert code == 1 and "a.yml:2:11" in out
    assert (ANSI in out) is coloured, out


def test_a_report_file_is_never_coloured(cli: Cli, finding_repo: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    run = cli("--color", "always", "-C", finding_repo, "validate", "-o", report)
    assert run.code == 1 and "a.yml:2:11" in report.read_text("utf-8")
    assert ANSI not in report.read_text("utf-8")


def test_rollout_progress_colour_follows_the_same_rules(tmp_path: Path) -> None:
    root = _rollout_repo(tmp_path)
    args = ["-C", str(root), "rollout", "run", "--stage", "staging"]
    forced = _process(args, env={"FORCE_COLOR": "1"})
    assert forced.returncode == 0, forced.stderr
    assert re.search(r"staging/1 host-1 apply \x1b\[32mok\x1b\[0m", forced.stderr), forced.stderr
    plain = _process([*args[:2], "--color", "never", *args[2:]], env={"FORCE_COLOR": "1"})
    assert plain.returncode == 0, plain.stderr
    assert "staging/1 host-1 apply ok" in plain.stderr and ANSI not in plain.stderr


def test_nothing_below_the_cli_decides_colour() -> None:
    package = REPO / "cd_checks"
    readers = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "cli" not in path.relative_to(package).parts
        and re.search(r"isatty\(|os\.environ.*COLOR|getenv\(.*COLOR", path.read_text("utf-8"))
    ]
    assert readers == []


# --- shell completion ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _cd_checks_completion cd-checks"),
        ("zsh", "#compdef cd-checks"),
        ("fish", "complete --no-files --command cd-checks"),
    ],
)
def test_completion_prints_the_script_for_each_shell(cli: Cli, shell: str, marker: str) -> None:
    run = cli("completion", shell)
    assert run.code == 0 and run.err == ""
    assert marker in run.out and f"_CD_CHECKS_COMPLETE={shell}_complete" in run.out


def test_completion_of_an_unknown_shell_is_a_usage_error(cli: Cli) -> None:
    run = cli("completion", "tcsh")
    assert run.code == 2
    assert run.err.splitlines() == [
        "cd-checks: error: invalid value for 'SHELL': 'tcsh' is not one of 'bash', 'zsh', 'fish'.",
        "Try 'cd-checks completion --help'.",
    ]


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("cd-checks vali", ["validate"]),
        ("cd-checks roll", ["rollback", "rollout"]),
        ("cd-checks validate --format s", ["sarif"]),
        ("cd-checks --color n", ["never"]),
        ("cd-checks rollout ", ["plan", "run"]),
    ],
)
def test_bash_completes_from_the_installed_script(
    tmp_path: Path, words: str, expected: list[str]
) -> None:
    """Source `cd-checks completion bash` in a real bash and ask it, as <TAB> does."""
    script = tmp_path / "cd-checks.bash"
    script.write_text(_process(["completion", "bash"]).stdout, "utf-8")
    typed = shlex.split(words) + ([""] if words.endswith(" ") else [])  # "" : a new word
    ask = (
        f'source "$1"; COMP_WORDS=({shlex.join(typed)}); '
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _cd_checks_completion cd-checks; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    done = subprocess.run(
        ["bash", "--norc", "-c", ask, "bash", str(script)],
        capture_output=True,
        text=True,
        env=_env({}),
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == expected


# --- help: examples -----------------------------------------------------------------------------


def _commands() -> Iterator[tuple[str, ...]]:
    """Every command path: the top level, each registered command and each subcommand."""
    yield ()
    ctx = click.Context(cli, info_name="cd-checks")
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        yield (name,)
        if isinstance(command, click.Group):
            yield from ((name, sub) for sub in command.list_commands(ctx))


@pytest.mark.parametrize("path", list(_commands()), ids=lambda p: " ".join(p) or "cd-checks")
def test_help_shows_examples_that_parse(cli: Cli, path: tuple[str, ...]) -> None:
    run = cli(*path, "--help")
    assert run.code == 0
    examples = _examples(run.out)
    assert 2 <= len(examples) <= 3, run.out
    for example in examples:
        args = _command_line(example)
        command = _parse(args)
        if not isinstance(command, click.Group) and path:
            assert args[: len(path)] == list(path), f"{example!r} in the help of {path}"


def test_top_level_help_lists_the_conventions(cli: Cli) -> None:
    out = cli("--help").out
    assert "--color [auto|always|never]" in out
    assert "completion" in out and "Examples:" in out


def _examples(help_text: str) -> list[str]:
    lines = help_text.split("Examples:\n", 1)[1].splitlines() if "Examples:" in help_text else []
    return [line.strip() for line in lines if line.strip()]


def _command_line(example: str) -> list[str]:
    """The cd-checks arguments of an example line, without shell redirections or comments."""
    inner = re.search(r"\$\((cd-checks [^)]*)\)", example)
    tokens = shlex.split(inner.group(1) if inner else example, comments=True)
    assert tokens[0] == "cd-checks", example
    for stop in (">", "|", "||", "&&", ";"):
        tokens = tokens[: tokens.index(stop)] if stop in tokens else tokens
    return tokens[1:]


def _parse(args: list[str]) -> click.Command:
    """Parse ARGS against the command they name, as click would before running it."""
    ctx = click.Context(cli, info_name="cd-checks")
    command: click.Command = cli
    rest = list(args)
    while isinstance(command, click.Group):
        found = command.get_command(ctx, rest[0])
        assert found is not None, args
        name, command = rest.pop(0), found
    command.make_context(name, rest)
    return command


# --- running cd-checks as a user does -----------------------------------------------------------


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    """The test's environment without colour settings, the venv's `cd-checks` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in COLOUR_VARIABLES}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return {**env, **extra}


def _process(
    args: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cd_checks", *args],
        capture_output=True,
        text=True,
        env=_env(env or {}),
        cwd=cwd,
        check=False,
    )


def _on_terminal(args: list[str], *, env: Mapping[str, str]) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal, as at a shell prompt."""
    master, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cd_checks", *args],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=_env({"TERM": "xterm-256color", **env}),
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


DEPLOY = """\
import pathlib, sys
for host in sys.argv[1].split(","):
    pathlib.Path(sys.argv[2], host).write_text(sys.argv[3])
"""


def _rollout_repo(tmp_path: Path) -> Path:
    """A git repository whose staging stage deploys with a local command (no SSH)."""
    from tests.conftest import init_repo, write_tree
    from tests.rollout.repo_files import YAMLLINT

    fleet = tmp_path / "fleet"
    fleet.mkdir()
    deploy = [sys.executable, "deploy.py", "{hosts}", str(fleet), "{revision}"]
    rollout = {
        "inventory": "inventory.yml",
        "apply": {"command": deploy},
        "stages": [{"name": "staging", "hosts": "staging"}],
    }
    config = yaml.safe_dump({"rollout": rollout})
    inventory = "all:\n  children:\n    staging:\n      hosts:\n        host-1: {}\n"
    files = {
        "cd-checks.yml": config,
        "inventory.yml": inventory,
        "deploy.py": DEPLOY,
        ".yamllint": YAMLLINT,
        ".gitignore": ".cd-checks/\n",
    }
    return init_repo(write_tree(tmp_path / "repo", files))
