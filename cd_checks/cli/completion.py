"""`cd-checks completion bash|zsh|fish`: print the shell completion script.

The script calls `cd-checks` back with `_CD_CHECKS_COMPLETE` set; click's
shell completion machinery answers those calls in `cli.main`, so completions
always match the installed version's commands and options.
"""

from __future__ import annotations

import click

from cd_checks.cli import examples

SHELLS = ("bash", "zsh", "fish")


@click.command(
    epilog=examples(
        'eval "$(cd-checks completion bash)"                   # in ~/.bashrc',
        'eval "$(cd-checks completion zsh)"                    # in ~/.zshrc, after compinit',
        "cd-checks completion fish > ~/.config/fish/completions/cd-checks.fish",
    )
)
@click.argument("shell", type=click.Choice(SHELLS), metavar="SHELL")
def completion(shell: str) -> None:
    """Print the completion script for SHELL; source it or save it where SHELL looks."""
    from click.shell_completion import get_completion_class

    from cd_checks.cli import COMPLETE_VAR, PROG_NAME, cli

    complete = get_completion_class(shell)
    if complete is None:  # every name in SHELLS is one click ships; guard a future click
        raise click.BadParameter(f"no completion for {shell!r}", param_hint="SHELL")
    click.echo(complete(cli, {}, PROG_NAME, COMPLETE_VAR).source())
