"""One experiment's analysis and the decision in words."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from experiments.analysis import analyse
from experiments.metrics import CONVERSION, LATENCY, REVENUE_PER_1000, Guardrail, Metric
from experiments.stats import VariantStats
from experiments.words import describe
from tests.experiments._fixtures import stats_with

N = 100_000
# Revenue per recommendation 0.1 (100 per 1,000); with this unit variance the lift's 95% half-width is 2.9%.
UNIT_VARIANCE = (0.029 / 1.959964) ** 2 * N / (1 / 0.1**2 + 0.1041**2 / 0.1**4)
LATENCY_GUARDRAIL = Guardrail(LATENCY, 0.05)


def _variant(revenue: float, latency_ms: float = 100.0, n: float = N, latency_n: float = N) -> dict[str, VariantStats]:
    return {"revenue_per_1000": stats_with(revenue, UNIT_VARIANCE, n),
            "latency_ms": stats_with(latency_ms, 400.0, latency_n)}


def _analyse(stats, **kwargs):
    options = {"control": "A", "weights": {name: 1.0 for name in stats}, "goal": REVENUE_PER_1000,
               "guardrails": [LATENCY_GUARDRAIL], "planned_n": 2 * N, "sequential": False} | kwargs
    return analyse(stats, **options)


def test_a_winner_in_words():
    analysis = _analyse({"A": _variant(0.1), "B": _variant(0.1041)})
    assert describe(analysis) == [
        "B raises revenue per 1,000 recommendations by 4.1% [1.2%, 7.0%], no guardrail harmed."]


def test_the_always_valid_interval_is_the_wider_one_in_words():
    # The same data, read with the test that allows looking every day: not yet a winner.
    analysis = _analyse({"A": _variant(0.1), "B": _variant(0.1041)}, sequential=True)
    effect = analysis.result("B", "revenue_per_1000").effect
    assert analysis.lift_interval(effect) == effect.lift_cs
    low, high = 100 * effect.lift_cs.low, 100 * effect.lift_cs.high
    assert low < 0 < 7.0 < high
    assert describe(analysis) == ["B shows no significant change in revenue per 1,000 recommendations "
                                  f"(+4.1% [{low:.1f}%, +{high:.1f}%]), no guardrail harmed."]


def test_a_loser_and_a_harmed_guardrail_in_words():
    analysis = _analyse({"A": _variant(0.1), "B": _variant(0.0959, latency_ms=110.0)})
    [sentence] = describe(analysis)
    assert sentence.startswith("B lowers revenue per 1,000 recommendations by 4.1% [1.3%, 6.9%]")
    latency = analysis.guardrails[0].effect.lift_ci
    assert 0.097 < latency.low < latency.high < 0.103
    assert sentence.endswith(f", but harms latency (+10.0% [+{100 * latency.low:.1f}%, +{100 * latency.high:.1f}%], "
                             "margin 5.0%).")


def test_an_undecided_guardrail_in_words():
    # Latency up 1% on 2,000 answers per arm: neither shown below the 2% margin nor shown to be worse.
    analysis = _analyse({"A": _variant(0.1, latency_n=2_000), "B": _variant(0.1041, latency_ms=101.0, latency_n=2_000)},
                        guardrails=[Guardrail(LATENCY, 0.02)])
    assert analysis.guardrails[0].check.status == "inconclusive"
    [sentence] = describe(analysis)
    assert sentence.endswith("no guardrail harmed so far (latency not yet shown within its margin).")


def test_the_sample_ratio_warning_comes_first():
    analysis = _analyse({"A": _variant(0.1, n=10_500), "B": _variant(0.1041, n=9_500)})
    assert analysis.srm.mismatch
    warning, sentence = describe(analysis)
    assert warning.startswith("Sample ratio mismatch (chi-square p = ")
    assert "A 10,500 (52.5%, expected 50.0%), B 9,500 (47.5%, expected 50.0%)" in warning
    assert sentence.startswith("B ")
    assert describe(_analyse({"A": _variant(0.1, n=10_050), "B": _variant(0.1041, n=9_950)}))[0].startswith("B ")


def test_a_raw_winner_that_the_correction_takes_back_is_not_a_winner():
    # The goal's raw p-value is about 0.02; three more comparisons make Holm's 0.08.
    flat = 0.1
    stats = {"A": _variant(flat) | {"conversion": stats_with(0.05, 0.0475, N)},
             "B": _variant(0.1 * (1 + 2.33 * 0.0148 / 1.0)) | {"conversion": stats_with(0.05, 0.0475, N)},
             "C": _variant(flat) | {"conversion": stats_with(0.05, 0.0475, N)}}
    plain_conversion = Metric("conversion", "conversion")
    analysis = _analyse(stats, secondary=[plain_conversion], guardrails=[])
    goal = analysis.result("B", "revenue_per_1000")
    assert 0.01 < goal.effect.p_value < 0.05 and not goal.significant
    assert goal.p_adjusted == pytest.approx(4 * goal.effect.p_value)
    [b, c] = describe(analysis)
    assert b.startswith("B shows no significant change in revenue per 1,000 recommendations (+3.4% [")
    assert b.endswith(", not significant after Holm across 4 comparisons).")
    assert c.startswith("C shows no significant change in revenue per 1,000 recommendations (+0.0% [")


def test_analysis_of_simulated_rows_corrects_over_metrics_and_variants():
    rng = np.random.default_rng(50)

    def rows(n: int, revenue_lift: float) -> dict[str, VariantStats]:
        recommendations = (1 + rng.poisson(4, n)).astype(float)
        taste = rng.lognormal(0, 0.5, n)
        revenue = rng.poisson(0.05 * taste * recommendations * revenue_lift) * rng.lognormal(3, 0.7, n)
        bought_before = (rng.random(n) < 0.1 * taste).astype(float)
        bought = (rng.random(n) < 0.08 * taste + 0.3 * bought_before).astype(float)
        latency = recommendations * rng.normal(30, 5, n)
        return {"revenue_per_1000": VariantStats.from_rows(revenue, recommendations),
                "conversion": VariantStats.from_rows(bought, covariate=bought_before),
                "latency_ms": VariantStats.from_rows(latency, recommendations)}

    stats = {"A": rows(20_000, 1.0), "B": rows(20_000, 1.25), "C": rows(20_000, 1.0)}
    analysis = analyse(stats, control="A", weights={"A": 1, "B": 1, "C": 1}, goal=REVENUE_PER_1000,
                       secondary=[CONVERSION], guardrails=[LATENCY_GUARDRAIL], planned_n=60_000,
                       correction="bh")
    raw = [r.effect.p_value_sequential for r in analysis.results]
    assert [r.p_adjusted for r in analysis.results] == pytest.approx(multipletests(raw, method="fdr_bh")[1].tolist())
    assert analysis.result("B", "revenue_per_1000").significant
    assert not analysis.result("C", "revenue_per_1000").significant
    assert analysis.result("B", "conversion").theta > 0
    assert all(g.check.status == "within_margin" for g in analysis.guardrails)
    assert not analysis.srm.mismatch
    b, c = describe(analysis)
    assert b.startswith("B raises revenue per 1,000 recommendations by ") and b.endswith("no guardrail harmed.")
    assert c.startswith("C shows no significant change in revenue per 1,000 recommendations")


def test_statistics_missing_for_a_metric_are_refused():
    with pytest.raises(ValueError, match="conversion"):
        _analyse({"A": _variant(0.1), "B": _variant(0.1)}, secondary=[CONVERSION])
    with pytest.raises(ValueError, match="CUPED"):
        Metric("ctr", "click-through", kind="ratio", cuped=True)
