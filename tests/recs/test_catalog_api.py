"""Products and customers over the API: CRUD, upsert, lists, bulk, and hostile input (4xx, never 5xx)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from recs.models import Customer, CustomerVersion, Event, Product, ServedAnswer
from tests.factories import CustomerFactory, EventFactory, ProductFactory

pytestmark = pytest.mark.django_db

PRODUCT = {
    "id": "sku-1", "title": "Espresso cup", "description": "Porcelain", "category_path": ["Home", "Kitchen"],
    "brand": "Acme", "price": "12.50", "currency": "EUR", "stock": 4, "available": True, "tags": ["cup"],
    "attributes": {"colour": "white", "size": {"ml": 80}},
}


def _products(tenant):
    return Product.objects.for_tenant(tenant)


def _problem(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


# --- products: create, upsert, patch, get, delete ---------------------------------------------------------


def test_post_creates_and_a_second_post_conflicts(api, tenant):
    created = api.post("/v1/products", PRODUCT, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert {k: body[k] for k in PRODUCT} == PRODUCT
    again = api.post("/v1/products", {**PRODUCT, "title": "Other"}, format="json")
    _problem(again, 409)
    assert _products(tenant).get().title == "Espresso cup"


def test_put_upserts_201_then_200_and_replaces_fully(api, tenant):
    url = "/v1/products/sku-1"
    body = {k: v for k, v in PRODUCT.items() if k != "id"}
    assert api.put(url, body, format="json").status_code == 201
    replaced = api.put(url, {"title": "Mug", "price": "9.00"}, format="json")
    assert replaced.status_code == 200, replaced.content
    product = _products(tenant).get()
    assert (product.title, product.price) == ("Mug", 9)
    # A full replace resets what the payload leaves out.
    assert (product.brand, product.tags, product.attributes, product.stock) == ("", [], {}, None)
    assert replaced.json()["brand"] == ""


def test_patch_changes_only_what_it_names(api, tenant):
    api.post("/v1/products", PRODUCT, format="json")
    patched = api.patch("/v1/products/sku-1", {"price": "11.00", "stock": 0}, format="json")
    assert patched.status_code == 200, patched.content
    product = _products(tenant).get()
    assert (product.price, product.stock, product.title, product.brand) == (11, 0, "Espresso cup", "Acme")
    assert patched.json()["price"] == "11.00"
    _problem(api.patch("/v1/products/nope", {"price": "1.00"}, format="json"), 404)
    assert not _products(tenant).filter(external_id="nope").exists()


def test_get_one_and_unknown_is_404(api, tenant):
    ProductFactory(tenant=tenant, external_id="a/b c", title="Odd id")  # ids may hold any character but '/'
    ProductFactory(tenant=tenant, external_id="plain", title="Plain")
    assert api.get("/v1/products/plain").json()["title"] == "Plain"
    _problem(api.get("/v1/products/unknown"), 404)


def test_delete_is_soft_hides_the_product_and_put_brings_it_back(api, tenant):
    api.post("/v1/products", PRODUCT, format="json")
    ProductFactory(tenant=tenant, external_id="other")
    assert api.delete("/v1/products/sku-1").status_code == 204
    _problem(api.get("/v1/products/sku-1"), 404)
    _problem(api.delete("/v1/products/sku-1"), 404)
    _problem(api.patch("/v1/products/sku-1", {"title": "x"}, format="json"), 404)
    assert [p["id"] for p in api.get("/v1/products").json()["results"]] == ["other"]
    assert _products(tenant).get(external_id="sku-1").deleted  # the row stays for history and training

    back = api.put("/v1/products/sku-1", {"title": "Back again"}, format="json")
    assert back.status_code in {200, 201}, back.content
    assert api.get("/v1/products/sku-1").json()["title"] == "Back again"
    assert not _products(tenant).get(external_id="sku-1").deleted


# --- customers ------------------------------------------------------------------------------------------


def test_customer_create_upsert_patch_get(api, tenant):
    created = api.post("/v1/customers", {"id": "c-1", "attributes": {"tier": "gold"}}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["is_placeholder"] is False
    _problem(api.post("/v1/customers", {"id": "c-1"}, format="json"), 409)
    assert api.put("/v1/customers/c-2", {"attributes": {"tier": "silver"}}, format="json").status_code == 201
    assert api.put("/v1/customers/c-2", {"attributes": {"tier": "gold"}}, format="json").status_code == 200
    patched = api.patch("/v1/customers/c-1", {"attributes": {"tier": "bronze"}}, format="json")
    assert patched.status_code == 200
    assert api.get("/v1/customers/c-1").json()["attributes"] == {"tier": "bronze"}
    assert Customer.objects.for_tenant(tenant).get(external_id="c-2").attributes == {"tier": "gold"}
    _problem(api.get("/v1/customers/c-3"), 404)


def test_customer_delete_erases_their_events_and_history(api, tenant):
    api.put("/v1/customers/gone", {"attributes": {"a": 1}}, format="json")
    api.put("/v1/customers/gone", {"attributes": {"a": 2}}, format="json")
    gone = Customer.objects.for_tenant(tenant).get(external_id="gone")
    stays = CustomerFactory(tenant=tenant, external_id="stays")
    product = ProductFactory(tenant=tenant)
    EventFactory.create_batch(3, tenant=tenant, customer=gone, product=product)
    kept = EventFactory(tenant=tenant, customer=stays, product=product)
    EventFactory(tenant=tenant, customer=gone, product=product, session_id="s-gone")
    assert CustomerVersion.objects.for_tenant(tenant).filter(customer=gone).count() == 2
    for customer, session in (("gone", ""), ("", "s-gone"), ("stays", "")):  # answers served to each
        ServedAnswer.objects.create(tenant=tenant, recommendation_id=uuid.uuid4(), served_at=timezone.now(),
                                    endpoint="recommendations", variant="control", customer_external_id=customer,
                                    session_id=session, items=[product.external_id], propensities=[1.0])

    assert api.delete("/v1/customers/gone").status_code == 204

    _problem(api.get("/v1/customers/gone"), 404)
    assert list(Event.objects.for_tenant(tenant)) == [kept]
    assert not CustomerVersion.objects.for_tenant(tenant).filter(customer_id=gone.pk).exists()
    assert list(ServedAnswer.objects.for_tenant(tenant).values_list("customer_external_id", flat=True)) == ["stays"]
    assert _products(tenant).filter(pk=product.pk).exists()


# --- lists -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "factory"), [("/v1/products", ProductFactory), ("/v1/customers", CustomerFactory)])
def test_list_pages_with_a_cursor(api, tenant, url, factory):
    made = {factory(tenant=tenant).external_id for _ in range(5)}
    seen, pages, next_url = [], 0, f"{url}?page_size=2"
    while next_url:
        page = api.get(next_url)
        assert page.status_code == 200
        body = page.json()
        assert len(body["results"]) <= 2
        seen += [row["id"] for row in body["results"]]
        next_url, pages = body["next"], pages + 1
    assert pages == 3
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    _problem(api.get(f"{url}?cursor=garbage"), 404)


@pytest.mark.parametrize("page_size", ["null", "fifty", "0", "-3", "2.5", "", "٣"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_a_400(api, tenant, page_size):
    problem = _problem(api.get(f"/v1/products?page_size={page_size}"), 400)
    assert "page_size" in problem["errors"]


def test_a_page_size_above_the_cap_reads_as_the_cap(api, tenant):
    ProductFactory(tenant=tenant)
    for page_size in ("1000", "5000", "9" * 5000):  # the last would make int() raise
        assert api.get(f"/v1/products?page_size={page_size}").status_code == 200


def test_product_filters(api, tenant):
    ProductFactory(tenant=tenant, external_id="kettle", category_path=["Home", "Kitchen"], brand="Acme")
    ProductFactory(tenant=tenant, external_id="sofa", category_path=["Home", "Living"], brand="Zed")
    ProductFactory(tenant=tenant, external_id="pan", category_path=["Kitchen"], brand="Acme", available=False)
    old = timezone.now() - dt.timedelta(days=30)
    _products(tenant).filter(external_id__in=["sofa", "pan"]).update(updated_at=old)

    def ids(**params):
        response = api.get("/v1/products", params)
        assert response.status_code == 200, response.content
        return sorted(row["id"] for row in response.json()["results"])

    assert ids(category="Kitchen") == ["kettle", "pan"]
    assert ids(category="Home") == ["kettle", "sofa"]
    assert ids(category="Kitch") == []
    assert ids(brand="Acme") == ["kettle", "pan"]
    assert ids(available="false") == ["pan"]
    assert ids(available="true", brand="Acme") == ["kettle"]
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert ids(updated_since=since) == ["kettle"]
    _problem(api.get("/v1/products", {"updated_since": "last tuesday"}))
    _problem(api.get("/v1/products", {"available": "perhaps"}))


# --- bulk ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/v1/products/bulk", "/v1/customers/bulk"])
def test_bulk_stores_valid_rows_and_reports_invalid_ones(api, tenant, url):
    is_products = "products" in url
    extra = {"title": "T"} if is_products else {}
    items = [
        {"id": "ok-1", **extra},
        {"id": "bad-1", **extra, "colour": "red"},
        {"id": "ok-2", **extra, "attributes": {"k": "v"}},
        {"id": "ok-1", **extra},  # repeated inside the batch
        {"id": "bad-2", **extra, "attributes": {"k": "nul\u0000"}},
        "not an object",
    ]
    response = api.post(url, {"items": items}, format="json")
    assert response.status_code == 200, response.content
    result = response.json()
    assert (result["created"], result["rejected"]) == (2, 4)
    errors = {e["row"]: e["errors"] for e in result["errors"]}
    assert set(errors) == {1, 3, 4, 5}
    assert "colour" in errors[1] and "id" in errors[3] and "attributes" in errors[4]
    model = Product if is_products else Customer
    assert sorted(model.objects.for_tenant(tenant).values_list("external_id", flat=True)) == ["ok-1", "ok-2"]

    again = api.post(url, {"items": [{"id": "ok-1", **extra, "attributes": {"n": 1}}, {"id": "ok-3", **extra}]},
                     format="json").json()
    assert (again["created"], again["updated"], again["rejected"]) == (1, 1, 0)


@pytest.mark.parametrize(
    "body",
    [
        {"items": [{"id": "x"}, {"title": "no id"}, {"id": "p", "title": "t", "price": "-1"}]},
        {"items": []},
        {"items": "x"},
        {"items": [{"id": "p", "title": "t"}], "extra": 1},
        {},
        [],
    ],
)
def test_bulk_with_nothing_valid_is_400_and_stores_nothing(api, tenant, body):
    response = api.post("/v1/products/bulk", body, format="json")
    problem = _problem(response)
    if isinstance(body, dict) and len(body.get("items", [])) == 3:
        assert [row["row"] for row in problem["rows"]] == [0, 1, 2]
        assert "title" in problem["rows"][0]["errors"] and "price" in problem["rows"][2]["errors"]
    assert not _products(tenant).exists()


def test_bulk_row_cap(api, tenant, settings):
    settings.RECSVC_MAX_BULK_ROWS = 2
    items = [{"id": f"p{i}", "title": "t"} for i in range(3)]
    _problem(api.post("/v1/products/bulk", {"items": items}, format="json"))
    assert not _products(tenant).exists()


# --- hostile input ---------------------------------------------------------------------------------------

NESTED = {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}

HOSTILE_PRODUCTS = [
    ({"colour": "red"}, "colour"),
    ({"title": {"en": "cup"}}, "title"),
    ({"title": ["cup"]}, "title"),
    ({"title": None}, "title"),
    ({"title": ""}, "title"),
    ({"price": "abc"}, "price"),
    ({"price": "-0.01"}, "price"),
    ({"price": "1.234"}, "price"),
    ({"price": 1e20}, "price"),
    ({"stock": "ten"}, "stock"),
    ({"stock": -1}, "stock"),
    ({"stock": 2**40}, "stock"),
    ({"stock": 1.5}, "stock"),
    ({"available": "perhaps"}, "available"),
    ({"tags": "cup"}, "tags"),
    ({"tags": ["x" * 65]}, "tags"),
    ({"category_path": "Home > Kitchen"}, "category_path"),
    ({"category_path": [["nested"]]}, "category_path"),
    ({"attributes": [1, 2]}, "attributes"),
    ({"attributes": "colour=red"}, "attributes"),
    ({"attributes": NESTED}, "attributes"),
    ({"attributes": {f"k{i}": i for i in range(101)}}, "attributes"),
    ({"attributes": {"big": "x" * 20_000}}, "attributes"),
    ({"currency": "eur"}, "currency"),
    ({"currency": "EURO"}, "currency"),
    ({"title": "cup\u0000"}, "title"),
    ({"description": "\u0000"}, "description"),
    ({"brand": "a\u0000b"}, "brand"),
    ({"tags": ["ok", "n\u0000l"]}, "tags"),
    ({"category_path": ["Home", "\u0000"]}, "category_path"),
    ({"attributes": {"colour": "wh\u0000ite"}}, "attributes"),
    ({"attributes": {"co\u0000lour": "white"}}, "attributes"),
    ({"attributes": {"list": ["a", {"deep": "\u0000"}]}}, "attributes"),
    ({"updated_at": "2999-01-01T00:00:00Z"}, "updated_at"),
    ({"updated_at": "yesterday"}, "updated_at"),
    ({"id": ""}, "id"),
    ({"id": "x" * 129}, "id"),
    ({"id": 5}, "id"),
    ({"id": "nul\u0000"}, "id"),
]


@pytest.mark.parametrize(("override", "field"), HOSTILE_PRODUCTS, ids=[f for _, f in HOSTILE_PRODUCTS])
def test_hostile_product_post_is_400_with_the_field_named(api, tenant, override, field):
    body = {**PRODUCT, **override}
    problem = _problem(api.post("/v1/products", body, format="json"))
    assert field in problem["errors"], problem
    assert not _products(tenant).exists()


@pytest.mark.parametrize(
    ("override", "field"),
    [(o, f) for o, f in HOSTILE_PRODUCTS if f != "id"],
    ids=[f for _, f in HOSTILE_PRODUCTS if f != "id"],
)
def test_hostile_product_patch_is_400_and_changes_nothing(api, tenant, override, field):
    api.post("/v1/products", PRODUCT, format="json")
    before = list(_products(tenant).values())
    problem = _problem(api.patch("/v1/products/sku-1", override, format="json"))
    assert field in problem["errors"], problem
    assert list(_products(tenant).values()) == before


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"attributes": {"k": "\u0000"}}, "attributes"),
        ({"attributes": NESTED}, "attributes"),
        ({"attributes": ["a"]}, "attributes"),
        ({"updated_at": "2999-01-01T00:00:00Z"}, "updated_at"),
        ({"id": "\u0000"}, "id"),
    ],
)
def test_hostile_customer_post_is_400(api, tenant, override, field):
    problem = _problem(api.post("/v1/customers", {"id": "c-1", **override}, format="json"))
    assert field in problem["errors"], problem
    assert not Customer.objects.for_tenant(tenant).exists()


def test_id_in_body_must_match_the_url(api, tenant):
    problem = _problem(api.put("/v1/products/sku-1", {**PRODUCT, "id": "sku-2"}, format="json"))
    assert "id" in problem["errors"]
    api.post("/v1/products", PRODUCT, format="json")
    problem = _problem(api.patch("/v1/products/sku-1", {"id": "sku-2", "title": "x"}, format="json"))
    assert "id" in problem["errors"]
    _problem(api.put("/v1/customers/c-1", {"id": "c-2"}, format="json"))
    assert list(_products(tenant).values_list("external_id", "title")) == [("sku-1", "Espresso cup")]
    assert not Customer.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
    ("method", "url", "raw", "content_type", "status"),
    [
        ("POST", "/v1/products", b'{"id": "p", "title": ', "application/json", 400),
        ("POST", "/v1/products", b'\xff\xfe{"id": "p"}', "application/json", 400),
        ("POST", "/v1/products", b'{"id": "p", "title": "\\ud800"}', "application/json", 400),
        ("POST", "/v1/products", b'["id", "p"]', "application/json", 400),
        ("POST", "/v1/products", b'"just a string"', "application/json", 400),
        ("POST", "/v1/products", b"", "application/json", 400),
        ("PUT", "/v1/products/p", b"[1, 2]", "application/json", 400),
        ("PATCH", "/v1/customers/p", b"null", "application/json", 400),
        ("POST", "/v1/products", b"id=p&title=t", "application/x-www-form-urlencoded", 415),
        ("POST", "/v1/products/bulk", b"<items/>", "application/xml", 415),
    ],
)
def test_malformed_bodies_are_problems(api, tenant, method, url, raw, content_type, status):
    CustomerFactory(tenant=tenant, external_id="p")
    _problem(api.generic(method, url, raw, content_type=content_type), status)
    assert not _products(tenant).exists()


def test_huge_body_is_413_and_stores_nothing(api, tenant, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    big = {**PRODUCT, "description": "x" * 5000}
    _problem(api.post("/v1/products", big, format="json"), 413)
    _problem(api.put("/v1/products/sku-1", big, format="json"), 413)
    _problem(api.post("/v1/products/bulk", {"items": [PRODUCT] * 40}, format="json"), 413)
    assert not _products(tenant).exists()


def test_far_future_updated_at_is_refused_but_small_skew_is_tolerated(api, tenant, settings):
    settings.RECSVC_MAX_FUTURE_SKEW_SECONDS = 300
    soon = (timezone.now() + dt.timedelta(seconds=60)).isoformat()
    later = (timezone.now() + dt.timedelta(days=1)).isoformat()
    assert api.put("/v1/products/a", {"title": "t", "updated_at": soon}, format="json").status_code == 201
    _problem(api.put("/v1/products/b", {"title": "t", "updated_at": later}, format="json"))
    assert list(_products(tenant).values_list("external_id", flat=True)) == ["a"]
