"""One poisoning shop moves no released aggregate by more than the stated bound; one customer moves the
aggregate by at most the sensitivity the noise is scaled to."""

from __future__ import annotations

import numpy as np

from privacy.robust import aggregate_sensitivity, poisoning_bound, trim_for, trimmed_shop_mean

CAP = 200.0


def test_a_poisoning_shop_moves_no_key_by_more_than_the_bound():
    rng = np.random.default_rng(7)
    n_shops, n_keys = 10, 300
    trim = trim_for(n_shops, 0.1)
    bound = poisoning_bound(n_shops=n_shops, shop_cap=CAP, trim=trim)
    assert (trim, bound) == (1, CAP / 8)
    honest = rng.poisson(rng.uniform(0, 150, n_keys), size=(n_shops, n_keys)).astype(float)
    clean = trimmed_shop_mean(honest, shop_cap=CAP, trim=trim)
    attacks = [np.full(n_keys, 1e12), np.full(n_keys, -1e12), np.full(n_keys, np.nan), np.full(n_keys, np.inf),
               np.zeros(n_keys), np.full(n_keys, CAP), rng.choice([0.0, 1e9], n_keys)]
    worst = 0.0
    for liar in range(n_shops):
        for attack in attacks:
            poisoned = honest.copy()
            poisoned[liar] = attack
            worst = max(worst, float(np.abs(trimmed_shop_mean(poisoned, shop_cap=CAP, trim=trim) - clean).max()))
    assert 0 < worst <= bound


def test_without_trimming_or_clipping_one_shop_would_move_the_mean_without_limit():
    """The control: a plain mean has no bound (what the clip and the trim buy)."""
    honest = np.ones((10, 1))
    poisoned = honest.copy()
    poisoned[0] = 1e9
    assert poisoned.mean(axis=0)[0] - honest.mean(axis=0)[0] > 1e7
    assert trimmed_shop_mean(poisoned, shop_cap=CAP, trim=1)[0] == 1.0


def test_one_customer_moves_the_aggregate_by_at_most_the_sensitivity():
    rng = np.random.default_rng(3)
    n_shops, n_keys, max_keys = 7, 40, 5
    trim = trim_for(n_shops, 0.1)
    sensitivity = aggregate_sensitivity(n_shops=n_shops, trim=trim, l1_per_customer=max_keys)
    for _ in range(300):
        counts = rng.integers(0, 250, size=(n_shops, n_keys)).astype(float)
        neighbour = counts.copy()
        shop = rng.integers(n_shops)
        neighbour[shop, rng.choice(n_keys, max_keys, replace=False)] += 1
        moved = np.abs(trimmed_shop_mean(neighbour, shop_cap=CAP, trim=trim)
                       - trimmed_shop_mean(counts, shop_cap=CAP, trim=trim)).sum()
        assert moved <= sensitivity + 1e-9
