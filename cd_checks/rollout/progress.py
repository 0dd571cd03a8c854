"""Progress events: what a rollout is doing, host by host, as it happens.

The engine, appliers and gates call a `Reporter` with `Event`s; the CLI
decides how to show them (plain lines in CI, colour on a terminal). Nothing
here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One step on one host (or `*` for a whole wave): `result` is start/ok/failed/info.

    `wave` is the wave number (1-based); 0 means the rollback of the stage and -1
    an event of the whole stage (such as recording the known-good revision).
    """

    stage: str
    wave: int
    host: str
    step: str
    result: str
    detail: str = ""


Reporter = Callable[[Event], None]


def silent(event: Event) -> None:
    """A reporter that drops every event (library use, unit tests)."""
