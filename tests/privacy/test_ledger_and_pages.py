"""Opt-in, releases and the budget ledger against the real PostgreSQL, through the API and the dashboard.

What they prove: a shop opts in and out with an admin key or as an owner (members and other scopes cannot);
a release charges every contributing shop and the ledger shows budget, spent, remaining and each charge;
a release past a budget is refused (the shop left out, recorded, nothing released with less noise, and no
release at all below the minimum of shops); no endpoint, page or release shows another shop's rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from privacy.bounding import Bounds
from privacy.models import BudgetWindow, Charge, Release
from privacy.optin import set_opted_in
from privacy.params import release_params
from privacy.releases import release
from tenants.context import dangerously_all_tenants
from tenants.models import Membership
from tests.conftest import _client_for
from tests.factories import CustomerFactory, EventFactory, ProductFactory, TenantFactory

AT = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)  # a fixed moment: nothing depends on today's date
SHARED_GTIN = "4006381333931"
PARAMS = release_params(epsilon=3.0, bounds=Bounds(max_keys=5, max_per_key=1), shop_cap=100.0, min_shops=3)


def _shop(name: str, *, customers: int, secret_title: str):
    """A shop selling the shared GTIN product and one product of its own, bought by its customers."""
    shop = TenantFactory(name=name, slug=name.lower().replace(" ", "-"))
    shared = ProductFactory(tenant=shop, title=f"{name} mug", attributes={"ean": SHARED_GTIN})
    own = ProductFactory(tenant=shop, title=secret_title, brand="", category_path=[])
    for i in range(customers):
        customer = CustomerFactory(tenant=shop, external_id=f"{name}-secret-customer-{i}")
        for product in (shared, own):
            EventFactory(tenant=shop, customer=customer, product=product, event_type="purchase",
                         ts=AT - timedelta(days=1, minutes=i))
    set_opted_in(shop.pk, True, at=AT - timedelta(days=10))
    return shop


@pytest.fixture
def four_shops(all_tenants):
    return [_shop(f"Shop {i}", customers=5 + 3 * i, secret_title=f"Secret recipe {i} xq{i}") for i in range(4)]


def test_a_release_charges_every_contributing_shop_and_shares_only_common_keys(four_shops):
    outcome = release("product_popularity", AT, params=PARAMS)
    assert outcome.contributors == sorted(s.pk for s in four_shops) and outcome.refused == {}
    released = outcome.release
    assert released.n_shops == 4 and released.epsilon <= 3.0 and released.mechanism.startswith("opendp")
    # Only the key all shops sell is released; no shop's own product (title tokens) appears.
    assert set(released.values) == {"gtin:0" + SHARED_GTIN}
    for shop in four_shops:
        budget = BudgetWindow.objects.for_tenant(shop).get(window="2026-03")
        assert budget.epsilon_spent == pytest.approx(released.epsilon)
        assert Charge.objects.for_tenant(shop).filter(release=released, refused=False).count() == 1


def test_the_ledger_refuses_a_release_past_the_budget(four_shops, settings):
    settings.RECSVC_PRIVACY_EPSILON_PER_WINDOW = 8.0
    assert release("product_popularity", AT, params=PARAMS).release is not None
    assert release("category_popularity", AT, params=PARAMS).release is not None
    third = release("product_popularity", AT, params=PARAMS)  # 3 + 3 + 3 > 8
    assert third.release is None and third.contributors == []
    assert set(third.refused) == {s.pk for s in four_shops}
    for shop in four_shops:
        budget = BudgetWindow.objects.for_tenant(shop).get(window="2026-03")
        assert budget.epsilon_spent <= budget.epsilon_budget
        assert Charge.objects.for_tenant(shop).filter(refused=True).count() == 1
    assert Release.objects.count() == 2
    # A new window has a new budget.
    assert release("product_popularity", AT + timedelta(days=15), params=PARAMS).release is not None


def test_a_shop_out_of_budget_is_left_out_not_given_less_noise(four_shops, settings):
    settings.RECSVC_PRIVACY_EPSILON_PER_WINDOW = 8.0
    poor = four_shops[0]
    with dangerously_all_tenants():
        budget = BudgetWindow.objects.for_tenant(poor).create(tenant=poor, window="2026-03", epsilon_budget=2.0,
                                                             delta_budget=0.0)
    outcome = release("product_popularity", AT, params=PARAMS)
    assert poor.pk in outcome.refused and poor.pk not in outcome.contributors
    assert outcome.release.n_shops == 3 and outcome.release.epsilon == pytest.approx(3.0, rel=1e-6)
    budget.refresh_from_db()
    assert budget.epsilon_spent == 0


def test_a_shop_that_opts_out_stops_contributing_and_past_releases_stay(four_shops):
    first = release("product_popularity", AT, params=PARAMS).release
    set_opted_in(four_shops[0].pk, False, at=AT)
    second = release("product_popularity", AT + timedelta(hours=1), params=PARAMS)
    assert four_shops[0].pk not in second.contributors and second.release.n_shops == 3
    assert Release.objects.filter(pk=first.pk).exists()


def test_the_api_opts_in_and_out_and_shows_only_the_shops_own_ledger(four_shops):
    release("product_popularity", AT, params=PARAMS)
    newcomer = TenantFactory(name="Newcomer", slug="newcomer")
    api = _client_for(newcomer, ["admin"])
    body = api.get("/v1/privacy").json()
    assert body["opted_in"] is False and body["ledger"] == [] and body["releases"] == []
    assert "never" in body["explanation"]["what_is_shared"] and "stay released" in body["explanation"]["way_out"]
    assert body["privacy_unit"] == "end customer"
    body = api.put("/v1/privacy", {"opted_in": True}, format="json").json()
    assert body["opted_in"] is True and len(body["releases"]) == 1
    mine = _client_for(four_shops[1], ["admin"]).get("/v1/privacy")
    text = mine.content.decode()
    assert mine.json()["ledger"][0]["epsilon_spent"] > 0 and len(mine.json()["ledger"][0]["charges"]) == 1
    for other in (four_shops[0], four_shops[2], four_shops[3]):
        assert other.name not in text
    assert "secret" not in text.lower()  # no product title or customer id of any shop


def test_the_api_needs_an_admin_key_and_a_boolean(four_shops):
    ingest = _client_for(four_shops[0], ["ingest"])
    assert ingest.get("/v1/privacy").status_code == 403
    assert ingest.put("/v1/privacy", {"opted_in": False}, format="json").status_code == 403
    admin = _client_for(four_shops[0], ["admin"])
    refused = admin.put("/v1/privacy", {"opted_in": "perhaps"}, format="json")
    assert refused.status_code == 400 and refused["Content-Type"].startswith("application/problem+json")


def _logged_in(shop, role):
    from tests.factories import MembershipFactory, UserFactory

    user = MembershipFactory(tenant=shop, role=role, user=UserFactory()).user
    client = Client()
    client.force_login(user)
    return client


def test_the_page_explains_lets_owners_leave_and_shows_only_its_own_ledger(four_shops):
    release("product_popularity", AT, params=PARAMS)
    owner = _logged_in(four_shops[1], Membership.Role.OWNER)
    page = owner.get("/privacy").content.decode()
    assert "noise" in page and "stay released" in page and "Stop contributing" in page and "remaining" in page
    for other in (four_shops[0], four_shops[2], four_shops[3]):
        assert other.name not in page
    assert "Secret recipe" not in page and "secret-customer" not in page
    assert owner.post("/privacy/choice", {"opted_in": "0"}).status_code == 302
    page = owner.get("/privacy").content.decode()
    assert "Take part" in page and "What was released before stays released" in page
    member = _logged_in(four_shops[2], Membership.Role.MEMBER)
    assert member.post("/privacy/choice", {"opted_in": "0"}).status_code == 403
    assert "An owner can change this" in member.get("/privacy").content.decode()
