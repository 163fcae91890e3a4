"""Guardrails as non-inferiority tests with a margin."""

from __future__ import annotations

import pytest

from experiments.compare import compare
from experiments.guardrails import non_inferiority
from experiments.metrics import Guardrail, Metric
from experiments.stats import ratio_estimate
from tests.experiments._fixtures import stats_with


def _latency_effect(control_ms: float, treatment_ms: float, n: float, sd: float = 20.0, sequential_n: float = 0):
    control = ratio_estimate(stats_with(control_ms, sd**2, n))
    treatment = ratio_estimate(stats_with(treatment_ms, sd**2, n))
    return compare(control, treatment, planned_n=sequential_n or 2 * n)


@pytest.mark.parametrize("sequential", [False, True])
def test_a_small_rise_within_the_margin_passes(sequential):
    check = non_inferiority(_latency_effect(100.0, 101.0, 50_000), 0.05, higher_is_better=False, sequential=sequential)
    assert check.status == "within_margin"
    assert check.worsening == pytest.approx(0.01)
    assert check.interval.high < 0.05 and check.p_value < 0.05


@pytest.mark.parametrize("sequential", [False, True])
def test_a_clear_rise_harms_the_guardrail(sequential):
    check = non_inferiority(_latency_effect(100.0, 110.0, 50_000), 0.05, higher_is_better=False, sequential=sequential)
    assert check.status == "harmed"
    assert check.interval.low > 0 and check.p_value > 0.5


def test_too_few_units_decide_nothing_yet():
    check = non_inferiority(_latency_effect(100.0, 102.0, 300), 0.05, higher_is_better=False, sequential=True)
    assert check.status == "inconclusive"
    assert check.interval.low < 0 < 0.05 < check.interval.high


def test_for_a_higher_is_better_metric_a_fall_is_the_worsening():
    effect = _latency_effect(100.0, 97.0, 50_000)
    assert non_inferiority(effect, 0.05, higher_is_better=True, sequential=False).worsening == pytest.approx(0.03)
    assert non_inferiority(effect, 0.05, higher_is_better=True, sequential=False).status == "within_margin"
    assert non_inferiority(effect, 0.01, higher_is_better=True, sequential=False).status == "harmed"


def test_the_always_valid_bounds_are_wider_than_the_fixed_ones():
    effect = _latency_effect(100.0, 101.0, 50_000)
    fixed = non_inferiority(effect, 0.05, higher_is_better=False, sequential=False)
    always = non_inferiority(effect, 0.05, higher_is_better=False, sequential=True)
    assert always.interval.high > fixed.interval.high and always.p_value > fixed.p_value


def test_a_guardrail_needs_a_positive_margin():
    with pytest.raises(ValueError):
        Guardrail(Metric("latency_ms", "latency", kind="ratio", higher_is_better=False), 0.0)
