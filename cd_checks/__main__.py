"""`python -m cd_checks` is the same as the `cd-checks` command."""

from cd_checks.cli import run

run()
