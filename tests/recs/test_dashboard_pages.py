"""The dashboard's customer and product pages, the preview of answers on the Rules and Promotions pages, and
how the data pages write dates ("first seen" never after "last seen"; a year that is not this one shows)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client

from recs.dashboard import preview, queries
from recs.models import Customer, Event, Product
from recs.rules import create_boost, create_promotion, create_rule
from serving.answers import RecommendRequest, recommendations_answer
from tenants.api_keys import create_api_key
from tenants.context import tenant_context
from tenants.models import ApiKey, Membership
from tests.factories import (
    CustomerFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from tests.recs.dashboard_data import OCT_2016, make_shop
from tests.serving.trained import forget_served_state, load_shop, train_active_version

pytestmark = pytest.mark.django_db

@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clean_serving_state():
    yield
    forget_served_state()  # compiled rules and candidate rows are kept per process and tenant id


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def shop(tenant, other_tenant):
    return make_shop(tenant, other_tenant)


def preview_ids(html: str) -> list[str]:
    """The product ids of the preview's rows, in order."""
    table = html[html.index('id="preview-answer"'):]
    return re.findall(r'<tr data-id="([^"]+)" data-change="[^"]*">', table)


def changes(html: str) -> dict[str, str]:
    table = html[html.index('id="preview-answer"'):]
    return dict(re.findall(r'<tr data-id="([^"]+)" data-change="([^"]*)">', table))


def api_ids(tenant, customer_id: str) -> list[str]:
    with tenant_context(tenant.pk):
        answer = recommendations_answer(tenant.pk, RecommendRequest(customer_id=customer_id, k=10, explain=True),
                                        use_cache=False)
    return [item["id"] for item in answer["items"]]


# --- the customer page -------------------------------------------------------------------------------------


def test_customer_page_shows_recent_events_and_the_explained_answer(owner, tenant, shop,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        create_boost(tenant, {"name": "Lift Acme", "conditions": [{"field": "brand", "op": "eq", "value": "Acme"}],
                              "factor": 1.5})
        create_promotion(tenant, {"name": "Mug week", "product_ids": ["mug"], "threshold": 0.0})
    response = client_for(owner).get(f"/customers/{shop['ann'].pk}")
    assert response.status_code == 200
    html = response.content.decode()
    # Her events, with the year they happened in.
    assert "Teapot" in html and "Oct 16, 2016, 14:05:09" in html and "tier: gold" in html
    # What the API answers her now (no model yet: the popular products that pass the rules), in its order.
    assert "No model is serving yet" in html
    ids = preview_ids(html)
    assert ids == api_ids(tenant, "ann")
    assert ids == ["kettle", "gift", "mug", "teapot"]  # the boost lifts the kettle over the promoted mug
    assert "boost Lift Acme \N{MULTIPLICATION SIGN}1.5" in html and "promotion Mug week · lifted" in html
    # Each product of the answer links to its page.
    assert f'href="/products/{shop["kettle"].pk}"' in html


def test_customer_page_says_which_rule_removed_what(owner, tenant, shop, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        rule = create_rule(tenant, {"name": "No gift cards", "kind": "exclude_categories",
                                    "params": {"categories": ["Gift cards"]}})
    html = client_for(owner).get(f"/customers/{shop['ann'].pk}").content.decode()
    assert "gift" not in preview_ids(html)
    assert re.search(rf'Rule <a href="/rules/{rule.pk}">No gift cards</a>: <strong>1</strong> candidate<', html)


def test_customer_and_product_pages_of_another_shop_are_404(owner, outsider, shop):
    client = client_for(owner)
    assert client.get(f"/customers/{shop['b_customer'].pk}").status_code == 404
    assert client.get(f"/products/{shop['b_product'].pk}").status_code == 404
    assert client.get("/customers/999999999").status_code == 404
    # Shop B's owner reaches its own rows and not shop A's.
    other = client_for(outsider)
    assert other.get(f"/customers/{shop['b_customer'].pk}").status_code == 200
    assert other.get(f"/customers/{shop['ann'].pk}").status_code == 404


def test_lists_link_to_the_customer_and_product_pages(owner, shop):
    client = client_for(owner)
    assert f'href="/customers/{shop["ann"].pk}"' in client.get("/customers").content.decode()
    assert f'href="/products/{shop["teapot"].pk}"' in client.get("/products").content.decode()
    events = client.get("/events").content.decode()
    assert f'href="/customers/{shop["ann"].pk}"' in events and f'href="/products/{shop["teapot"].pk}"' in events


def test_product_page_shows_the_product_and_its_similar_products(owner, member, shop):
    for user in (owner, member):
        response = client_for(user).get(f"/products/{shop['kettle'].pk}")
        assert response.status_code == 200
        html = response.content.decode()
        assert "Blue kettle" in html and "19.90 EUR" in html
        assert "Home \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} Kitchen" in html
        ids = preview_ids(html)
        assert ids and "kettle" not in ids  # never the product itself
        assert ids[0] == "gift"  # no model: the most popular others


# --- a trained shop: the preview is the API's answer ---------------------------------------------------------


@pytest.fixture
def trained(all_tenants, settings, tmp_path):
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    tenant = TenantFactory()
    load_shop(tenant)
    version = train_active_version(tenant)
    user = MembershipFactory(tenant=tenant, role=Membership.Role.OWNER, user=UserFactory()).user
    return tenant, version, user


def test_a_personalised_preview_is_what_the_api_answers(trained):
    tenant, version, user = trained
    with tenant_context(tenant.pk):
        customer = Customer.objects.for_tenant(tenant).get(
            pk=Event.objects.for_tenant(tenant).values_list("customer_id", flat=True).first())
    api = Client()
    _, raw = create_api_key(tenant, name="t", scopes=["recommend"])
    answer = api.get("/v1/recommendations", {"customer_id": customer.external_id, "explain": "true"},
                     HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert answer["reason"] == "personalized"

    html = client_for(user).get(f"/customers/{customer.pk}").content.decode()
    assert preview_ids(html) == [item["id"] for item in answer["items"]]
    assert "Personalised by the serving model" in html and f'href="/models/{version.pk}"' in html
    first = answer["items"][0]
    assert f"{first['score']:.4f}" in html and f"ranker {first['explain']['ranker_score']:.3f}" in html

    with tenant_context(tenant.pk):
        product = queries.products(tenant.pk).first()
    similar = client_for(user).get(f"/products/{product.pk}").content.decode()
    assert "Products the serving model places nearest to this one" in similar
    assert len(preview_ids(similar)) == 10 and product.external_id not in preview_ids(similar)


# --- the preview panel of the Rules and Promotions pages -----------------------------------------------------


def test_rules_page_preview_marks_what_a_change_did(owner, tenant, shop, django_capture_on_commit_callbacks):
    client = client_for(owner)
    assert "preview-answer" not in client.get("/rules").content.decode()  # nothing typed yet

    before = client.get("/rules", {"preview": "ann"}).content.decode()
    assert preview_ids(before) == ["gift", "kettle", "mug", "teapot"]  # by popularity
    assert 'id="preview-changes"' not in before  # nothing to compare with yet
    assert f'href="/customers/{shop["ann"].pk}"' in before

    with django_capture_on_commit_callbacks(execute=True):
        create_rule(tenant, {"name": "No gift cards", "kind": "exclude_categories",
                             "params": {"categories": ["Gift cards"]}})
    # Back on the page (as after saving the rule), the same customer's answer, marked against the one before.
    after = client.get("/rules").content.decode()
    assert "gift" not in preview_ids(after)
    assert "Changed since the previous preview" in after
    assert re.search(r'No longer recommended: <span class="dropped" data-id="gift">Gift card</span>', after)
    assert changes(after)["kettle"] == "up"

    again = client.get("/rules").content.decode()
    assert "Unchanged since the previous preview" in again

    # The Promotions page shows the same panel for the same customer; a promotion lifts the teapot.
    with django_capture_on_commit_callbacks(execute=True):
        create_promotion(tenant, {"name": "Teapot week", "product_ids": ["teapot"], "threshold": 0.0})
    promotions = client.get("/promotions").content.decode()
    assert changes(promotions)["teapot"] == "up" and changes(promotions)["mug"] == "down"
    assert "promotion Teapot week · lifted" in promotions

    cleared = client.get("/rules", {"preview": ""}).content.decode()
    assert "preview-answer" not in cleared
    assert "preview-answer" not in client.get("/rules").content.decode()


def test_preview_of_an_unknown_id_says_so_and_escapes_it(owner, shop):
    typed = '<script>alert("x")</script>'
    response = client_for(owner).get("/rules", {"preview": typed})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert" not in html
    assert "No customer “&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;”" in html
    assert preview_ids(html)[0] == "gift"  # what a visitor the shop has not sent would see


def test_a_preview_the_filters_emptied_says_so_in_words(owner, tenant, shop):
    Product.objects.for_tenant(tenant).update(stock=0)
    html = client_for(owner).get("/rules", {"preview": "ann"}).content.decode()
    assert 'data-reason="filtered_out"' in html and preview_ids(html) == []
    reason = re.search(r'<p class="preview-reason">(.*?)</p>', html, re.S).group(1)
    assert reason == preview.REASONS["filtered_out"].replace("'", "&#x27;")
    assert "filtered_out" not in reason  # a sentence, not the API's code


def test_member_sees_the_preview_too(member, shop):
    html = client_for(member).get("/promotions", {"preview": "ann"}).content.decode()
    assert preview_ids(html) and "Read-only" in html


# --- dates ---------------------------------------------------------------------------------------------------


def test_first_seen_is_never_after_last_seen(owner, tenant, shop):
    """Ann's row was created today (the import) but her events are of 2016: first seen is 2016."""
    activity = queries.customer_activity(tenant.pk, [shop["ann"], shop["crowd"]])
    ann, crowd = activity[shop["ann"].pk], activity[shop["crowd"].pk]
    assert ann.first_seen == ann.last_seen == OCT_2016
    assert crowd.first_seen == OCT_2016 - dt.timedelta(hours=7) and crowd.last_seen == OCT_2016
    quiet = CustomerFactory(tenant=tenant, external_id="quiet")
    assert queries.customer_activity(tenant.pk, [quiet])[quiet.pk] == queries.Activity(0, quiet.created_at, None)

    html = client_for(owner).get("/customers").content.decode()
    row = re.search(r'>ann</a>.*?</tr>', html, re.S).group(0)
    assert "Oct 16, 2016</span>" in row  # first seen, with its year
    assert "years" in row and "ago" in row  # last seen
    page = client_for(owner).get(f"/customers/{shop['ann'].pk}").content.decode()
    assert re.search(r'id="stat-first-seen".*?Oct 16, 2016<', page, re.S)
    assert re.search(r'id="stat-last-seen".*?Oct 16, 2016<', page, re.S)


def test_events_page_shows_the_year_of_old_events(owner, shop):
    html = client_for(owner).get("/events").content.decode()
    assert "Oct 16, 2016, 14:05:09" in html


def test_promotion_windows_and_revoked_keys_show_the_year(owner, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        create_promotion(tenant, {"name": "Old sale", "product_ids": ["sku-1"], "threshold": 0.2,
                                  "starts_at": "2016-10-16T09:00:00Z", "ends_at": "2016-10-20T18:30:00Z"})
    html = client_for(owner).get("/promotions").content.decode()
    assert "Oct 16, 2016, 09:00 → Oct 20, 2016, 18:30" in html
    key, _ = create_api_key(tenant, name="old", scopes=["recommend"])
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=OCT_2016)
    assert "Revoked Oct 16, 2016</span>" in client_for(owner).get("/keys").content.decode()
