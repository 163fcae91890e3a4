"""Tiny synthetic tenants for the ML-core tests (seconds, no database, no Django)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.data import Interactions, ItemFeatures, Jagged


def make_tenant(
    n_customers: int = 40, n_items: int = 60, events_per_customer: int = 15, seed: int = 0
) -> tuple[Interactions, ItemFeatures]:
    """Customers prefer one of three item groups (the group is also the item's category), so there
    is signal to learn; popularity is skewed inside each group."""
    rng = np.random.default_rng(seed)
    group_of_item = np.arange(n_items) % 3
    taste = rng.integers(0, 3, n_customers)
    customers, items, ts = [], [], []
    for c in range(n_customers):
        pool = np.flatnonzero(group_of_item == taste[c])
        p = 1.0 / (1 + np.arange(len(pool)))
        chosen = rng.choice(pool, size=min(events_per_customer, len(pool)), replace=False, p=p / p.sum())
        customers.append(np.full(len(chosen), c))
        items.append(chosen)
        ts.append(1_600_000_000 + np.sort(rng.integers(0, 86_400 * 30, len(chosen))))
    customer = np.concatenate(customers)
    item = np.concatenate(items)
    interactions = Interactions(
        customer=customer,
        item=item,
        ts=np.concatenate(ts),
        weight=rng.choice(np.array([1.0, 3.0, 5.0], dtype=np.float32), len(item)),
        n_customers=n_customers,
        n_items=n_items,
    )
    features = ItemFeatures(
        category=Jagged.from_single(group_of_item + 1),
        brand=Jagged.from_single(np.arange(n_items) % 5),
        price_bucket=Jagged.from_single(1 + np.arange(n_items) % 4),
        title_tokens=Jagged.from_lists([[1 + i % 7, 1 + (i * 3) % 11] for i in range(n_items)]),
        n_categories=4,
        n_brands=5,
        n_price_buckets=5,
        n_title_tokens=12,
    )
    return interactions, features


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def tenant() -> tuple[Interactions, ItemFeatures]:
    return make_tenant()
