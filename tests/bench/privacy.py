"""Privacy benchmark (issue 24): the statistical audit of each release mechanism, the poisoning shift against
its bound, and a scripted ledger run. Prints figures, then one JSON object as its last line.

    python tests/bench/privacy.py [--trials N]

No database: the mechanisms, the robust aggregation and the ledger's decision are the production functions
(privacy.mechanisms, privacy.robust, privacy.ledger.can_spend); the database path of releases and the
ledger is covered by tests/privacy. `utility_by_epsilon` / `cold_baseline_ndcg10` (the shared DP-SGD
cold-start model) are not measured: that model is not built yet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django  # noqa: E402

django.setup()

from privacy.audit import audit  # noqa: E402
from privacy.bounding import Bounds  # noqa: E402
from privacy.ledger import can_spend  # noqa: E402
from privacy.mechanisms import laplace  # noqa: E402
from privacy.models import BudgetWindow  # noqa: E402
from privacy.robust import aggregate_sensitivity, poisoning_bound, trim_for, trimmed_shop_mean  # noqa: E402

N_SHOPS = 10
SHOP_CAP = 200.0
MECHANISMS = {  # kind -> (per-customer bounds, keys in the audited vector)
    "product_popularity": (Bounds(max_keys=10, max_per_key=1), 12),
    "category_popularity": (Bounds(max_keys=3, max_per_key=1), 6),
}


def _neighbours(bounds: Bounds, n_keys: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Shops' counts, and the same with one customer more in a shop whose values sit in the kept middle."""
    trim = trim_for(N_SHOPS, 0.1)
    base = np.sort(rng.uniform(10, 150, size=(N_SHOPS, n_keys)).round(), axis=0)
    neighbour = base.copy()
    neighbour[N_SHOPS // 2, : bounds.max_keys] += bounds.max_per_key  # the middle shop: never trimmed
    near = trimmed_shop_mean(base, shop_cap=SHOP_CAP, trim=trim)
    far = trimmed_shop_mean(neighbour, shop_cap=SHOP_CAP, trim=trim)
    return near, far, aggregate_sensitivity(n_shops=N_SHOPS, trim=trim, l1_per_customer=bounds.l1_sensitivity)


def audits(trials: int, epsilon: float) -> dict:
    rng = np.random.default_rng(24)
    out = {}
    for kind, (bounds, n_keys) in MECHANISMS.items():
        near, far, sensitivity = _neighbours(bounds, n_keys, rng)
        mechanism = laplace(size=n_keys, sensitivity=sensitivity, epsilon=epsilon)
        started = time.perf_counter()
        result = audit(mechanism, near, far, claimed_epsilon=mechanism.epsilon, trials=trials)
        control = audit(laplace(size=n_keys, sensitivity=sensitivity / 4, epsilon=epsilon), near, far,
                        claimed_epsilon=epsilon, trials=trials)
        print(f"{kind}: sensitivity {sensitivity:.4f}, scale {mechanism.scale:.4f}, claimed epsilon "
              f"{mechanism.epsilon:g}, audit lower bound {result.epsilon_lower_bound:.3f} (95%, {trials} runs each); "
              f"quarter-noise control {control.epsilon_lower_bound:.3f}; {time.perf_counter() - started:.1f} s")
        out[kind] = {"audit_epsilon_lower_bound": round(result.epsilon_lower_bound, 4),
                     "claimed_epsilon": mechanism.epsilon, "confidence": result.confidence, "trials": trials,
                     "control_quarter_noise_lower_bound": round(control.epsilon_lower_bound, 4)}
    return out


def poisoning() -> tuple[float, float]:
    rng = np.random.default_rng(7)
    n_keys = 500
    trim = trim_for(N_SHOPS, 0.1)
    honest = rng.poisson(rng.uniform(0, 180, n_keys), size=(N_SHOPS, n_keys)).astype(float)
    clean = trimmed_shop_mean(honest, shop_cap=SHOP_CAP, trim=trim)
    attacks = {"huge": np.full(n_keys, 1e12), "negative": np.full(n_keys, -1e12), "nan": np.full(n_keys, np.nan),
               "cap": np.full(n_keys, SHOP_CAP), "zero": np.zeros(n_keys),
               "mixed": rng.choice([0.0, 1e9], n_keys)}
    worst = 0.0
    for liar in range(N_SHOPS):
        for attack in attacks.values():
            poisoned = honest.copy()
            poisoned[liar] = attack
            shift = np.abs(trimmed_shop_mean(poisoned, shop_cap=SHOP_CAP, trim=trim) - clean).max()
            worst = max(worst, float(shift))
    bound = poisoning_bound(n_shops=N_SHOPS, shop_cap=SHOP_CAP, trim=trim)
    print(f"poisoning: one shop of {N_SHOPS} ({len(attacks)} attacks x every shop, {n_keys} keys): max shift "
          f"{worst:.3f}, bound {bound:.3f} (cap {SHOP_CAP:g} / (n - 2 trim), trim {trim})")
    return worst, bound


def ledger_run(epsilon: float) -> tuple[int, int]:
    """12 releases at `epsilon` over 10 shops with budgets 8 (and one shop at 3): refusals, overspends."""
    budgets = [BudgetWindow(tenant_id=i, window="2026-03", epsilon_budget=3.0 if i == 0 else 8.0,
                            delta_budget=1e-6) for i in range(N_SHOPS)]
    refusals = overspent = 0
    for _ in range(12):
        for budget in budgets:
            if can_spend(budget, epsilon, 0.0).allowed:
                budget.epsilon_spent += epsilon
            else:
                refusals += 1
    overspent = sum(b.epsilon_spent > b.epsilon_budget + 1e-9 for b in budgets)
    print(f"ledger: 12 releases x {N_SHOPS} shops at epsilon {epsilon:g}: {refusals} contributions refused, "
          f"{overspent} budgets overspent")
    return refusals, overspent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--epsilon", type=float, default=1.0)
    args = parser.parse_args()
    mechanisms = audits(args.trials, args.epsilon)
    shift, bound = poisoning()
    refusals, overspent = ledger_run(args.epsilon)
    print(json.dumps({
        "mechanisms": mechanisms,
        "audit_epsilon_lower_bound": {k: v["audit_epsilon_lower_bound"] for k, v in mechanisms.items()},
        "claimed_epsilon": {k: v["claimed_epsilon"] for k, v in mechanisms.items()},
        "poisoning_max_shift": round(shift, 4), "poisoning_bound": bound,
        "ledger_refusals": refusals, "ledger_overspent_budgets": overspent,
        "utility_by_epsilon": None, "cold_baseline_ndcg10": None,
        "not_measured": "the shared DP-SGD cold-start model is not built yet",
    }))


if __name__ == "__main__":
    main()
