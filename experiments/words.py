"""The decision in words, as the results page states it:

    "B raises revenue per 1,000 recommendations by 4.1% [1.2%, 7.0%], no guardrail harmed."

with the sample-ratio warning first when it fires. Intervals are the relative lift's, from the test the
analysis uses (the confidence sequence when sequential); "raises" and "lowers" need the corrected p-value
below alpha.
"""

from __future__ import annotations

from experiments.analysis import Analysis, GuardrailResult, MetricResult
from experiments.compare import Interval


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _signed(x: float) -> str:
    return f"{100 * x:+.1f}%"


def _magnitude(lift: float, interval: Interval) -> str:
    """'4.1% [1.2%, 7.0%]' for a rise; for a fall the same in absolute values, the interval turned round."""
    if lift >= 0:
        return f"{_pct(lift)} [{_pct(interval.low)}, {_pct(interval.high)}]"
    return f"{_pct(-lift)} [{_pct(-interval.high)}, {_pct(-interval.low)}]"


def _change(analysis: Analysis, result: MetricResult) -> str:
    effect, label = result.effect, result.metric.label
    interval = analysis.lift_interval(effect)
    if result.significant:
        verb = "raises" if effect.lift > 0 else "lowers"
        return f"{verb} {label} by {_magnitude(float(effect.lift), interval)}"
    text = (f"shows no significant change in {label} "
            f"({_signed(float(effect.lift))} [{_signed(float(interval.low))}, {_signed(float(interval.high))}]")
    compared = len(analysis.results)
    if analysis.correction != "none" and compared > 1 and analysis.p_value(effect) <= analysis.alpha:
        name = "Holm" if analysis.correction == "holm" else "Benjamini-Hochberg"
        text += f", not significant after {name} across {compared} comparisons"
    return text + ")"


def _guardrail(analysis: Analysis, check: GuardrailResult) -> str:
    """'latency (+7.3% [2.0%, 12.6%], margin 5.0%)': the metric's own change, as the goal's is shown."""
    lift, interval = float(check.effect.lift), analysis.lift_interval(check.effect)
    return (f"{check.guardrail.metric.label} ({_signed(lift)} [{_signed(float(interval.low))}, "
            f"{_signed(float(interval.high))}], margin {_pct(check.check.margin)})")


def _guardrail_clause(analysis: Analysis, variant: str) -> str:
    mine = [g for g in analysis.guardrails if g.variant == variant]
    if not mine:
        return ""
    harmed = [g for g in mine if g.check.status == "harmed"]
    if harmed:
        return ", but harms " + " and ".join(_guardrail(analysis, g) for g in harmed)
    undecided = [g for g in mine if g.check.status == "inconclusive"]
    if undecided:
        names = ", ".join(g.guardrail.metric.label for g in undecided)
        its = "its" if len(undecided) == 1 else "their"
        return f", no guardrail harmed so far ({names} not yet shown within {its} margin)"
    return ", no guardrail harmed"


def srm_warning(analysis: Analysis) -> str | None:
    srm = analysis.srm
    if not srm.mismatch:
        return None
    total = sum(srm.observed.values())
    shares = ", ".join(f"{name} {int(n):,} ({_pct(n / total)}, expected {_pct(srm.expected[name] / total)})"
                       for name, n in srm.observed.items())
    return (f"Sample ratio mismatch (chi-square p = {srm.p_value:.2g} < {srm.threshold:g}): {shares}. The "
            f"assignment or the exposure logging is broken; do not trust these results until it is fixed.")


def describe_variant(analysis: Analysis, variant: str) -> str:
    goal = next(r for r in analysis.results if r.variant == variant and r.goal)
    sentence = f"{variant} {_change(analysis, goal)}{_guardrail_clause(analysis, variant)}."
    also = [r for r in analysis.results if r.variant == variant and not r.goal and r.significant]
    if also:
        sentence += " It also " + " and ".join(_change(analysis, r) for r in also) + "."
    return sentence


def describe(analysis: Analysis) -> list[str]:
    """The SRM warning (when it fires), then one sentence per treatment."""
    warning = srm_warning(analysis)
    return ([warning] if warning else []) + [describe_variant(analysis, v) for v in analysis.treatments]
