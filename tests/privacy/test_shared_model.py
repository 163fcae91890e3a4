"""The shared cold-start model: real Opacus DP-SGD on small data, its ledger charge and refusals, its artifact.

What they prove: Opacus's per-customer gradients of the several EmbeddingBag calls are the true ones; the run
spends no more than its target (the accountant's certificate) and still learns which products go together;
a run charges every contributing shop that certificate, leaves out a shop that cannot pay and trains nothing
below the minimum of shops; the stored artifact and the API carry no row of any shop; the beat schedule
names the task and the task runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch
from django.conf import settings as django_settings
from opacus import GradSampleModule

from privacy.models import BudgetWindow, Charge, SharedModel
from privacy.optin import set_opted_in
from privacy.params import shared_model_params
from privacy.public import shared_item_embeddings
from privacy.shared_model import Baskets, ContentEncoder, SharedParams, embed, fit, from_bytes, row_losses
from privacy.shared_release import train_shared_model
from privacy.tasks import train_shared_model as train_task
from tenants.context import dangerously_all_tenants
from tests.conftest import _client_for
from tests.factories import CustomerFactory, EventFactory, ProductFactory, TenantFactory

AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
SMALL = {"n_buckets": 256, "dim": 8, "sample_rate": 0.3, "epochs": 2, "physical_batch": 4, "min_shops": 3}


def _clustered(n_customers: int = 400, seed: int = 0) -> Baskets:
    """Two groups of 20 products; each customer takes 6 of one group."""
    rng = np.random.default_rng(seed)
    items = [sorted({int(t) for t in rng.integers(1, 512, size=3)}) for _ in range(40)]
    customers = [rng.choice(np.arange(20) + 20 * (c % 2), size=6, replace=False) for c in range(n_customers)]
    return Baskets(items, customers)


def test_opacus_per_customer_gradients_of_the_repeated_bag_are_the_true_ones():
    data = _clustered(8)
    params = SharedParams(epsilon=1.0, delta=1e-6, n_buckets=1024, dim=4)
    model = GradSampleModule(ContentEncoder(1024, 4), loss_reduction="sum")
    rows = list(range(8))
    row_losses(model, data, rows, params, np.random.default_rng(3)).sum().backward()
    per_customer = model._module.bag.weight.grad_sample
    assert per_customer.shape == (8, 1024, 4)
    plain = ContentEncoder(1024, 4)
    plain.load_state_dict(model._module.state_dict())
    for row in rows:  # each customer's term alone, with the same random draws
        plain.zero_grad()
        row_losses(plain, data, rows, params, np.random.default_rng(3))[row].backward()
        assert torch.allclose(per_customer[row], plain.bag.weight.grad, atol=1e-6)


def test_dp_sgd_spends_at_most_its_target_and_learns_what_goes_together():
    data = _clustered()
    params = SharedParams(epsilon=4.0, delta=1e-6, n_buckets=512, dim=8, sample_rate=0.1, epochs=5,
                          physical_batch=32)
    result = fit(data, params, seed=1)
    assert 0 < result.epsilon <= 4.0 and result.delta == 1e-6 and result.noise_multiplier > 0.5
    e = embed(result.weights, data.item_tokens)
    sim = e @ e.T
    same = (sim[:20, :20].sum() + sim[20:, 20:].sum() - 40) / (2 * 20 * 19)
    across = sim[:20, 20:].mean()
    assert same > across + 0.05


def _shop(name: str, *, customers: int, at: datetime = AT):
    """Products shared by every shop (same titles) bought in pairs, plus one product of the shop's own."""
    shop = TenantFactory(name=name, slug=name.lower().replace(" ", "-"))
    common = [ProductFactory(tenant=shop, title=f"{word} kettle", brand="Brew", category_path=["Kitchen"])
              for word in ("copper", "steel", "glass")]
    own = ProductFactory(tenant=shop, title=f"Secret recipe {name} xq", brand="", category_path=[])
    for i in range(customers):
        customer = CustomerFactory(tenant=shop, external_id=f"{name}-secret-customer-{i}")
        for product in (common[i % 3], common[(i + 1) % 3], own):
            EventFactory(tenant=shop, customer=customer, product=product, event_type="purchase",
                         ts=at - timedelta(days=1, minutes=i))
    set_opted_in(shop.pk, True, at=at - timedelta(days=10))
    return shop


@pytest.fixture
def four_shops(all_tenants):
    return [_shop(f"Shop {i}", customers=6 + 2 * i) for i in range(4)]


def test_training_charges_every_shop_the_certified_spend_and_shares_no_row(four_shops):
    params = shared_model_params(epsilon=3.0, delta=1e-7, **SMALL)
    outcome = train_shared_model(AT, params=params)
    model = outcome.model
    assert outcome.contributors == sorted(s.pk for s in four_shops) and outcome.refused == {}
    assert model.n_shops == 4 and 0 < model.epsilon <= 3.0 and model.delta == 1e-7
    assert model.mechanism.startswith("opacus DP-SGD") and model.noise_multiplier > 0
    for shop in four_shops:
        budget = BudgetWindow.objects.for_tenant(shop).get(window="2026-03")
        assert budget.epsilon_spent == pytest.approx(model.epsilon) and budget.delta_spent == pytest.approx(1e-7)
        charge = Charge.objects.for_tenant(shop).get(kind="shared_model")
        assert not charge.refused and charge.epsilon == model.epsilon
    # The artifact: hashed-token weights and the run's parameters, no row of any shop.
    weights = from_bytes(model.weights)
    assert weights.shape == (256, 8) and weights.dtype == np.float32
    blob = bytes(model.weights)
    assert b"Secret" not in blob and b"kettle" not in blob and b"customer" not in blob
    fields = {f.name: getattr(model, f.name) for f in SharedModel._meta.fields if f.name != "weights"}
    text = repr(fields)
    assert "tenant" not in fields and "Secret" not in text and "kettle" not in text
    assert not any(shop.name in text or shop.slug in text for shop in four_shops)
    # Embeddings for shops taking part only; the API shows the run's metadata, never weights or rows.
    products = [("copper kettle", "Brew", ["Kitchen"]), ("brand new teapot", "", None)]
    embeddings = shared_item_embeddings(four_shops[1].pk, products)
    assert embeddings.shape == (2, 8) and np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    outsider = TenantFactory(name="Outsider", slug="outsider")
    assert shared_item_embeddings(outsider.pk, products) is None
    body = _client_for(four_shops[1], ["admin"]).get("/v1/privacy")
    shared = body.json()["shared_models"]
    assert len(shared) == 1 and "weights" not in shared[0] and shared[0]["n_shops"] == 4
    text = body.content.decode()
    assert "Secret" not in text and "Shop 0" not in text and "kettle" not in text


def test_a_shop_that_cannot_pay_is_left_out_and_too_few_shops_train_nothing(four_shops, settings):
    settings.RECSVC_PRIVACY_EPSILON_PER_WINDOW = 8.0
    poor = four_shops[0]
    with dangerously_all_tenants():
        budget = BudgetWindow.objects.for_tenant(poor).create(tenant=poor, window="2026-03", epsilon_budget=1.0,
                                                             delta_budget=1e-6)
    params = shared_model_params(epsilon=3.0, delta=1e-7, **SMALL)
    outcome = train_shared_model(AT, params=params)
    assert poor.pk in outcome.refused and outcome.model.n_shops == 3
    budget.refresh_from_db()
    assert budget.epsilon_spent == 0 and Charge.objects.for_tenant(poor).get().refused
    # The others have 8 - 3 = 5 left: a second run at 3 fits, a third does not, and nothing is weakened.
    assert train_shared_model(AT + timedelta(hours=1), params=params).model is not None
    third = train_shared_model(AT + timedelta(hours=2), params=params)
    assert third.model is None and third.contributors == [] and len(third.refused) == 4
    assert SharedModel.objects.count() == 2
    for shop in four_shops:
        spent = BudgetWindow.objects.for_tenant(shop).get(window="2026-03")
        assert spent.epsilon_spent <= spent.epsilon_budget + 1e-9


def test_the_monthly_task_is_scheduled_and_trains(four_shops):
    entry = django_settings.CELERY_BEAT_SCHEDULE["privacy-train-shared-model"]
    assert entry["task"] == train_task.name
    result = train_task.delay(AT.isoformat()).get()
    assert result["model_id"] == SharedModel.objects.get().pk and result["n_shops"] == 4 and result["refused"] == 0
