"""A cross-shop release: bounded per-shop counts, a robust mean across shops, OpenDP's Laplace noise, and a
charge to every contributing shop's ledger, all or nothing in one transaction.

The key domain comes from the catalogs (not from customers' events), and a key is kept only when at least
`min_shops` contributing shops sell it: a release shows no key that only one shop has. Shops whose budget
cannot pay are left out and their refusal is recorded; with fewer than `min_shops` left the whole release is
refused. The released values are noisy; which keys are kept after the noise (the largest) is post-processing.

Kinds: product_popularity and category_popularity over the window up to the release; product_trend, product
keys over the last TREND_DAYS only; co_purchase, pairs of product keys one customer took, within the pairs of
the newest product_popularity release's largest keys (a released aggregate: the domain reveals nothing more)
that at least `min_shops` shops both sell. Each customer counts for at most `max_keys` keys or pairs, so the
sensitivity is the same for every kind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import transaction

from privacy import ledger
from privacy.collect import shop_contribution
from privacy.mechanisms import MECHANISM, laplace
from privacy.models import Charge, PrivacySettings, Release
from privacy.params import CO_PURCHASE_TOP_KEYS, KINDS, TREND_DAYS, ReleaseParams, release_params
from privacy.robust import aggregate_sensitivity, poisoning_bound, trim_for, trimmed_shop_mean
from tenants.context import dangerously_all_tenants


class ReleaseRefused(Exception):
    """The release cannot be made (nothing was released or charged)."""


@dataclass
class Outcome:
    release: Release | None
    contributors: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # shop id -> why its contribution was refused


def window_start(at: datetime) -> datetime:
    moment = at.astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def span(kind: str, at: datetime) -> datetime:
    """Where the data of a release of `kind` at `at` starts: its window's start, or for product_trend the
    last TREND_DAYS (never before the window: each window's budget pays for that window's data)."""
    start = window_start(at)
    return max(start, at - timedelta(days=TREND_DAYS)) if kind == "product_trend" else start


def pair_domain() -> set[str] | None:
    """co_purchase's domain: the keys of the largest values of the newest product_popularity release."""
    row = Release.objects.filter(kind="product_popularity").order_by("-released_at", "-pk").first()
    if row is None:
        return None
    top = sorted(row.values.items(), key=lambda kv: (-kv[1], kv[0]))[:CO_PURCHASE_TOP_KEYS]
    return {key for key, _ in top}


def opted_in_shops() -> list[int]:
    with dangerously_all_tenants():
        return sorted(PrivacySettings.objects.dangerously_all_tenants().filter(opted_in=True)
                      .values_list("tenant_id", flat=True))


def aggregate(
    catalogs: list[set[str]], counts: list[Counter[str]], params: ReleaseParams
) -> tuple[list[str], np.ndarray, int]:
    """(kept keys, their robust means across the shops before noise, trim)."""
    shared = Counter(key for catalog in catalogs for key in catalog)
    keys = sorted(key for key, n in shared.items() if n >= params.min_shops)
    matrix = np.array([[shop.get(key, 0) for key in keys] for shop in counts], dtype=float).reshape(len(counts), -1)
    trim = trim_for(len(counts), params.trim_fraction)
    means = trimmed_shop_mean(matrix, shop_cap=params.shop_cap, trim=trim) if keys else np.zeros(0)
    return keys, means, trim


def release(kind: str, at: datetime, *, params: ReleaseParams | None = None,
            shops: list[int] | None = None) -> Outcome:
    """Release `kind` over the window of `at` up to `at`, charging every contributing shop."""
    if kind not in KINDS:
        raise ValueError(f"unknown release kind {kind!r}")
    params = params or release_params()
    window = ledger.window_of(at)
    outcome = Outcome(release=None)
    domain = pair_domain() if kind == "co_purchase" else None
    if kind == "co_purchase" and not domain:
        raise ReleaseRefused("co_purchase needs a product_popularity release first (its domain)")
    with transaction.atomic(), dangerously_all_tenants():
        candidates = opted_in_shops() if shops is None else sorted(shops)
        budgets = {}
        for tenant_id in candidates:
            budget = ledger.budget_for(tenant_id, window, for_update=True)
            decision = ledger.can_spend(budget, params.epsilon, 0.0)
            if decision.allowed:
                budgets[tenant_id] = budget
            else:
                outcome.refused[tenant_id] = decision.reason
        outcome.contributors = sorted(budgets)
        for tenant_id in outcome.refused:
            Charge.objects.for_tenant(tenant_id).create(
                tenant_id=tenant_id, budget=ledger.budget_for(tenant_id, window), kind=kind,
                epsilon=params.epsilon, delta=0.0, refused=True, created_at=at,
            )
        if len(budgets) < params.min_shops:
            outcome.refused.update({t: "too few shops could pay for the release" for t in budgets})
            for tenant_id in budgets:
                Charge.objects.for_tenant(tenant_id).create(
                    tenant_id=tenant_id, budget=budgets[tenant_id], kind=kind, epsilon=params.epsilon, delta=0.0,
                    refused=True, created_at=at,
                )
            outcome.contributors = []
            return outcome
        contributions = [shop_contribution(t, kind, span(kind, at), at, params.bounds, domain) for t in budgets]
        keys, means, trim = aggregate([c for c, _ in contributions], [n for _, n in contributions], params)
        n_shops = len(budgets)
        sensitivity = aggregate_sensitivity(n_shops=n_shops, trim=trim, l1_per_customer=params.bounds.l1_sensitivity)
        mechanism = laplace(size=max(1, len(keys)), sensitivity=sensitivity, epsilon=params.epsilon)
        noisy = mechanism(means if keys else np.zeros(1))[: len(keys)]
        top = np.argsort(-noisy, kind="stable")[: params.max_keys_released]
        outcome.release = Release.objects.create(
            kind=kind, window=window, mechanism=MECHANISM, epsilon=mechanism.epsilon, delta=mechanism.delta,
            sensitivity=sensitivity, noise_scale=mechanism.scale, n_shops=n_shops, trim=trim,
            poisoning_bound=poisoning_bound(n_shops=n_shops, shop_cap=params.shop_cap, trim=trim),
            values={keys[i]: round(float(noisy[i]), 3) for i in top}, released_at=at,
        )
        for tenant_id, budget in budgets.items():
            ledger.spend(budget, mechanism.epsilon, mechanism.delta)
            Charge.objects.for_tenant(tenant_id).create(
                tenant_id=tenant_id, budget=budget, release=outcome.release, kind=kind, epsilon=mechanism.epsilon,
                delta=mechanism.delta, created_at=at,
            )
    return outcome
