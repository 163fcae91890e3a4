"""The scheduled aggregate releases against the real PostgreSQL, with the moment passed in (no dependency on
today's date).

What they prove: one run releases every aggregate of the window across the opted-in shops (co-purchase after
popularity) and charges each shop once per release; a second run in the same window releases nothing and
charges nothing; the next window releases again; a shop out of budget is left out with its refusal in its
ledger while the others are released at the full noise; the beat entry names the task, which runs on the
training queue with a time limit and takes the moment as an ISO string; the page and the API name each kind
of release in plain words.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings

from config.celery import app as celery_app
from privacy.bounding import Bounds
from privacy.models import BudgetWindow, Charge, Release, SharedModel
from privacy.optin import set_opted_in
from privacy.params import release_params
from privacy.schedule import SCHEDULED_KINDS, release_window
from privacy.tasks import release_aggregates
from tenants.context import dangerously_all_tenants
from tenants.models import Membership
from tests.conftest import _client_for
from tests.factories import CustomerFactory, EventFactory, ProductFactory, TenantFactory
from tests.privacy.test_ledger_and_pages import _logged_in

AT = datetime(2026, 3, 28, 2, 0, tzinfo=UTC)
GTINS = ("4006381333931", "5901234123457", "0012345678905")
PARAMS = release_params(epsilon=1.0, bounds=Bounds(max_keys=3, max_per_key=1), shop_cap=100.0, min_shops=3)


def _shop(i: int, at: datetime = AT):
    """10 customers who each bought the three shared products in the days before `at`."""
    shop = TenantFactory(name=f"Scheduled shop {i}", slug=f"scheduled-shop-{i}")
    products = [ProductFactory(tenant=shop, title=f"product {n} of {i}", category_path=["Kitchen", "Tea"],
                               attributes={"ean": code}) for n, code in enumerate(GTINS)]
    for c in range(10):
        customer = CustomerFactory(tenant=shop, external_id=f"s{i}-c{c}")
        for product in products:
            EventFactory(tenant=shop, customer=customer, product=product, event_type="purchase",
                         ts=at - timedelta(days=2, minutes=c))
    set_opted_in(shop.pk, True, at=at - timedelta(days=60))
    return shop


@pytest.fixture
def shops(all_tenants, settings):
    settings.RECSVC_PRIVACY_EPSILON_PER_WINDOW = 8.0
    return [_shop(i) for i in range(4)]


def _spent(shop, window: str = "2026-03") -> float:
    return BudgetWindow.objects.for_tenant(shop).get(window=window).epsilon_spent


def test_one_run_releases_every_aggregate_and_a_second_run_in_the_window_nothing(shops):
    outcomes = release_window(AT, params=PARAMS)
    assert [o.kind for o in outcomes] == list(SCHEDULED_KINDS)
    assert all(o.status == "released" and o.n_shops == 4 for o in outcomes)
    assert sorted(Release.objects.values_list("kind", flat=True)) == sorted(SCHEDULED_KINDS)
    assert Release.objects.get(kind="co_purchase").values  # its domain came from this run's popularity
    spent = {shop.pk: _spent(shop) for shop in shops}
    assert all(value == pytest.approx(4 * 1.0) for value in spent.values())

    again = release_window(AT + timedelta(hours=6), params=PARAMS)
    assert all(o.status == "already released" for o in again)
    assert Release.objects.count() == 4
    assert {shop.pk: _spent(shop) for shop in shops} == spent
    assert Charge.objects.for_tenant(shops[0]).count() == 4

    next_month = release_window(AT + timedelta(days=10), params=PARAMS)  # 2026-04-07
    assert all(o.status == "released" for o in next_month)
    assert all(_spent(shop, "2026-04") == pytest.approx(4.0) for shop in shops)


def test_a_shop_out_of_budget_is_left_out_and_its_refusals_recorded(shops):
    poor = shops[0]
    with dangerously_all_tenants():
        BudgetWindow.objects.for_tenant(poor).create(tenant=poor, window="2026-03", epsilon_budget=2.0,
                                                     delta_budget=0.0)
    outcomes = release_window(AT, params=PARAMS)
    assert all(o.status == "released" for o in outcomes)
    # It pays for the first two kinds, then is left out; the others are released at the same noise.
    assert [o.n_shops for o in outcomes] == [4, 4, 3, 3] and [o.refused_shops for o in outcomes] == [0, 0, 1, 1]
    assert all(r.epsilon == pytest.approx(1.0) for r in Release.objects.all())
    refused = Charge.objects.for_tenant(poor).filter(refused=True)
    assert sorted(refused.values_list("kind", flat=True)) == ["co_purchase", "product_trend"]
    assert _spent(poor) == pytest.approx(2.0)
    # A second run neither retries the refused shop nor records its refusal again.
    release_window(AT + timedelta(hours=1), params=PARAMS)
    assert refused.count() == 2 and _spent(poor) == pytest.approx(2.0)


def test_too_few_shops_release_nothing_and_a_later_run_in_the_window_retries(all_tenants, settings):
    settings.RECSVC_PRIVACY_EPSILON_PER_WINDOW = 8.0
    shops = [_shop(i) for i in range(2)]
    outcomes = release_window(AT, params=PARAMS)
    assert outcomes[0].status == "refused" and outcomes[0].refused_shops == 2
    assert outcomes[-1].status == "refused" and "popularity" in outcomes[-1].reason  # no domain for co_purchase
    assert not Release.objects.exists() and all(_spent(shop) == 0 for shop in shops)
    shops.append(_shop(2))
    assert all(o.status == "released" for o in release_window(AT + timedelta(hours=1), params=PARAMS))


def test_the_beat_entry_runs_the_task_on_the_training_queue_with_a_time_limit(shops, settings):
    settings.RECSVC_PRIVACY_RELEASE_EPSILON = 1.0
    entry = django_settings.CELERY_BEAT_SCHEDULE["privacy-release-aggregates"]
    assert entry["task"] == release_aggregates.name
    assert celery_app.amqp.router.route({}, release_aggregates.name)["queue"].name == "training"
    assert release_aggregates.soft_time_limit and release_aggregates.time_limit > release_aggregates.soft_time_limit
    result = release_aggregates.delay(AT.isoformat()).get()
    assert set(result) == set(SCHEDULED_KINDS) and all(r["status"] == "released" for r in result.values())
    again = release_aggregates.delay(AT.isoformat()).get()
    assert all(r["status"] == "already released" for r in again.values())
    with pytest.raises(ValueError):
        release_aggregates.delay("2026-03-28T02:00:00").get()  # a moment without a time zone


def test_the_page_and_the_api_name_each_kind_in_plain_words(shops):
    release_window(AT, params=PARAMS)
    with dangerously_all_tenants():
        budget = BudgetWindow.objects.for_tenant(shops[1]).get(window="2026-03")
        Charge.objects.for_tenant(shops[1]).create(tenant=shops[1], budget=budget, kind="shared_model", epsilon=2.0,
                                                   delta=1e-7, refused=True, created_at=AT)
    labels = ["Cross-shop popularity", "Cross-shop popularity of categories", "Trend over the last 7 days",
              "Bought together", "Shared cold-start model"]
    page = _logged_in(shops[1], Membership.Role.MEMBER).get("/privacy").content.decode()
    for label in labels:
        assert f">{label}</td>" in page
    assert ">product_trend</td>" not in page and ">co_purchase</td>" not in page
    body = _client_for(shops[1], ["admin"]).get("/v1/privacy").json()
    charges = {c["kind"]: c["label"] for c in body["ledger"][0]["charges"]}
    assert charges == dict(zip(["product_popularity", "category_popularity", "product_trend", "co_purchase",
                                "shared_model"], labels, strict=True))
    assert {r["kind"]: r["label"] for r in body["releases"]}["co_purchase"] == "Bought together"
    SharedModel.objects.create(window="2026-03", mechanism="opacus", epsilon=2.0, delta=1e-7, noise_multiplier=1.0,
                               sample_rate=0.05, steps=10, max_grad_norm=1.0, max_items_per_customer=20, n_shops=4,
                               n_buckets=1, dim=1, weights=b"", trained_at=AT)
    body = _client_for(shops[1], ["admin"]).get("/v1/privacy").json()
    assert [m["label"] for m in body["shared_models"]] == ["Shared cold-start model"]
