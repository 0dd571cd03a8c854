"""cd-checks validates its own repository: templates, actions, examples, policies."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import REPO, Run


def test_the_project_passes_its_own_checks(cli: Callable[..., Run]) -> None:
    run = cli("-C", REPO, "validate", "--no-cache")
    assert run.code == 0, run.out
    assert run.out.startswith("no problems in ")
