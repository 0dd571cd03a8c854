"""Progress lines: plain in CI, coloured on a terminal, same words either way."""

from __future__ import annotations

from cd_checks.rollout.progress import Event
from cd_checks.rollout.render import progress_line

MIDNIGHT = 0.0


def test_plain_progress_lines_name_stage_wave_host_step_and_result() -> None:
    event = Event("canary", 1, "lab-07", "apply", "failed", "exit 2")
    assert progress_line(event, colour=False, now=MIDNIGHT) == (
        "00:00:00 canary/1 lab-07 apply failed exit 2"
    )
    rollback = Event("canary", 0, "lab-07", "gate", "ok")
    assert (
        progress_line(rollback, colour=False, now=MIDNIGHT)
        == "00:00:00 canary/rollback lab-07 gate ok"
    )
    stage = Event("production", -1, "*", "known-good", "ok", "abc")
    assert (
        progress_line(stage, colour=False, now=MIDNIGHT)
        == "00:00:00 production * known-good ok abc"
    )


def test_colour_wraps_only_the_result() -> None:
    line = progress_line(Event("s", 1, "h", "apply", "ok"), colour=True, now=MIDNIGHT)
    assert line == "00:00:00 s/1 h apply \x1b[32mok\x1b[0m"
