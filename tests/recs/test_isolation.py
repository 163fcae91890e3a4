"""Cross-tenant isolation on every /v1/ endpoint: tenant B's key never reads, changes or learns of A's data.

Endpoints come from the OpenAPI schema (drf-spectacular's generator) cross-checked against the router and
the URL resolver, so a new endpoint is covered by these tests the day it is added.
"""

from __future__ import annotations

import functools
import uuid

import pytest
from django.apps import apps
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from experiments.lifecycle import create_experiment
from experiments.urls import router as experiments_router
from privacy.models import PrivacySettings
from privacy.optin import set_opted_in
from recs.api.urls import router
from recs.ingest.catalog import upsert_customers, upsert_products
from recs.integrations.connections import create_connection
from recs.models import Customer, DataExport, Event, EventType, ImportJob, Product, RecommendationSettings
from recs.rules import create_boost, create_promotion, create_rule, update_settings
from tenants.api_keys import create_api_key, revoke_api_key
from tenants.models import ApiKey
from tenants.scoping import TenantOwnedModel
from tenants.viewsets import TenantScopedMixin
from tests.factories import EventFactory
from training.registry.models import ModelVersion
from training.urls import router as training_router

pytestmark = pytest.mark.django_db

# Every string tenant A stores carries this marker: it must never appear in a response to tenant B.
MARK = "tenant_a_secret"
A_SKU = f"{MARK}_sku"
A_CUSTOMER = f"{MARK}_customer"
METHODS = ("get", "post", "put", "patch", "delete")
# Documentation endpoints under /v1/ that are deliberately public and hold no tenant data.
PUBLIC_PATHS = {"/v1/schema", "/v1/docs", "/v1/redoc"}
# One object per tenant, no id in the path: each key reaches only its own (test_singletons_are_per_tenant).
# One object per shop, read and replaced at one path: each with a write that changes B's own and how to read
# it back.
SINGLETONS = {
    "/v1/recommendation-settings": (
        {"max_per_category": 9}, ("put", "patch"),
        lambda tenant: RecommendationSettings.objects.for_tenant(tenant).get().max_per_category == 9,
    ),
    "/v1/privacy": (
        {"opted_in": True}, ("put",),
        lambda tenant: PrivacySettings.objects.for_tenant(tenant).get().opted_in,
    ),
}
SINGLETON_PATHS = set(SINGLETONS)
TENANT_MODELS = [m for m in apps.get_models() if issubclass(m, TenantOwnedModel)]


@functools.cache
def _operations() -> tuple[tuple[str, str], ...]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return tuple(
        (path, method)
        for path, item in sorted(schema["paths"].items())
        if path.startswith("/v1/")
        for method in METHODS
        if method in item
    )


def _detail_ops() -> list[tuple[str, str]]:
    return [(p, m) for p, m in _operations() if "{" in p]


def _list_ops(method: str) -> list[tuple[str, str]]:
    return [(p, m) for p, m in _operations() if "{" not in p and m == method and p not in SINGLETON_PATHS]


def _ids(ops):
    return [f"{m.upper()} {p}" for p, m in ops]


def _view_class(path: str):
    """The viewset behind a schema path (path parameters filled with a dummy value)."""
    concrete = path.replace("{", "").replace("}", "")
    return resolve(concrete).func.cls


def _fill(path: str, value) -> str:
    start, end = path.index("{"), path.index("}")
    assert path.count("{") == 1, f"{path}: extend the isolation suite for several path parameters"
    return f"{path[:start]}{value}{path[end + 1:]}"


def _snapshot(tenant) -> dict[str, list[dict]]:
    """Every tenant-owned row of `tenant`, every column (the caller holds the all-tenants context)."""
    return {
        model._meta.label: list(model.dangerously_unscoped.filter(tenant=tenant).order_by("pk").values())
        for model in TENANT_MODELS
    }


@pytest.fixture
def world_a(tenant):
    """Tenant A with one row behind every endpoint, each carrying MARK in its strings."""
    upsert_products(tenant.pk, [{"external_id": A_SKU, "title": f"{MARK} title", "brand": MARK, "price": 10}])
    upsert_customers(tenant.pk, [{"external_id": A_CUSTOMER, "attributes": {"note": MARK}}])
    product = Product.objects.for_tenant(tenant).get(external_id=A_SKU)
    customer = Customer.objects.for_tenant(tenant).get(external_id=A_CUSTOMER)
    EventFactory(tenant=tenant, customer=customer, product=product, event_id=f"{MARK}_evt", session_id=MARK)
    EventType.objects.create(tenant=tenant, name=MARK, weight=3.0)
    ImportJob.objects.create(
        tenant=tenant, kind=ImportJob.Kind.EVENTS, format=ImportJob.Format.NDJSON,
        file_path=f"/nonexistent/{MARK}.ndjson", error_message=MARK,
    )
    ModelVersion.objects.create(
        tenant=tenant, status=ModelVersion.Status.READY, metrics={"ndcg@10": 0.1},
        status_reason=f"not activated: {MARK}", hyperparameters={"seed": 7},
    )
    create_connection(tenant.pk, platform="shopify", shop_domain="tenant-a.myshopify.com", secret=MARK, name=MARK)
    DataExport.objects.create(tenant=tenant, subject=MARK, content={"customers": [{"id": A_CUSTOMER}], "events": []})
    mark_brand = [{"field": "brand", "op": "eq", "value": MARK}]
    # Steering rows that leave A's one product recommendable (the recommendation listings must show it).
    create_rule(tenant, {"name": MARK, "kind": "exclude_products", "params": {"product_ids": [f"{MARK}_hidden"]}})
    create_promotion(tenant, {"name": MARK, "product_ids": [A_SKU], "conditions": mark_brand, "threshold": 0.2})
    create_boost(tenant, {"name": MARK, "conditions": mark_brand, "factor": 2})
    update_settings(tenant, {"exclude_out_of_stock": False, "exclude_consumed_days": 7, "max_per_category": 3})
    set_opted_in(tenant.pk, True, at=timezone.now())
    create_experiment(tenant.pk, {"name": MARK, "goal": "revenue_per_1000",
                                  "variants": [{"name": "control", "weight": 1}, {"name": "b", "weight": 1}]})
    return tenant


def _a_object(view_class, tenant):
    model = getattr(view_class, "model", None)
    assert model is not None, f"{view_class.__name__} names no model: teach the isolation suite about it"
    obj = model.dangerously_unscoped.filter(tenant=tenant).order_by("pk").first()
    assert obj is not None, f"world_a has no {model.__name__}: add one so {view_class.__name__} is covered"
    return model, view_class.lookup_field, obj


def _lookup_value(obj, lookup_field: str):
    return getattr(obj, "pk" if lookup_field == "pk" else lookup_field)


def _send(client, method: str, path: str, body=None):
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    return problem


# --- discovery ---------------------------------------------------------------------------------------


def _v1_callbacks(patterns, prefix: str = "") -> dict[str, object]:
    """Route -> view callback for everything the URL resolver mounts under v1/."""
    found: dict[str, object] = {}
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            found.update(_v1_callbacks(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern) and route.startswith("v1/"):
            found[route] = pattern.callback
    return found


def test_the_schema_lists_every_routed_endpoint():
    documented = {resolve(_probe_url(path)).func for path, _ in _operations()}
    routed = {
        route: callback for route, callback in _v1_callbacks(get_resolver().url_patterns).items()
        if f"/{route}" not in PUBLIC_PATHS
    }
    assert routed, "the resolver walk found nothing: the test is broken"
    assert {route for route, callback in routed.items() if callback not in documented} == set()
    for prefix, viewset, _ in [*router.registry, *training_router.registry, *experiments_router.registry]:
        assert issubclass(viewset, TenantScopedMixin), f"/v1/{prefix} must go through the tenant base view"
        assert viewset.model in TENANT_MODELS, f"/v1/{prefix} must serve a tenant-owned model"
    assert len(_detail_ops()) >= 8 and len(_list_ops("get")) >= 5


# --- B against A's objects -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "method"), _detail_ops(), ids=_ids(_detail_ops()))
def test_outsider_cannot_read_or_change_a_detail(api, outsider_api, other_tenant, world_a, path, method):
    model, lookup_field, obj = _a_object(_view_class(path), world_a)
    url = _fill(path, _lookup_value(obj, lookup_field))
    # A's own representation is a valid body for A's writes: the most plausible attack payload.
    # (An action such as /v1/models/{id}/activate is POST-only: A reads the object it acts on.)
    own = api.get(_fill(path[: path.index("}") + 1], _lookup_value(obj, lookup_field)))
    assert own.status_code == 200, own.content
    body = own.json() if method in {"put", "patch"} else None
    before = _snapshot(world_a)

    response = _send(outsider_api, method, url, body)

    if method == "put" and lookup_field != "pk":
        # PUT by the shop's own key (product id, event type name) is an upsert: B gets B's own object, never
        # A's. PUT by the service's id (rules, promotions, boosts) replaces an existing row: a 404 below.
        assert response.status_code in {200, 201}, response.content
        lookup = {lookup_field: _lookup_value(obj, lookup_field)}
        assert model.objects.for_tenant(other_tenant).filter(**lookup).exists()
    else:
        problem = _assert_problem(response, 404)
        # Identical to an id that never existed: B learns nothing about A's ids.
        missing = _send(outsider_api, method, _fill(path, _never_existing(lookup_field)), body)
        assert missing.status_code == 404
        assert problem["detail"] == missing.json()["detail"]
        assert MARK not in response.content.decode()
    assert _snapshot(world_a) == before


def _never_existing(lookup_field: str):
    return 2**62 if lookup_field == "pk" else f"never_{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize(("path", "method"), _list_ops("get"), ids=_ids(_list_ops("get")))
def test_outsider_lists_never_include_a_rows(api, outsider_api, world_a, path, method):
    model = _view_class(path).model
    own = api.get(path)
    assert own.status_code == 200
    assert MARK in own.content.decode(), "A's own listing shows the marker, so its absence below means something"

    response = outsider_api.get(path)

    assert response.status_code == 200, response.content
    assert MARK not in response.content.decode()
    data = response.json()
    # Paginated lists hold "results"; recommendation answers hold "items" (ids are the shop's strings).
    rows = data.get("results", data.get("items")) if isinstance(data, dict) else data
    assert isinstance(rows, list), data
    a_pks = set(model.dangerously_unscoped.filter(tenant=world_a).values_list("pk", flat=True))
    assert not {row.get("id") for row in rows if isinstance(row.get("id"), int)} & a_pks


# Write bodies that name A's ids; an endpoint missing here is still probed with an empty object.
_WRITES = {
    "/v1/products": {"id": A_SKU, "title": "B's own product"},
    "/v1/products/bulk": {"items": [{"id": A_SKU, "title": "B's own product"}]},
    "/v1/customers": {"id": A_CUSTOMER, "attributes": {"owner": "B"}},
    "/v1/customers/bulk": {"items": [{"id": A_CUSTOMER}]},
    "/v1/events": {"type": "view", "customer_id": A_CUSTOMER, "product_id": A_SKU, "event_id": f"{MARK}_evt"},
    "/v1/events/bulk": {"events": [{"type": "view", "customer_id": A_CUSTOMER, "product_id": A_SKU}]},
    "/v1/rules": {"name": "B's", "kind": "exclude_products", "params": {"product_ids": [A_SKU]}},
    "/v1/promotions": {"name": "B's", "product_ids": [A_SKU]},
}


@pytest.mark.parametrize(("path", "method"), _list_ops("post"), ids=_ids(_list_ops("post")))
def test_outsider_writes_naming_a_ids_never_touch_a(outsider_api, world_a, settings, tmp_path, path, method):
    settings.RECSVC_IMPORT_DIR = tmp_path
    before = _snapshot(world_a)
    if path == "/v1/imports":
        line = f'{{"type":"view","customer_id":"{A_CUSTOMER}","product_id":"{A_SKU}"}}\n'.encode()
        response = outsider_api.generic(
            "POST", "/v1/imports?kind=events", line, content_type="application/x-ndjson"
        )
    else:
        response = outsider_api.post(path, _WRITES.get(path, {}), format="json")
    # Never "already exists" (that would confirm A's id), never a server error.
    assert response.status_code not in {403, 409}, response.content
    assert response.status_code < 500, response.content
    assert MARK not in response.content.decode().replace(A_SKU, "").replace(A_CUSTOMER, "")
    assert _snapshot(world_a) == before


@pytest.mark.parametrize("path", sorted(SINGLETON_PATHS))
def test_singletons_are_per_tenant(api, outsider_api, other_tenant, world_a, path):
    own = api.get(path).json()
    before = _snapshot(world_a)

    read = outsider_api.get(path)
    assert read.status_code == 200, read.content
    assert read.json() != own  # B's defaults, not A's values
    body, methods, changed_for = SINGLETONS[path]
    for method in methods:
        changed = getattr(outsider_api, method)(path, body, format="json")
        assert changed.status_code == 200, changed.content

    assert _snapshot(world_a) == before
    assert changed_for(other_tenant)


def test_outsider_create_with_a_external_id_makes_b_own_product(outsider_api, other_tenant, world_a):
    before = _snapshot(world_a)
    created = outsider_api.post("/v1/products", {"id": A_SKU, "title": "B's"}, format="json")
    assert created.status_code == 201, created.content  # not 409: A's id stays unconfirmed
    replaced = outsider_api.put(f"/v1/products/{A_SKU}", {"title": "B's again", "price": "1.00"}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["title"] == "B's again"
    b_product = Product.objects.for_tenant(other_tenant).get(external_id=A_SKU)
    a_product = Product.objects.for_tenant(world_a).get(external_id=A_SKU)
    assert b_product.pk != a_product.pk
    assert (a_product.title, a_product.price) == (f"{MARK} title", 10)
    assert _snapshot(world_a) == before


def test_outsider_event_naming_a_ids_links_only_to_b_rows(outsider_api, other_tenant, world_a):
    before = _snapshot(world_a)
    event = {"type": "purchase", "customer_id": A_CUSTOMER, "product_id": A_SKU, "event_id": "b-1"}
    # B has no product with that id: A's product does not make the event valid.
    rejected = outsider_api.post("/v1/events", event, format="json")
    assert rejected.status_code == 400
    assert "product_id" in rejected.json()["errors"]
    assert not Customer.objects.for_tenant(other_tenant).exists()  # nothing half-written

    outsider_api.put(f"/v1/products/{A_SKU}", {"title": "B's"}, format="json")
    stored = outsider_api.post("/v1/events", event, format="json")
    assert stored.status_code == 201, stored.content

    b_event = Event.objects.for_tenant(other_tenant).select_related("customer", "product").get()
    assert b_event.customer.tenant_id == b_event.product.tenant_id == other_tenant.pk
    assert b_event.customer.is_placeholder
    assert not Event.objects.for_tenant(world_a).filter(event_id="b-1").exists()
    assert _snapshot(world_a) == before


# --- who may call each endpoint -------------------------------------------------------------------------


def _probe_url(path: str) -> str:
    return _fill(path, "x") if "{" in path else path


@pytest.mark.parametrize(("path", "method"), _operations(), ids=_ids(_operations()))
def test_every_endpoint_needs_a_valid_key(client, tenant, path, method):
    url = _probe_url(path)
    anonymous = getattr(client, method)(url)
    problem = _assert_problem(anonymous, 401)
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert problem["detail"]

    key, raw = create_api_key(tenant, name="soon revoked", scopes=["admin"])
    revoke_api_key(key)
    revoked = getattr(client, method)(url, HTTP_AUTHORIZATION=f"Bearer {raw}")
    _assert_problem(revoked, 401)

    forged = getattr(client, method)(url, HTTP_AUTHORIZATION=f"Bearer {key.prefix}_not-the-secret")
    _assert_problem(forged, 401)
    wrong_scheme = getattr(client, method)(url, HTTP_AUTHORIZATION=f"Basic {raw}")
    _assert_problem(wrong_scheme, 401)


@pytest.mark.parametrize(("path", "method"), _operations(), ids=_ids(_operations()))
def test_every_endpoint_needs_its_scope(client, tenant, path, method):
    view_class = _view_class(path)
    scope = view_class.required_scope
    if callable(scope):
        scope = scope(getattr(RequestFactory(), method)(path))
    assert scope is not None, f"{view_class.__name__} must require a scope"
    # (publishable: a key of its own kind, which no other scope joins; the next test.)
    others = sorted(set(ApiKey.Scope.values) - {scope, ApiKey.Scope.ADMIN, ApiKey.Scope.PUBLISHABLE})
    _, raw = create_api_key(tenant, name="narrow", scopes=others)
    response = getattr(client, method)(_probe_url(path), HTTP_AUTHORIZATION=f"Bearer {raw}")
    problem = _assert_problem(response, 403)
    assert scope in problem["detail"]


STOREFRONT_OPERATIONS = {("/v1/recommendations", "get"), ("/v1/products/{id}/similar", "get"),
                         ("/v1/popular", "get"), ("/v1/events", "post")}


@pytest.mark.parametrize(("path", "method"), _operations(), ids=_ids(_operations()))
def test_a_publishable_key_is_refused_everywhere_but_the_storefront(client, tenant, path, method):
    """Even from its own origin: a key in a shop's pages reaches only recommendations and single events."""
    if (path, method) in STOREFRONT_OPERATIONS:
        return
    _, raw = create_api_key(tenant, name="storefront", scopes=["publishable"], allowed_origins=["https://a.example"])
    response = getattr(client, method)(_probe_url(path), HTTP_AUTHORIZATION=f"Bearer {raw}",
                                       HTTP_ORIGIN="https://a.example")
    problem = _assert_problem(response, 403)
    assert "publishable key may only" in problem["detail"]


def test_recommend_only_key_cannot_touch_the_catalog(recommend_api, world_a):
    before = _snapshot(world_a)
    assert recommend_api.get("/v1/products").status_code == 403
    assert recommend_api.get(f"/v1/products/{A_SKU}").status_code == 403
    assert recommend_api.delete(f"/v1/products/{A_SKU}").status_code == 403
    assert recommend_api.put(f"/v1/products/{A_SKU}", {"title": "x"}, format="json").status_code == 403
    assert _snapshot(world_a) == before
