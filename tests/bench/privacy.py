"""Privacy benchmark (issue 24): what the warm start is worth per epsilon, the statistical audit of each
release mechanism, the poisoning shift against its bound, and a scripted ledger run. Prints figures, then one
JSON object as its last line.

    python tests/bench/privacy.py [--trials N] [--seeds 3] [--shared-epochs 4] [--only-utility]

`utility_by_epsilon`: MovieLens split by customer into 6 shops plus 3 synthetic shops (customers who like one
or two genres and take movies of those by popularity); shop 0 is new and holds a random 2% of its training
events (per-customer temporal split, the last 20% tested). For each total epsilon per contributing shop,
half pays the other shops' product_popularity release and half the shared model's DP-SGD run; the new shop's
retrieval (train_two_tower) is warm-started from both (training.warm_start.warm_start_rows) and its
NDCG@10 averaged over `--seeds` draws of its 2%. `cold_baseline_ndcg10`: the same shop and draws, no warm
start. Epsilon infinity: no noise and no clipping (the reference only; never released).

No database: the mechanisms, the robust aggregation, the DP-SGD fit and the ledger's decision are the
production functions (privacy.mechanisms, privacy.robust, privacy.releases.aggregate, privacy.shared_model.fit,
privacy.ledger.can_spend); the database path of releases, the shared model and the ledger is covered by
tests/privacy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django  # noqa: E402

django.setup()

from privacy.audit import audit  # noqa: E402
from privacy.bounding import Bounds, bounded_counts  # noqa: E402
from privacy.keys import content_tokens, product_key  # noqa: E402
from privacy.ledger import can_spend  # noqa: E402
from privacy.mechanisms import laplace  # noqa: E402
from privacy.models import BudgetWindow  # noqa: E402
from privacy.params import release_params  # noqa: E402
from privacy.public import popularity_prior  # noqa: E402
from privacy.releases import aggregate  # noqa: E402
from privacy.robust import aggregate_sensitivity, poisoning_bound, trim_for, trimmed_shop_mean  # noqa: E402
from privacy.shared_model import Baskets, SharedParams, embed, fit, token_ids  # noqa: E402
from training.data import Interactions, temporal_split  # noqa: E402

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


# ---------------------------------------------------------------------------------------------------------------
# utility_by_epsilon: a new shop warm-started by the shared model of the other shops.

N_MOVIELENS_SHOPS = 6  # MovieLens customers split by userId into shops; shop 0 is the new one
N_SYNTHETIC_SHOPS = 3
SYNTHETIC_CUSTOMERS = 1000
NEW_SHOP_FRACTION = 0.02
EPSILONS = (1.0, 2.0, 4.0, 8.0, math.inf)
SHARED_DELTA = 1e-6
SHOP_RETRIEVAL = {"dim": 32, "epochs": 5, "batch_size": 256, "lr": 3e-3, "sampled_negatives": 0}


def _movie_tokens(ml, n_buckets: int) -> list[list[int]]:
    """The shared vocabulary of each movie: its title tokens and its first genre as a category path."""
    movies = ml_frame().drop_duplicates("movieId").set_index("movieId").reindex(ml.movie_ids)
    genres = [str(g).split("|")[0] if isinstance(g, str) and not g.startswith("(") else "" for g in movies["genres"]]
    return [token_ids(content_tokens(title=t, category_path=[g] if g else None), n_buckets)
            for t, g in zip(ml.titles, genres, strict=True)]


def _movie_keys(ml) -> list[str | None]:
    """Each movie's normalised key (privacy/keys.py): no GTIN nor brand, so its title tokens."""
    return [product_key(title=t) for t in ml.titles]


def ml_frame():
    from demo.movielens import load_movielens

    return load_movielens()


def _other_shops(ml, shop_of: np.ndarray, max_items: int, rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Per other shop, per customer their at most `max_items` most recent movies, newest first (the bound):
    the MovieLens shops 1.., then the synthetic shops, whose customers like one or two genres and take movies
    of those by popularity."""
    events = ml.interactions
    order = np.lexsort((-events.ts, events.customer))
    baskets: dict[int, list[int]] = {}
    for row in order:
        customer = int(events.customer[row])
        if shop_of[customer] == 0:
            continue
        mine = baskets.setdefault(customer, [])
        if len(mine) < max_items:
            mine.append(int(events.item[row]))
    shops: list[list[np.ndarray]] = [[] for _ in range(1, N_MOVIELENS_SHOPS)]
    for customer, basket in baskets.items():
        shops[shop_of[customer] - 1].append(np.asarray(basket, dtype=np.int64))
    others = np.isin(events.customer, np.flatnonzero(shop_of != 0))
    popularity = np.bincount(events.item[others], minlength=events.n_items).astype(float)
    genre_of = ml.items.category  # Jagged genre ids per movie
    by_genre: dict[int, list[int]] = {}
    for movie in range(events.n_items):
        for g in genre_of.values[genre_of.offsets[movie]:genre_of.offsets[movie + 1]]:
            by_genre.setdefault(int(g), []).append(movie)
    genres = sorted(by_genre)
    for _ in range(N_SYNTHETIC_SHOPS):
        shop = []
        for _ in range(SYNTHETIC_CUSTOMERS):
            liked = rng.choice(genres, size=int(rng.integers(1, 3)), replace=False)
            pool = np.unique(np.concatenate([by_genre[g] for g in liked]))
            weights = popularity[pool] + 0.1
            size = min(len(pool), int(rng.integers(5, max_items + 1)))
            shop.append(rng.choice(pool, size=size, replace=False, p=weights / weights.sum()))
        shops.append(shop)
    return shops


def _released_popularity(shops: list[list[np.ndarray]], keys: list[str | None], epsilon: float) -> dict[str, float]:
    """The product_popularity release of the other shops, by the production path: per-customer bounding,
    the key domain of at least 3 shops' catalogs, the clipped trimmed mean across shops, OpenDP's Laplace
    noise (none at epsilon infinity)."""
    params = release_params(epsilon=epsilon if math.isfinite(epsilon) else 1.0,
                            bounds=Bounds(max_keys=10, max_per_key=1), shop_cap=SHOP_CAP, min_shops=3)
    catalog = {k for k in keys if k}
    counts = [bounded_counts(((c, keys[item]) for c, basket in enumerate(shop) for item in basket), params.bounds)
              for shop in shops]
    kept, means, trim = aggregate([catalog] * len(shops), counts, params)
    if math.isfinite(epsilon):
        sensitivity = aggregate_sensitivity(n_shops=len(shops), trim=trim, l1_per_customer=params.bounds.l1_sensitivity)
        means = laplace(size=len(kept), sensitivity=sensitivity, epsilon=epsilon)(means)
    return dict(zip(kept, means.tolist(), strict=True))


def _new_shop(ml, shop_of: np.ndarray, seed: int):
    """The new shop: its customers' temporal split, of whose training part it holds a random 2%."""
    events = ml.interactions
    mine = np.flatnonzero(shop_of[events.customer] == 0)
    customers, dense = np.unique(events.customer[mine], return_inverse=True)
    shop = Interactions(customer=dense, item=events.item[mine], ts=events.ts[mine], weight=events.weight[mine],
                        n_customers=len(customers), n_items=events.n_items)
    train, test = temporal_split(shop)
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(len(train), size=max(1, round(NEW_SHOP_FRACTION * len(shop))), replace=False))
    return train.take(kept), test


def utility(seeds: int, epochs: int) -> dict:
    """Total epsilon per contributing shop, half to the popularity release and half to the shared model."""
    from training.movielens import movielens_arrays
    from training.trainers.two_tower import retrieval_metrics, train_two_tower
    from training.warm_start import warm_start_rows

    ml = movielens_arrays(ml_frame())
    shop_of = ml.user_ids % N_MOVIELENS_SHOPS
    params = SharedParams(epsilon=1.0, delta=SHARED_DELTA, epochs=epochs)
    rng = np.random.default_rng(24)
    tokens = _movie_tokens(ml, params.n_buckets)
    keys = _movie_keys(ml)
    shops = _other_shops(ml, shop_of, params.max_items, rng)
    baskets = Baskets(tokens, [basket for shop in shops for basket in shop])
    n_customers = len(baskets.usable().customers)
    samples = [_new_shop(ml, shop_of, seed) for seed in range(seeds)]
    print(f"utility: {N_MOVIELENS_SHOPS - 1} MovieLens shops + {N_SYNTHETIC_SHOPS} synthetic shops "
          f"({n_customers} customers) share; the new shop holds {len(samples[0][0])} events "
          f"({NEW_SHOP_FRACTION:.0%}), tested on {len(samples[0][1])}; {seeds} draws of its events")

    def shop_ndcg(item_init) -> float:
        scores = []
        for seed, (train, test) in enumerate(samples):
            model = train_two_tower(train, ml.items, item_init=item_init, seed=seed, **SHOP_RETRIEVAL)
            scores.append(retrieval_metrics(model, train, test)["ndcg@10"])
        return float(np.mean(scores))

    started = time.perf_counter()
    cold = shop_ndcg(None)
    print(f"  cold (its own 2% only): NDCG@10 {cold:.4f} ({time.perf_counter() - started:.1f} s)")
    by_epsilon, parts = {}, {}
    for epsilon in EPSILONS:
        started = time.perf_counter()
        private = math.isfinite(epsilon)
        half = epsilon / 2
        fitted = fit(baskets, replace(params, epsilon=half if private else 1.0), private=private, seed=0)
        prior = popularity_prior(_released_popularity(shops, keys, half), keys)
        embeddings = embed(fitted.weights, tokens)
        ndcg = shop_ndcg(warm_start_rows(embeddings, prior))
        label = f"{epsilon:g}" if private else "inf"
        by_epsilon[label] = round(ndcg, 4)
        parts[label] = {"model_only": round(shop_ndcg(warm_start_rows(embeddings, None)), 4),
                        "popularity_only": round(shop_ndcg(warm_start_rows(None, prior)), 4)}
        print(f"  epsilon {label} (half to each): model certified {fitted.epsilon:.3f} (delta {fitted.delta:g}, "
              f"noise multiplier {fitted.noise_multiplier:.3f}, {fitted.steps} steps): NDCG@10 {ndcg:.4f}; "
              f"model alone {parts[label]['model_only']:.4f}, popularity alone {parts[label]['popularity_only']:.4f} "
              f"({time.perf_counter() - started:.1f} s)")
    gain = by_epsilon["inf"] - cold
    kept = (by_epsilon["4"] - cold) / gain if gain > 0 else None
    print(f"  gain of the non-private warm start {gain:.4f}; kept at epsilon 4: "
          f"{'n/a' if kept is None else f'{kept:.0%}'} (target at least 50%)")
    return {"utility_by_epsilon": by_epsilon, "cold_baseline_ndcg10": round(cold, 4),
            "utility_parts_by_epsilon": parts, "gain_kept_at_epsilon_4": None if kept is None else round(kept, 3),
            "shared_model_customers": n_customers}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=3, help="draws of the new shop's 2%% of events")
    parser.add_argument("--shared-epochs", type=int, default=4)
    parser.add_argument("--only-utility", action="store_true", help="only the warm start's utility")
    args = parser.parse_args()
    torch.set_num_threads(1)
    useful = utility(args.seeds, args.shared_epochs)
    if args.only_utility:
        print(json.dumps(useful))
        return
    mechanisms = audits(args.trials, args.epsilon)
    shift, bound = poisoning()
    refusals, overspent = ledger_run(args.epsilon)
    print(json.dumps({
        "mechanisms": mechanisms,
        "audit_epsilon_lower_bound": {k: v["audit_epsilon_lower_bound"] for k, v in mechanisms.items()},
        "claimed_epsilon": {k: v["claimed_epsilon"] for k, v in mechanisms.items()},
        "poisoning_max_shift": round(shift, 4), "poisoning_bound": bound,
        "ledger_refusals": refusals, "ledger_overspent_budgets": overspent,
        **useful,
    }))


if __name__ == "__main__":
    main()
