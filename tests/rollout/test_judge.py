"""The canary judge on synthetic samples: regression, noise, too few, small shifts, zeros."""

from __future__ import annotations

import math
import random

import pytest

from cd_checks.rollout.judge import judge, median_ratio


def normal(mean: float, sd: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_a_clear_regression_fails_naming_medians_ratio_and_p_value() -> None:
    canary = [0.20, 0.21, 0.19, 0.22, 0.20, 0.18]
    baseline = [0.10, 0.11, 0.09, 0.10, 0.12, 0.10]
    result = judge(canary, baseline, max_ratio=1.2)
    assert result.verdict == "fail"
    assert result.ratio == pytest.approx(2.0)
    assert result.p_value is not None and result.p_value < 0.01
    assert result.detail.startswith(
        "canary median 0.2, baseline median 0.1, ratio 2 (above max_ratio 1.2), p="
    )
    assert result.detail.endswith(" < 0.05 (6 canary and 6 baseline samples)")


def test_noise_from_the_same_distribution_passes() -> None:
    canary, baseline = normal(0.1, 0.01, 12, 1), normal(0.1, 0.01, 12, 2)
    result = judge(canary, baseline, max_ratio=1.2, min_ratio=0.8)
    assert result.verdict == "pass"
    assert "12 canary and 12 baseline samples" in result.detail


def test_noise_rarely_fails_even_when_it_is_large() -> None:
    # Failing needs significance (p < 0.05) AND a large ratio: noisy samples (30 % spread)
    # from one distribution fail in fewer than 5 % of windows.
    fails = sum(
        judge(normal(0.1, 0.03, 12, s), normal(0.1, 0.03, 12, s + 1000), max_ratio=1.2).verdict
        == "fail"
        for s in range(200)
    )
    assert fails < 10


def test_too_few_samples_on_either_side_is_inconclusive() -> None:
    result = judge([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], max_ratio=1.2)
    assert result.verdict == "inconclusive"
    assert result.detail == "3 canary and 4 baseline samples, need 5"
    assert result.p_value is None


def test_nan_and_inf_do_not_count_as_samples() -> None:
    canary = [0.2] * 4 + [math.nan, math.inf, -math.inf]
    result = judge(canary, [0.1] * 9, max_ratio=1.2)
    assert (result.verdict, result.detail) == (
        "inconclusive",
        "4 canary and 9 baseline samples, need 5",
    )


def test_min_samples_is_configurable() -> None:
    assert judge([5.0, 6.0, 7.0, 8.0], [1.0, 1.1, 0.9, 1.2], max_ratio=1.2).verdict == (
        "inconclusive"
    )
    result = judge([5.0, 6.0, 7.0, 8.0], [1.0, 1.1, 0.9, 1.2], max_ratio=1.2, min_samples=4)
    assert result.verdict == "fail"  # exact p = 1/70: 4 against 4 is the fewest that can fail


def test_a_significant_but_small_shift_under_max_ratio_passes() -> None:
    canary, baseline = normal(1.05, 0.005, 15, 3), normal(1.0, 0.005, 15, 4)
    result = judge(canary, baseline, max_ratio=1.2)
    assert result.p_value is not None and result.p_value < 0.001  # significant ...
    assert result.verdict == "pass"  # ... but 5 % is within the allowed 20 %
    assert "max_ratio 1.2" in result.detail and "that it is higher" in result.detail


def test_a_large_shift_without_significance_passes() -> None:
    # Two samples far apart, three close: medians differ a lot, ranks do not.
    result = judge([1.0, 1.1, 9.0, 9.1, 9.2], [1.0, 1.05, 1.1, 9.0, 9.05], max_ratio=1.2)
    assert result.ratio is not None and result.ratio > 1.2
    assert result.verdict == "pass"


def test_min_ratio_is_the_mirror() -> None:
    lower, usual = normal(50.0, 2.0, 10, 5), normal(100.0, 2.0, 10, 6)
    result = judge(lower, usual, min_ratio=0.8)
    assert result.verdict == "fail" and "below min_ratio 0.8" in result.detail
    # the other way round is no failure for a min_ratio check ...
    assert judge(usual, lower, min_ratio=0.8).verdict == "pass"
    # ... and a lower canary is no failure for a max_ratio check
    assert judge(lower, usual, max_ratio=1.2).verdict == "pass"


def test_both_bounds_report_both_p_values() -> None:
    result = judge(normal(1.0, 0.1, 8, 7), normal(1.0, 0.1, 8, 8), max_ratio=1.5, min_ratio=0.5)
    assert result.verdict == "pass"
    assert "that it is higher" in result.detail and "that it is lower" in result.detail


def test_a_zero_baseline_gives_an_infinite_ratio_when_the_canary_is_above_it() -> None:
    errors = [0.01, 0.02, 0.015, 0.03, 0.02, 0.01]
    result = judge(errors, [0.0] * 6, max_ratio=1.2)
    assert result.verdict == "fail"
    assert result.ratio == math.inf and "ratio inf" in result.detail


def test_zero_against_zero_is_a_ratio_of_one() -> None:
    result = judge([0.0] * 6, [0.0] * 5 + [0.001], max_ratio=1.2)
    assert result.verdict == "pass" and result.ratio == 1.0


def test_identical_constants_on_both_sides_pass() -> None:
    result = judge([3.0] * 7, [3.0] * 7, max_ratio=1.2, min_ratio=0.8)
    assert result.verdict == "pass"
    assert result.p_value == 1.0 and result.ratio == 1.0
    assert "every sample the same" in result.detail


def test_different_constants_are_judged() -> None:
    assert judge([2.0] * 6, [1.0] * 6, max_ratio=1.2).verdict == "fail"
    assert judge([1.1] * 6, [1.0] * 6, max_ratio=1.2).verdict == "pass"


@pytest.mark.parametrize(
    ("canary", "baseline", "ratio"),
    [(0.0, 0.0, 1.0), (1.0, 0.0, math.inf), (-1.0, 0.0, -math.inf), (3.0, 2.0, 1.5)],
)
def test_median_ratio(canary: float, baseline: float, ratio: float) -> None:
    assert median_ratio(canary, baseline) == ratio
