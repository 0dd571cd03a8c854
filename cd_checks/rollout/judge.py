"""The canary judge: canary samples against baseline samples, as Kayenta judges them.

A metric check with `compare: baseline` collects one value per interval from the
canary hosts and one from the unchanged (baseline) hosts over the same window.
This module turns the two series into a verdict, with rules a user can predict:

1. NaN and infinite values are dropped. Fewer than `min_samples` values left on
   either side: **inconclusive** ("3 canary and 4 baseline samples, need 5").
   (At alpha 0.05, 4 against 4 is the fewest that can ever fail: 3 against 3
   gives p = 0.05 at best.)
2. Every value the same on both sides: **pass** (nothing moved; the test has no
   variance to work with).
3. `max_ratio`: a one-sided Mann-Whitney U test that the canary is higher than
   the baseline (scipy's `mannwhitneyu`, alternative "greater"; exact for small
   samples without ties, else the normal approximation with tie and continuity
   correction). The check **fails** when p < `alpha` AND the ratio of medians
   (canary median / baseline median) is above `max_ratio`: a difference must be
   both significant and large, so a tiny but consistent shift passes, and so
   does a large one that noise explains.
4. `min_ratio`: the mirror (alternative "less", ratio below `min_ratio`).
5. Otherwise **pass**.

Ratio of medians when the baseline median is 0: 1.0 if the canary median is 0
too, else +inf (or -inf for a negative canary median). Ratios are meant for
non-negative metrics (rates, latencies, bytes). The test is rank based, so it
makes no assumption about the distribution and holds on small samples. scipy
is imported when a judgement is made, so `cd-checks validate` never loads it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
_WORDS = {"greater": "higher", "less": "lower"}


@dataclass(frozen=True)
class Judgement:
    verdict: str  # "pass" | "fail" | "inconclusive"
    detail: str
    p_value: float | None = None  # the smallest one-sided p-value computed
    ratio: float | None = None  # canary median / baseline median


def judge(
    canary: Sequence[float],
    baseline: Sequence[float],
    *,
    max_ratio: float | None = None,
    min_ratio: float | None = None,
    min_samples: int = 5,
    alpha: float = ALPHA,
) -> Judgement:
    """The verdict on the canary's samples against the baseline's (rules: module docstring)."""
    ours = [v for v in canary if math.isfinite(v)]
    theirs = [v for v in baseline if math.isfinite(v)]
    counts = f"{len(ours)} canary and {len(theirs)} baseline samples"
    need = max(1, min_samples)
    if len(ours) < need or len(theirs) < need:
        return Judgement("inconclusive", f"{counts}, need {need}")
    ratio = median_ratio(statistics.median(ours), statistics.median(theirs))
    medians = (
        f"canary median {statistics.median(ours):.4g}, baseline median"
        f" {statistics.median(theirs):.4g}, ratio {ratio:.4g}"
    )
    if len(set(ours) | set(theirs)) == 1:
        return Judgement("pass", f"{medians}; every sample the same ({counts})", 1.0, ratio)
    tests = [("greater", max_ratio), ("less", min_ratio)]
    p_values = {side: _p_value(ours, theirs, side) for side, limit in tests if limit is not None}
    for side, limit in tests:
        if limit is None:
            continue
        p = p_values[side]
        beyond = ratio > limit if side == "greater" else ratio < limit
        if p < alpha and beyond:
            word = "above max_ratio" if side == "greater" else "below min_ratio"
            detail = f"{medians} ({word} {limit:g}), p={p:.4g} < {alpha:g} ({counts})"
            return Judgement("fail", detail, p, ratio)
    p_min = min(p_values.values(), default=None)
    shown = ", ".join(f"p={p:.4g} that it is {_WORDS[side]}" for side, p in p_values.items())
    bounds = ", ".join(
        f"{word} {limit:g}"
        for word, limit in (("max_ratio", max_ratio), ("min_ratio", min_ratio))
        if limit is not None
    )
    detail = f"{medians} ({bounds}), {shown} ({counts})" if bounds else f"{medians} ({counts})"
    return Judgement("pass", detail, p_min, ratio)


def median_ratio(canary: float, baseline: float) -> float:
    """canary / baseline, with 0/0 = 1 and x/0 = +-inf."""
    if baseline == 0:
        return 1.0 if canary == 0 else math.copysign(math.inf, canary)
    return canary / baseline


def _p_value(canary: Sequence[float], baseline: Sequence[float], alternative: str) -> float:
    """One-sided Mann-Whitney U p-value that the canary is `alternative` than the baseline."""
    from scipy.stats import mannwhitneyu  # here: validate must not pay for importing scipy

    p = float(mannwhitneyu(canary, baseline, alternative=alternative).pvalue)
    # No evidence either way, never a silent failure: a p-value scipy cannot give is 1.
    return p if math.isfinite(p) else 1.0
