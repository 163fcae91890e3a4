"""The experiment statistics on simulated experiments whose truth is known (issue 22).

    python tests/bench/experiments.py [--experiments 10000] [--days 14] [--users-per-day 500]

No database, no server: the product's own functions (experiments/) on numpy arrays, one element per
simulated experiment.

- A/A: `--experiments` experiments with two identical arms, each day `--users-per-day` new users per arm
  (recommendations 1 + Poisson(4), purchases Binomial(recommendations, 2%), revenue per purchase
  lognormal(3, 1)); after every day the goal metric, revenue per 1,000 recommendations (a ratio metric,
  delta method), is compared with the always-valid test at alpha 0.05, the mixture tuned to the 14-day
  size. `aa_false_positive_rate` is the share that ever declare a winner. For contrast: the fixed-horizon
  t test peeked at daily, and read once at the end.
- CUPED: experiments of 10,000 users per arm whose pre-period covariate correlates 0.6 with the metric;
  `cuped_variance_reduction` is 1 - Var(CUPED difference) / Var(plain difference) across the simulated
  experiments (the true variance of the estimator, not the formula's).
- SRM: `--srm-runs` experiments of 10,000 users per arm (20,000 split 50/50); the bug sends 1% of the users
  meant for B to A. Also: the best detection any test at the same false-alarm rate could reach on that
  bug (the Neyman-Pearson one-sided binomial test), the smallest misassigned share the check flags in 99%
  of runs, and the users per arm a 1% bug needs.

The LAST line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.compare import compare
from experiments.srm import SRM_P_THRESHOLD, srm_p_values
from experiments.stats import (
    VariantStats,
    covariate_mean,
    cuped_estimate,
    cuped_theta,
    mean_estimate,
    ratio_estimate,
)

ALPHA = 0.05


def _day_of_users(rng: np.random.Generator, experiments: int, users: int) -> VariantStats:
    """One arm's new users of one day, as statistics per experiment (revenue over recommendations)."""
    recommendations = 1 + rng.poisson(4.0, size=(experiments, users))
    purchases = rng.binomial(recommendations, 0.02)
    revenue = purchases * rng.lognormal(3.0, 1.0, size=(experiments, users))
    d = recommendations.astype(np.float64)
    return VariantStats(n=np.full(experiments, float(users)), sum_y=revenue.sum(axis=1),
                        sum_y2=np.einsum("ij,ij->i", revenue, revenue), sum_d=d.sum(axis=1),
                        sum_d2=np.einsum("ij,ij->i", d, d), sum_yd=np.einsum("ij,ij->i", revenue, d))


def aa_experiments(experiments: int, days: int, users_per_day: int, seed: int = 1, chunk: int = 500) -> dict:
    rng = np.random.default_rng(seed)
    planned_n = 2 * days * users_per_day
    ever_sequential, ever_fixed, final_fixed = [], [], []
    first_crossing = np.zeros(days, dtype=np.int64)
    for start in range(0, experiments, chunk):
        size = min(chunk, experiments - start)
        arms = [VariantStats(), VariantStats()]
        seq = np.zeros(size, dtype=bool)
        fixed = np.zeros(size, dtype=bool)
        for day in range(days):
            arms = [arm.merge(_day_of_users(rng, size, users_per_day)) for arm in arms]
            effect = compare(ratio_estimate(arms[0]).scaled(1000), ratio_estimate(arms[1]).scaled(1000),
                             planned_n=planned_n, alpha=ALPHA)
            crossed = np.asarray(effect.p_value_sequential) <= ALPHA
            first_crossing[day] += int(np.sum(crossed & ~seq))
            seq |= crossed
            fixed |= np.asarray(effect.p_value) <= ALPHA
        ever_sequential.append(seq)
        ever_fixed.append(fixed)
        final_fixed.append(np.asarray(effect.p_value) <= ALPHA)
    rate = float(np.concatenate(ever_sequential).mean())
    return {
        "aa_false_positive_rate": rate,
        # Binomial standard error of the estimated rate.
        "aa_false_positive_rate_se": float(np.sqrt(rate * (1 - rate) / experiments)),
        "aa_fixed_peeking_false_positive_rate": float(np.concatenate(ever_fixed).mean()),
        "aa_fixed_final_false_positive_rate": float(np.concatenate(final_fixed).mean()),
        "aa_first_crossing_by_day": first_crossing.tolist(),
    }


def _correlated_users(rng: np.random.Generator, experiments: int, users: int, rho: float, lift: float,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Metric y and pre-period covariate x with correlation rho: a shared per-user level plus noise."""
    level = rng.standard_normal((experiments, users))
    noise = rng.standard_normal((experiments, users))
    x = 50.0 + 10.0 * level
    y = (50.0 + 10.0 * (rho * level + np.sqrt(1 - rho**2) * noise)) * lift
    return y, x


def _stats(y: np.ndarray, x: np.ndarray) -> VariantStats:
    return VariantStats(n=np.full(y.shape[0], float(y.shape[1])), sum_y=y.sum(axis=1),
                        sum_y2=np.einsum("ij,ij->i", y, y), sum_x=x.sum(axis=1), sum_x2=np.einsum("ij,ij->i", x, x),
                        sum_xy=np.einsum("ij,ij->i", x, y))


def cuped(experiments: int, users: int, rho: float = 0.6, seed: int = 2, chunk: int = 100) -> dict:
    rng = np.random.default_rng(seed)
    plain, adjusted, formula, correlation = [], [], [], []
    for start in range(0, experiments, chunk):
        size = min(chunk, experiments - start)
        ya, xa = _correlated_users(rng, size, users, rho, 1.0)
        yb, xb = _correlated_users(rng, size, users, rho, 1.02)
        correlation.append(np.mean([np.corrcoef(ya[i], xa[i])[0, 1] for i in range(size)]))
        a, b = _stats(ya, xa), _stats(yb, xb)
        plain_a, plain_b = mean_estimate(a), mean_estimate(b)
        theta, x_mean = cuped_theta([a, b]), covariate_mean([a, b])
        cuped_a, cuped_b = cuped_estimate(a, theta, x_mean), cuped_estimate(b, theta, x_mean)
        plain.append(plain_b.value - plain_a.value)
        adjusted.append(cuped_b.value - cuped_a.value)
        formula.append(1 - (cuped_a.variance + cuped_b.variance) / (plain_a.variance + plain_b.variance))
    plain, adjusted = np.concatenate(plain), np.concatenate(adjusted)
    return {
        "cuped_variance_reduction": float(1 - adjusted.var(ddof=1) / plain.var(ddof=1)),
        "cuped_variance_reduction_formula": float(np.mean(np.concatenate(formula))),
        "cuped_correlation": float(np.mean(correlation)),
        "cuped_mean_difference": float(adjusted.mean()),
        "cuped_true_difference": 1.0,
    }


def _misassigned(rng: np.random.Generator, runs: int, per_arm: int, share: float) -> np.ndarray:
    """Units per arm (50/50 weights) when a bug sends `share` of the units meant for B to A."""
    b = rng.binomial(2 * per_arm, 0.5 * (1 - share), runs)
    return np.column_stack([2 * per_arm - b, b])


def _flag_rate(rng: np.random.Generator, runs: int, per_arm: int, share: float) -> float:
    return float(np.mean(srm_p_values(_misassigned(rng, runs, per_arm, share), [0.5, 0.5]) < SRM_P_THRESHOLD))


def srm(runs: int, per_arm: int = 10_000, bug: float = 0.01, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    detection = _flag_rate(rng, runs, per_arm, bug)
    false_alarms = _flag_rate(rng, runs, per_arm, 0.0)
    # Neyman-Pearson: against this one alternative no test with false alarms <= 0.002 does better than
    # rejecting when B's count is small, at the largest cut whose false-alarm rate stays <= 0.002.
    total = 2 * per_arm
    cut = sps.binom.ppf(0.002, total, 0.5)
    if sps.binom.cdf(cut, total, 0.5) > 0.002:
        cut -= 1
    best_possible = float(sps.binom.cdf(cut, total, 0.5 * (1 - bug)))
    shares = np.round(np.arange(0.005, 0.1001, 0.005), 3)
    rates = {float(s): _flag_rate(rng, 20_000, per_arm, float(s)) for s in shares}
    detected_99 = next((s for s, r in rates.items() if r >= 0.99), None)
    # Users per arm for the bug to be flagged in 99% of runs: with shares 0.5 (1 +- bug) the chi-square is
    # noncentral with noncentrality (2 x per arm) x bug^2.
    critical = sps.chi2.isf(SRM_P_THRESHOLD, 1)
    needed = per_arm
    while sps.ncx2.sf(critical, 1, 2 * needed * bug**2) < 0.99:
        needed = int(needed * 1.01) + 1
    confirmed = _flag_rate(rng, 5_000, needed, bug)
    return {
        "srm_detection_rate": detection,
        "srm_false_alarm_rate": false_alarms,
        "srm_detection_best_possible": best_possible,
        "srm_misassigned_share_detected_99": detected_99,
        "srm_detection_by_share": rates,
        "srm_users_per_arm_for_1pct_bug": needed,
        "srm_detection_at_that_size": confirmed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--users-per-day", type=int, default=500)
    parser.add_argument("--cuped-experiments", type=int, default=2_000)
    parser.add_argument("--cuped-users", type=int, default=10_000)
    parser.add_argument("--srm-runs", type=int, default=100_000)
    parser.add_argument("--serving", action="store_true",
                        help="also attribution_overhead_p99_ratio (needs PostgreSQL, Redis: _attribution_overhead.py)")
    parser.add_argument("--bandit", action="store_true",
                        help="also bandit_lift_rel, bandit_significant_share, ope_relative_error (PostgreSQL, Redis, "
                        "two MovieLens trainings: _bandit_sim.py, whose defaults apply)")
    args = parser.parse_args()

    figures: dict = {"experiments": args.experiments, "days": args.days, "users_per_day_per_arm": args.users_per_day}
    started = time.perf_counter()
    figures |= aa_experiments(args.experiments, args.days, args.users_per_day)
    figures["aa_seconds"] = round(time.perf_counter() - started, 1)
    print(f"A/A, {args.experiments:,} experiments x {args.days} daily looks, {args.users_per_day} users/arm/day "
          f"({figures['aa_seconds']} s)")
    print(f"  always-valid test, ever a winner:  {figures['aa_false_positive_rate']:.4f} "
          f"(+- {figures['aa_false_positive_rate_se']:.4f})   target <= 0.055")
    print(f"  fixed-horizon t, peeked daily:     {figures['aa_fixed_peeking_false_positive_rate']:.4f}")
    print(f"  fixed-horizon t, read on day {args.days}:   {figures['aa_fixed_final_false_positive_rate']:.4f}")
    print(f"  first crossings by day: {figures['aa_first_crossing_by_day']}")

    started = time.perf_counter()
    figures |= cuped(args.cuped_experiments, args.cuped_users)
    figures["cuped_seconds"] = round(time.perf_counter() - started, 1)
    print(f"CUPED, {args.cuped_experiments:,} experiments x {args.cuped_users:,} users/arm, "
          f"correlation {figures['cuped_correlation']:.3f} ({figures['cuped_seconds']} s)")
    print(f"  variance reduction of the difference, across experiments: {figures['cuped_variance_reduction']:.3f}   "
          "target >= 0.30")
    print(f"  the same from the formula (mean over experiments):        "
          f"{figures['cuped_variance_reduction_formula']:.3f}")
    print(f"  mean CUPED difference {figures['cuped_mean_difference']:.4f} (truth 1.0)")

    started = time.perf_counter()
    figures |= srm(args.srm_runs)
    figures["srm_seconds"] = round(time.perf_counter() - started, 1)
    print(f"SRM, {args.srm_runs:,} runs of 10,000 users per arm, warning at p < {SRM_P_THRESHOLD}")
    print(f"  1% of B's users misassigned to A, flagged: {figures['srm_detection_rate']:.4f}   target >= 0.99")
    print(f"  best any test could do at <= 0.002 false alarms: {figures['srm_detection_best_possible']:.4f}")
    print(f"  no bug, flagged: {figures['srm_false_alarm_rate']:.5f}   target <= 0.002")
    print(f"  smallest misassigned share flagged in >= 99% of runs: {figures['srm_misassigned_share_detected_99']}")
    print(f"  users per arm for a 1% bug to be flagged in 99% of runs: {figures['srm_users_per_arm_for_1pct_bug']:,} "
          f"(simulated: {figures['srm_detection_at_that_size']:.4f})")
    if args.serving:
        from tests.bench._attribution_overhead import figures as attribution_overhead

        figures |= attribution_overhead()
    if args.bandit:
        from tests.bench._bandit_sim import figures as bandit_figures

        figures |= bandit_figures(reuse=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
