"""Publishable keys (the storefront snippet's): only recommendations and single events, only from the key's
origins, with CORS answered for those origins on those paths alone."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from recs.models import Event
from tenants import storefront
from tenants.api_keys import InvalidScope, create_api_key
from tenants.models import ApiKey
from tests.recs.dashboard_data import make_shop

SHOP = "https://shop.example"
OTHER = "https://evil.example"


@pytest.fixture
def shop(tenant, other_tenant):
    return make_shop(tenant, other_tenant)


@pytest.fixture
def publishable(tenant, shop) -> APIClient:
    _, raw = create_api_key(tenant, name="storefront", scopes=["publishable"], allowed_origins=[SHOP + "/"])
    client = APIClient(HTTP_ORIGIN=SHOP)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_key = raw
    return client


def _event(**fields) -> dict:
    return {"type": "click", "customer_id": "anon-1", "product_id": "kettle", "event_id": "e-1", **fields}


def test_a_publishable_key_is_told_apart_and_keeps_its_cleaned_origins(tenant):
    key, raw = create_api_key(tenant, name="s", scopes=["publishable"],
                              allowed_origins=["https://Shop.example/", "http://localhost:8000", "https://shop.example"])
    assert raw.startswith("rpk_") and key.is_publishable
    assert key.allowed_origins == ["http://localhost:8000", "https://shop.example"]
    assert not key.has_scope("recommend") and not key.has_scope("ingest")


@pytest.mark.parametrize(("scopes", "origins", "error"), [
    (["publishable", "recommend"], [SHOP], InvalidScope),  # a public key with a secret key's powers
    (["publishable"], [], ValueError),  # usable from nowhere
    (["recommend"], [SHOP], ValueError),  # origins mean nothing on a secret key
    (["publishable"], ["http://shop.example"], ValueError),  # plain http beyond localhost
    (["publishable"], ["https://shop.example/page"], ValueError),
    (["publishable"], ["https://*.example"], ValueError),
])
def test_invalid_publishable_keys_are_refused(tenant, scopes, origins, error):
    with pytest.raises(error):
        create_api_key(tenant, name="s", scopes=scopes, allowed_origins=origins)
    assert not ApiKey.objects.exists()


def test_it_gets_recommendations_and_sends_a_single_event(publishable, tenant, shop):
    for path in ("/v1/recommendations?session_id=s1&k=3", "/v1/popular?k=3", "/v1/products/teapot/similar?k=3"):
        response = publishable.get(path)
        assert response.status_code == 200, (path, response.content)
        assert response["Access-Control-Allow-Origin"] == SHOP
    answer = publishable.get("/v1/recommendations?session_id=s1&k=3").json()
    assert answer["items"]
    response = publishable.post("/v1/events", _event(recommendation_id=answer["recommendation_id"]), format="json")
    assert response.status_code == 201, response.content
    stored = Event.objects.for_tenant(tenant).get(event_type="click", customer__external_id="anon-1")
    assert str(stored.recommendation_id) == answer["recommendation_id"]


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/v1/products"),
    ("get", "/v1/customers"),
    ("get", "/v1/events"),
    ("post", "/v1/events/bulk"),
    ("post", "/v1/products"),
    ("get", "/v1/rules"),
    ("get", "/v1/recommendation-settings"),
    ("get", "/v1/experiments"),
    ("get", "/v1/models"),
])
def test_it_can_do_nothing_else(publishable, tenant, shop, method, path):
    body = {"events": [_event()]} if path == "/v1/events/bulk" else {}
    response = getattr(publishable, method)(path, body, format="json")
    assert response.status_code == 403, (path, response.content)
    assert response["Content-Type"].startswith("application/problem+json")
    assert "publishable key may only" in response.json()["detail"]
    assert not Event.objects.for_tenant(tenant).filter(customer__external_id="anon-1").exists()


def test_another_origin_or_none_is_refused(publishable, tenant, shop):
    stranger = APIClient(HTTP_ORIGIN=OTHER)
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable.raw_key}")
    server = APIClient()  # curl, a server: no Origin header
    server.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable.raw_key}")
    for client, word in ((stranger, "not one of"), (server, "no Origin")):
        response = client.get("/v1/recommendations?session_id=s1")
        assert response.status_code == 403 and word in response.json()["detail"], response.content
        assert "Access-Control-Allow-Origin" not in response
        response = client.post("/v1/events", _event(), format="json")
        assert response.status_code == 403
    assert not Event.objects.for_tenant(tenant).filter(customer__external_id="anon-1").exists()


def test_an_origin_of_another_shops_key_does_not_open_this_key(publishable, other_tenant, shop):
    create_api_key(other_tenant, name="b", scopes=["publishable"], allowed_origins=[OTHER])
    stranger = APIClient(HTTP_ORIGIN=OTHER)
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable.raw_key}")
    assert stranger.get("/v1/popular").status_code == 403


def test_preflight_answers_the_keys_origins_on_the_storefront_paths_only(publishable):
    browser = Client()
    preflight = {"HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
                 "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization,content-type"}
    response = browser.options("/v1/events", HTTP_ORIGIN=SHOP, **preflight)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert {"GET", "POST"} <= {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert {"authorization", "content-type"} <= {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in response
    assert "origin" in response["Vary"].lower()
    for path in ("/v1/recommendations", "/v1/popular", "/v1/products/teapot/similar"):
        assert browser.options(path, HTTP_ORIGIN=SHOP, **preflight)["Access-Control-Allow-Origin"] == SHOP
    # Not for another origin, nor for the paths the key may not call.
    assert "Access-Control-Allow-Origin" not in browser.options("/v1/events", HTTP_ORIGIN=OTHER, **preflight)
    for path in ("/v1/events/bulk", "/v1/products", "/v1/customers"):
        assert "Access-Control-Allow-Origin" not in browser.options(path, HTTP_ORIGIN=SHOP, **preflight)


def test_a_revoked_keys_origins_are_no_longer_answered(tenant, publishable):
    from tenants.api_keys import revoke_api_key

    revoke_api_key(ApiKey.objects.get(name="storefront"))
    response = Client().options("/v1/events", HTTP_ORIGIN=SHOP, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in response
    assert SHOP not in storefront.known_origins()


def test_the_dashboard_creates_a_publishable_key_with_its_origins(tenant, owner):
    client = Client()
    client.force_login(owner)
    response = client.post("/keys", {"name": "Storefront", "scopes": ["publishable"],
                                     "allowed_origins": "https://shop.example\nhttp://localhost:3000"})
    assert response.status_code == 200
    key = ApiKey.objects.get(tenant=tenant, name="Storefront")
    assert key.scopes == ["publishable"] and key.allowed_origins == ["http://localhost:3000", "https://shop.example"]
    assert b"storefront/recsvc.js" in response.content and b"rpk_" in response.content
    # A publishable key with a secret scope, or without origins, is refused with the reason.
    for data, reason in (({"scopes": ["publishable", "admin"], "allowed_origins": SHOP}, b"no other scope"),
                         ({"scopes": ["publishable"], "allowed_origins": ""}, b"at least one origin"),
                         ({"scopes": ["publishable"], "allowed_origins": "http://shop.example"}, b"must be https")):
        response = client.post("/keys", {"name": "Bad", **data})
        assert response.status_code == 200 and reason in response.content, reason
    assert not ApiKey.objects.filter(name="Bad").exists()


def test_its_rate_limit_counts_per_visitor_address_a_secret_keys_per_key(publishable, tenant, shop, settings):
    settings.RECSVC_RATE_LIMIT_PER_MINUTE = 3
    settings.RECSVC_TRUSTED_PROXY_COUNT = 0  # the peer's own address is the visitor's (no proxy in front)

    def statuses(client, address):
        return [client.get("/v1/popular?k=1", REMOTE_ADDR=address).status_code for _ in range(4)]

    assert statuses(publishable, "198.51.100.1") == [200, 200, 200, 429]
    assert statuses(publishable, "198.51.100.2") == [200, 200, 200, 429]  # another visitor: a minute of its own

    _, raw = create_api_key(tenant, name="backend", scopes=["recommend"])
    secret = APIClient()
    secret.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert statuses(secret, "198.51.100.1")[:3] == [200, 200, 200]
    assert statuses(secret, "198.51.100.2") == [429, 429, 429, 429]  # the key's minute, whatever the address


def test_the_cors_paths_are_the_storefront_paths(settings):
    # config/settings.py cannot import tenants (models are not ready then): the two must stay equal.
    assert settings.CORS_URLS_REGEX == storefront.PATHS_REGEX
