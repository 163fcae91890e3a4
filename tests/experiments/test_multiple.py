"""Holm and Benjamini-Hochberg over the comparisons of an experiment."""

from __future__ import annotations

import math

import pytest

from experiments.multiple import adjust_p_values

P = [0.010, 0.040, 0.030, 0.200, 0.005]


def test_holm_multiplies_the_sorted_p_values_by_the_remaining_count_and_keeps_them_monotone():
    adjusted, reject = adjust_p_values(P, "holm", 0.05)
    # Sorted: 0.005 x5, 0.010 x4, 0.030 x3, 0.040 x2, 0.200 x1.
    assert adjusted == pytest.approx([0.040, 0.090, 0.090, 0.200, 0.025])
    assert reject == [True, False, False, False, True]


def test_benjamini_hochberg_rejects_more():
    adjusted, reject = adjust_p_values(P, "bh", 0.05)
    # Sorted p x m / rank, then the running minimum from the top: 0.025, 0.025, 0.05, 0.05, 0.2.
    assert adjusted == pytest.approx([0.025, 0.050, 0.050, 0.200, 0.025])
    assert reject == [True, True, True, False, True]


def test_a_comparison_without_an_estimate_is_not_a_test():
    adjusted, reject = adjust_p_values([0.01, math.nan, 0.04], "holm", 0.05)
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert reject == [True, False, True]


def test_no_correction_and_unknown_methods():
    assert adjust_p_values(P, "none", 0.05) == (P, [True, True, True, False, True])
    with pytest.raises(ValueError):
        adjust_p_values(P, "bonferonni", 0.05)  # type: ignore[arg-type]
