"""Training and releasing the shared cold-start model: the opted-in shops' bounded per-customer data, one
Opacus DP-SGD run (privacy/shared_model.py), and a charge of what its accountant certifies to every
contributing shop's ledger, all or nothing in one transaction (like privacy/releases.py).

A shop whose window cannot pay the run's (epsilon, delta) is left out (its customers' data is not read) and
its refusal recorded; with fewer than `min_shops` left nothing is trained. The run is never made with less
noise to fit a budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db import transaction

from privacy import ledger
from privacy.collect import shop_baskets
from privacy.models import Charge, SharedModel
from privacy.params import shared_model_params
from privacy.releases import opted_in_shops, window_start
from privacy.shared_model import ACCOUNTANT, Baskets, SharedParams, fit, to_bytes, token_ids
from tenants.context import dangerously_all_tenants

KIND = "shared_model"


@dataclass
class SharedOutcome:
    model: SharedModel | None
    contributors: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # shop id -> why it was left out


def _refuse(tenant_id: int, budget, params: SharedParams, at: datetime) -> None:
    Charge.objects.for_tenant(tenant_id).create(tenant_id=tenant_id, budget=budget, kind=KIND,
                                                epsilon=params.epsilon, delta=params.delta, refused=True, created_at=at)


def collect(shops: list[int], start: datetime, end: datetime, params: SharedParams) -> Baskets:
    """The shops' catalogs one after the other (hashed tokens) and their customers' bounded baskets."""
    item_tokens: list[list[int]] = []
    customers = []
    for tenant_id in shops:
        tokens, baskets = shop_baskets(tenant_id, start, end, params.max_items)
        base = len(item_tokens)
        item_tokens += [token_ids(t, params.n_buckets) for t in tokens]
        customers += [[base + i for i in basket] for basket in baskets]
    return Baskets(item_tokens, [np.asarray(c, dtype=np.int64) for c in customers])


def train_shared_model(at: datetime, *, params: SharedParams | None = None, shops: list[int] | None = None,
                       seed: int = 0) -> SharedOutcome:
    """Train the shared model on the opted-in shops' data of the window of `at` up to `at`, charging each."""
    params = params or shared_model_params()
    window = ledger.window_of(at)
    outcome = SharedOutcome(model=None)
    with transaction.atomic(), dangerously_all_tenants():
        candidates = opted_in_shops() if shops is None else sorted(shops)
        budgets = {}
        for tenant_id in candidates:
            budget = ledger.budget_for(tenant_id, window, for_update=True)
            decision = ledger.can_spend(budget, params.epsilon, params.delta)
            if decision.allowed:
                budgets[tenant_id] = budget
            else:
                outcome.refused[tenant_id] = decision.reason
                _refuse(tenant_id, budget, params, at)
        if len(budgets) < params.min_shops:
            for tenant_id, budget in budgets.items():
                outcome.refused[tenant_id] = "too few shops could pay for the shared model"
                _refuse(tenant_id, budget, params, at)
            return outcome
        data = collect(sorted(budgets), window_start(at), at, params)
        if not data.usable().customers:
            for tenant_id, budget in budgets.items():
                outcome.refused[tenant_id] = "no customer with two products in the window"
                _refuse(tenant_id, budget, params, at)
            return outcome
        result = fit(data, params, seed=seed)
        if result.epsilon > params.epsilon + 1e-9:
            raise AssertionError(f"the accountant certifies {result.epsilon}, more than the {params.epsilon} asked for")
        outcome.contributors = sorted(budgets)
        outcome.model = SharedModel.objects.create(
            window=window, mechanism=ACCOUNTANT, epsilon=result.epsilon, delta=result.delta,
            noise_multiplier=result.noise_multiplier, sample_rate=params.sample_rate, steps=result.steps,
            max_grad_norm=params.max_grad_norm, max_items_per_customer=params.max_items, n_shops=len(budgets),
            n_buckets=params.n_buckets, dim=params.dim, weights=to_bytes(result.weights), trained_at=at,
        )
        for tenant_id, budget in budgets.items():
            ledger.spend(budget, result.epsilon, result.delta)
            Charge.objects.for_tenant(tenant_id).create(
                tenant_id=tenant_id, budget=budget, kind=KIND, epsilon=result.epsilon, delta=result.delta,
                created_at=at,
            )
    return outcome
