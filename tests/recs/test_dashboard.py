"""The web dashboard: access rules per persona, the numbers it shows, API keys, sign-up, the SVG charts."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.dashboard import charts
from recs.models import ImportJob
from tenants.api_keys import create_api_key
from tenants.context import tenant_context
from tenants.dashboard.shop import SESSION_KEY
from tenants.models import ApiKey, Membership, Tenant
from tests.factories import CustomerFactory, EventFactory, MembershipFactory, ProductFactory

pytestmark = pytest.mark.django_db

PAGES = ["/", "/keys", "/products", "/customers", "/events", "/imports"]
RAW_KEY_RE = re.compile(r"rsk_[0-9a-f]{12}_[A-Za-z0-9_-]+")


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Personas get real passwords; the default hasher spends ~0.5 s on each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stat(html: str, name: str) -> int:
    match = re.search(rf'id="stat-{name}".*?class="stat-value">([\d,]+)<', html, re.S)
    assert match, f"no {name} stat in the page"
    return int(match.group(1).replace(",", ""))


def make_import(tenant, status, **fields) -> ImportJob:
    return ImportJob.objects.create(
        tenant=tenant, kind="events", format="ndjson", file_path="/tmp/x.ndjson", status=status, **fields
    )


@pytest.fixture
def shop_a_data(tenant, other_tenant):
    """Tenant A: 3 customers (1 placeholder), 3 live products (1 out of stock) + 1 deleted,
    6 events in the last 30 days (2 of them today) + 2 older, 2 active imports. Tenant B: noise."""
    now = timezone.now()
    customers = [CustomerFactory(tenant=tenant), CustomerFactory(tenant=tenant),
                 CustomerFactory(tenant=tenant, is_placeholder=True)]
    products = [ProductFactory(tenant=tenant, title="Blue kettle", external_id="kettle-1"),
                ProductFactory(tenant=tenant, title="Red mug", stock=0),
                ProductFactory(tenant=tenant, title="Teapot", stock=None)]
    ProductFactory(tenant=tenant, deleted=True)
    for days_ago, kind in [(0, "view"), (0, "purchase"), (1, "view"), (3, "click"), (12, "view"), (29, "view"),
                           (30, "view"), (45, "view")]:
        EventFactory(tenant=tenant, customer=customers[days_ago % 3], product=products[days_ago % 3],
                     event_type=kind, ts=now - dt.timedelta(days=days_ago))
    make_import(tenant, ImportJob.Status.QUEUED)
    make_import(tenant, ImportJob.Status.RUNNING, size_bytes=1000, processed_bytes=420)
    make_import(tenant, ImportJob.Status.SUCCEEDED)
    b_customer, b_product = CustomerFactory(tenant=other_tenant), ProductFactory(tenant=other_tenant)
    for _ in range(4):
        EventFactory(tenant=other_tenant, customer=b_customer, product=b_product, ts=now)
    make_import(other_tenant, ImportJob.Status.RUNNING)
    return {"customers": customers, "products": products}


# --- Access ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/keys/1/revoke", "/shops/new"])
def test_anonymous_visitors_are_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login?next=")


def test_login_with_email_and_password_then_logout(client, owner):
    page = client.get("/login")
    assert page.status_code == 200 and b"Log in" in page.content
    wrong = client.post("/login", {"username": owner.username, "password": "nope"})
    assert wrong.status_code == 200 and b"didn't match" in wrong.content
    response = client.post("/login", {"username": owner.username, "password": "correct horse battery"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


# --- Overview ----------------------------------------------------------------------------------------


def test_overview_counts_match_the_shops_data(owner, shop_a_data):
    html = client_for(owner).get("/").content.decode()
    assert stat(html, "customers") == 3
    assert stat(html, "products") == 3
    assert "2 in stock" in html
    assert stat(html, "events") == 8
    assert "6 in the last 30 days" in html
    assert stat(html, "imports") == 2


def test_overview_sets_its_own_tenant_context(owner, other_tenant, shop_a_data):
    # With the connection set to tenant B, row-level security would hide A's rows from a view that
    # forgot to enter A's context.
    with tenant_context(other_tenant.pk):
        html = client_for(owner).get("/").content.decode()
    assert stat(html, "customers") == 3
    assert stat(html, "events") == 8


def test_events_chart_has_one_bar_per_day(owner, shop_a_data):
    html = client_for(owner).get("/").content.decode()
    bars = re.findall(r'<rect class="bar"[^>]*data-label="([^"]+)" data-value="(\d+)"', html)
    assert len(bars) == 30
    today = timezone.now().astimezone(dt.UTC).date()
    assert bars[-1] == (f"{today:%b} {today.day}", "2")
    assert sum(int(v) for _, v in bars) == 6


def test_a_new_shop_sees_the_get_started_steps(owner):
    html = client_for(owner).get("/").content.decode()
    assert stat(html, "events") == 0
    assert "Get started" in html
    assert html.count('<rect class="bar"') == 30
    assert "No events in this period yet" in html


# --- Shops and switching -----------------------------------------------------------------------------


def test_outsider_cannot_switch_to_or_see_shop_a(outsider, tenant, other_tenant, shop_a_data):
    client = client_for(outsider)
    assert client.post("/shops/switch", {"shop": tenant.pk}).status_code == 404
    html = client.get("/").content.decode()
    assert "Shop B" in html and "Shop A" not in html
    assert stat(html, "events") == 4
    # A forged or stale session pointing at shop A is ignored and replaced.
    session = client.session
    session[SESSION_KEY] = tenant.pk
    session.save()
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "Shop A" not in response.content.decode(), path
    assert client.session[SESSION_KEY] == other_tenant.pk
    products = client.get("/products").content.decode()
    assert "Blue kettle" not in products


def test_member_of_two_shops_switches_between_them(owner, other_tenant, shop_a_data):
    MembershipFactory(tenant=other_tenant, user=owner, role=Membership.Role.MEMBER)
    client = client_for(owner)
    assert "Shop A" in client.get("/").content.decode()
    response = client.post("/shops/switch", {"shop": other_tenant.pk, "next": "/products"})
    assert response.status_code == 302 and response["Location"] == "/products"
    html = client.get("/").content.decode()
    assert stat(html, "events") == 4
    assert '<span class="role">member</span>' in html
    # An off-site "next" is not followed.
    response = client.post("/shops/switch", {"shop": other_tenant.pk, "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_switch_rejects_garbage_and_get(owner):
    client = client_for(owner)
    assert client.post("/shops/switch", {"shop": "abc"}).status_code == 404
    assert client.get("/shops/switch").status_code == 405


# --- API keys ----------------------------------------------------------------------------------------


def test_owner_creates_a_key_shown_once_that_works_until_revoked(owner, tenant, shop_a_data):
    client = client_for(owner)
    response = client.post("/keys", {"name": "Storefront", "scopes": ["ingest"]})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = RAW_KEY_RE.search(response.content.decode()).group(0)
    key = ApiKey.objects.get(tenant=tenant, name="Storefront")
    assert raw.startswith(key.prefix) and key.scopes == ["ingest"] and key.created_by == owner

    listing = client.get("/keys").content.decode()
    assert key.prefix in listing and raw not in listing

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    products = api.get("/v1/products")
    assert products.status_code == 200
    assert {p["id"] for p in products.json()["results"]} >= {"kettle-1"}

    confirm = client.get(f"/keys/{key.pk}/revoke")
    assert confirm.status_code == 200 and b"Revoke key" in confirm.content
    assert client.post(f"/keys/{key.pk}/revoke").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api.get("/v1/products").status_code == 401


def test_key_form_errors_are_shown_and_nothing_is_created(owner, tenant):
    client = client_for(owner)
    response = client.post("/keys", {"name": "  ", "scopes": ["root"]})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Give the key a name." in html or "This field is required." in html
    assert "Select a valid choice" in html
    assert not RAW_KEY_RE.search(html)
    assert not ApiKey.objects.filter(tenant=tenant).exists()


def test_member_sees_keys_read_only_and_cannot_create_or_revoke(member, tenant):
    key, _ = create_api_key(tenant, name="prod", scopes=["admin"])
    client = client_for(member)
    page = client.get("/keys").content.decode()
    assert key.prefix in page and "Read-only" in page and 'name="scopes"' not in page
    assert client.post("/keys", {"name": "mine", "scopes": ["admin"]}).status_code == 403
    assert client.get(f"/keys/{key.pk}/revoke").status_code == 403
    assert client.post(f"/keys/{key.pk}/revoke").status_code == 403
    key.refresh_from_db()
    assert key.is_active
    assert ApiKey.objects.filter(tenant=tenant).count() == 1


def test_outsider_cannot_see_or_revoke_shop_a_keys(outsider, tenant):
    key, _ = create_api_key(tenant, name="a-prod", scopes=["admin"])
    client = client_for(outsider)
    assert key.prefix not in client.get("/keys").content.decode()
    assert client.get(f"/keys/{key.pk}/revoke").status_code == 404
    assert client.post(f"/keys/{key.pk}/revoke").status_code == 404
    key.refresh_from_db()
    assert key.is_active


def test_csrf_is_enforced_on_posts(owner, tenant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    refused = client.post("/keys", {"name": "x", "scopes": ["ingest"]})
    assert refused.status_code == 403
    assert not ApiKey.objects.filter(tenant=tenant).exists()
    client.get("/keys")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post("/keys", {"name": "x", "scopes": ["ingest"], "csrfmiddlewaretoken": token})
    assert accepted.status_code == 200
    assert ApiKey.objects.filter(tenant=tenant).count() == 1


# --- Shops -------------------------------------------------------------------------------------------


# The public sign-up itself (e-mail confirmation, no account disclosure, limits): tests/tenants/test_dashboard_auth.py


def test_signed_in_user_adds_a_shop_and_lands_in_it(outsider):
    client = client_for(outsider)
    assert client.get("/signup")["Location"] == "/shops/new"
    response = client.post("/shops/new", {"shop_name": "Second Store"})
    assert response.status_code == 302
    tenant = Tenant.objects.get(name="Second Store")
    assert Membership.objects.get(tenant=tenant, user=outsider).role == Membership.Role.OWNER
    assert "Second Store" in client.get("/").content.decode()


def test_user_without_a_shop_is_asked_to_create_one(client):
    user = get_user_model().objects.create_user("lonely@example.com", password="x")
    client.force_login(user)
    assert client.get("/")["Location"] == "/shops/new"


# --- Data pages --------------------------------------------------------------------------------------


def test_products_search_stock_filter_and_pagination(owner, tenant, shop_a_data):
    client = client_for(owner)
    html = client.get("/products").content.decode()
    assert "Blue kettle" in html and "Out of stock" in html and "3 products" in html
    assert "Blue kettle" in client.get("/products?q=kettle").content.decode()
    by_id = client.get("/products?q=kettle-1").content.decode()
    assert "Blue kettle" in by_id and "Red mug" not in by_id
    out = client.get("/products?stock=out").content.decode()
    assert "Red mug" in out and "Blue kettle" not in out
    ProductFactory.create_batch(30, tenant=tenant)
    page2 = client.get("/products?page=2").content.decode()
    assert "Showing 26\N{EN DASH}33 of 33" in page2
    assert client.get("/products?page=999&stock=bogus").status_code == 200


def test_customers_list_shows_activity(owner, shop_a_data):
    html = client_for(owner).get("/customers").content.decode()
    assert "3 customers" in html and "from events" in html
    first = shop_a_data["customers"][0].external_id
    assert first in client_for(owner).get(f"/customers?q={first}").content.decode()


def test_events_filter_by_type_and_page_with_a_cursor(owner, tenant, shop_a_data):
    client = client_for(owner)
    purchases = client.get("/events?type=purchase").content.decode()
    assert purchases.count('<span class="badge green">purchase</span>') == 1
    assert '<span class="badge blue">view</span>' not in purchases
    customer, product = shop_a_data["customers"][0], shop_a_data["products"][0]
    start = timezone.now() - dt.timedelta(days=60)
    for i in range(55):
        EventFactory(tenant=tenant, customer=customer, product=product, ts=start + dt.timedelta(minutes=i))
    first = client.get("/events").content.decode()
    assert first.count("<tr>") == 51  # header + 50 rows
    cursor = re.search(r'before=([\d.]+)"', first).group(1)
    second = client.get(f"/events?before={cursor}").content.decode()
    assert second.count("<tr>") == 1 + (8 + 55 - 50)
    assert client.get("/events?before=not-a-cursor&type=nope").status_code == 200
    assert client.get("/events?before=99999999999999999999999.1").status_code == 200


def test_imports_show_progress(owner, shop_a_data):
    html = client_for(owner).get("/imports").content.decode()
    assert 'aria-valuenow="42"' in html and "width: 42%" in html
    assert 'aria-valuenow="100"' in html  # the succeeded one
    jobs = html[html.index('id="imports"'):]  # the table (the upload form above has a bar of its own)
    assert jobs.count('role="progressbar"') == 3


# --- Charts ------------------------------------------------------------------------------------------


def test_bar_chart_draws_one_scaled_bar_per_value():
    svg = charts.bar_chart(["a", "b", "c"], [0, 5, 10], title="t", width=300, height=200)
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 3
    assert heights[0] == 0 and heights[2] == pytest.approx(2 * heights[1])
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_bar_chart_handles_all_zero_and_escapes_labels():
    svg = charts.bar_chart(["<script>x</script>", "b"], [0, 0], title='"quoted" & <b>')
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'aria-label="&quot;quoted&quot; &amp; &lt;b&gt;"' in svg
    with pytest.raises(ValueError):
        charts.bar_chart(["a"], [1, 2], title="t")
    with pytest.raises(ValueError):
        charts.bar_chart(["a"], [-1], title="t")
    with pytest.raises(ValueError):
        charts.bar_chart(["a"], [1], title="t", color='red" onload="x')


def test_bar_chart_thins_x_labels_but_not_bars():
    labels = [f"d{i}" for i in range(90)]
    svg = charts.bar_chart(labels, list(range(90)), title="t", width=600)
    assert svg.count('class="bar"') == 90
    assert 0 < svg.count('class="xlabel"') < 20


def test_line_chart_series_gaps_and_legend():
    svg = charts.line_chart(
        ["1", "2", "3", "4"],
        [charts.Series("train", [1.2, 0.9, 0.7, 0.6]), charts.Series("validation", [1.3, None, 0.8, 0.75])],
        title="Loss", from_zero=False,
    )
    paths = re.findall(r'<path class="line" d="([^"]+)"[^>]*data-series="([^"]+)"', svg)
    assert [name for _, name in paths] == ["train", "validation"]
    assert paths[0][0].count("M") == 1 and paths[0][0].count("L") == 3
    assert paths[1][0].count("M") == 2  # the gap starts a new segment
    assert svg.count('class="point"') == 7
    assert ">validation</text>" in svg  # legend
    with pytest.raises(ValueError):
        charts.line_chart(["1"], [charts.Series("x", [1.0, 2.0])], title="t")
    with pytest.raises(ValueError):
        charts.line_chart(["1"], [charts.Series("x", [float("nan")])], title="t")


def test_nice_ticks_cover_the_range_with_round_steps():
    assert charts.nice_ticks(0, 37) == [0, 10, 20, 30, 40]
    assert charts.nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1]
    assert charts.nice_ticks(0, 1, integer=True) == [0, 1]
    assert charts.nice_ticks(0, 7, integer=True) == [0, 2, 4, 6, 8]
    assert charts.nice_ticks(5, 5)[0] <= 5 <= charts.nice_ticks(5, 5)[-1]
    ticks = charts.nice_ticks(0.31, 2.7)
    assert ticks[0] <= 0.31 and ticks[-1] >= 2.7 and len(ticks) <= 6
    assert charts.compact_number(1500) == "1.5k" and charts.compact_number(2_000_000) == "2M"
