"""Every shell command in the README names a real command, real options and real make targets.

The README's ```sh blocks are what users paste. Each `cd-checks …` line is resolved through
the real click command tree: the subcommand path must exist and every option given must be
one that command accepts (so a renamed flag cannot leave the README stale). Each `make X`
names a target of the Makefile. The commands themselves run in the tests of their area
(validate, rollout, lab, audit); the Quick start runs in CI.

Conventions of the README's own usage lines, undone before checking: `[...]` marks an
optional part, `a|b` alternatives (the first is checked), UPPER_CASE words are placeholders.
"""

from __future__ import annotations

import re
import shlex

import click
import pytest

from cd_checks import cli as cli_module
from tests.conftest import REPO

README = (REPO / "README.md").read_text("utf-8")
BLOCKS = re.findall(r"```(?:sh|bash|shell|console)\n(.*?)```", README, re.S)


def _commands() -> list[str]:
    found = []
    for block in BLOCKS:
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#") or not line:
                continue
            found += [part.strip() for part in line.split("&&")]
    return found


COMMANDS = _commands()
CD_CHECKS = [c for c in COMMANDS if re.match(r"(\S*/)?cd-checks\s", c)]
MAKE = [c for c in COMMANDS if c.startswith("make ")]


def _words(command: str) -> list[str]:
    command = command.replace("[", "").replace("]", "")
    return [word.split("|", 1)[0] for word in shlex.split(command)[1:]]


def _leaf(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The command a word list reaches, its path, and the words left for it."""
    command: click.Command = cli_module.cli
    path: list[str] = []
    rest = list(words)
    ctx = click.Context(command)
    while isinstance(command, click.Group):
        rest = _skip_options(command, rest)
        if not rest:
            break
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"no command {' '.join([*path, rest[0]])!r}"
        path.append(rest.pop(0))
        command = sub
    return command, path, rest


def _skip_options(command: click.Command, words: list[str]) -> list[str]:
    """Drop the group's own leading options (`-C DIR`, `--color never`), checking each."""
    options = {o: p for p in command.params for o in [*p.opts, *p.secondary_opts]}
    while words and words[0].startswith("-"):
        name = words.pop(0).split("=", 1)[0]
        assert name in options, f"cd-checks has no global option {name}"
        param = options[name]
        if isinstance(param, click.Option) and not param.is_flag and "=" not in name and words:
            words.pop(0)
    return words


def test_the_readme_has_commands_to_check() -> None:
    assert len(CD_CHECKS) >= 20 and MAKE


@pytest.mark.parametrize("command", CD_CHECKS)
def test_each_cd_checks_command_exists_with_the_options_given(command: str) -> None:
    leaf, path, rest = _leaf(_words(command))
    assert path, command
    accepted = {o for p in leaf.params for o in [*p.opts, *p.secondary_opts]} | {"-h", "--help"}
    for word in rest:
        if word.startswith("-") and word != "-":
            name = word.split("=", 1)[0]
            assert name in accepted, f"`cd-checks {' '.join(path)}` has no option {name}"


@pytest.mark.parametrize("command", MAKE)
def test_each_make_target_exists(command: str) -> None:
    makefile = (REPO / "Makefile").read_text("utf-8")
    for target in shlex.split(command)[1:]:
        if "=" in target:  # a variable, e.g. CONSTRAINTS=constraints.txt
            continue
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target}"
