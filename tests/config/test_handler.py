"""The service's WSGI handler (config/handler.py): the hot API routes skip only the dashboard's middleware,
so they answer as Django's own handler does, with the same security headers and redirects, and every
other path still runs the whole stack."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import RequestFactory

from config.handler import LEAN_PATHS, ServiceHandler
from recs.models import Event
from tenants.api_keys import create_api_key
from tenants.context import tenant_context
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_transactions_connection():
    """As Django's test client does: the request signals would close the connection the test runs in."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)

SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy")


def _call(handler, request) -> tuple[int, dict[str, str], bytes]:
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = int(status.split()[0]), dict(headers)

    response = handler(dict(request.environ), start_response)  # Django writes the decoded path into it
    try:
        body = b"".join(response)
    finally:
        response.close()
    return got["status"], got["headers"], body


@pytest.fixture
def raw_key(tenant) -> str:
    return create_api_key(tenant, name="k", scopes=["recommend", "ingest"])[1]


@pytest.mark.parametrize("cached", [False, True], ids=["computed-by-drf", "cached-fast-path"])
def test_a_hot_route_answers_as_djangos_handler_does_with_the_same_headers(tenant, raw_key, cached):
    ProductFactory(tenant=tenant, external_id="p1")

    def request(customer):
        return RequestFactory().get("/v1/recommendations", {"customer_id": customer},
                                    HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    if cached:  # both answers come from the cache, through the view's fast path
        _call(WSGIHandler(), request("c1"))
        _call(WSGIHandler(), request("c2"))
    lean_status, lean_headers, lean_body = _call(ServiceHandler(), request("c1"))
    full_status, full_headers, full_body = _call(WSGIHandler(), request("c2"))
    assert lean_status == full_status == 200
    assert set(lean_headers) == set(full_headers)
    for name in (*SECURITY_HEADERS, "Content-Type"):
        assert lean_headers[name] == full_headers[name]
    assert int(lean_headers["Content-Length"]) == len(lean_body)
    assert json.loads(lean_body).keys() == json.loads(full_body).keys()


@pytest.mark.parametrize("product_id", ["p1", "thé-vert-100g", "no-such-product"])
def test_similar_products_take_the_lean_route_and_answer_as_djangos_handler_does(tenant, raw_key, product_id):
    if product_id != "no-such-product":
        ProductFactory(tenant=tenant, external_id=product_id)
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    # As a server passes it (PEP 3333): the path's UTF-8 bytes as Latin-1 characters.
    request.environ["PATH_INFO"] = f"/v1/products/{product_id}/similar".encode().decode("iso-8859-1")
    handler = ServiceHandler()
    assert handler._lean_route(f"/v1/products/{product_id}/similar") is not None
    lean_status, lean_headers, lean_body = _call(handler, request)
    full_status, full_headers, full_body = _call(WSGIHandler(), request)
    assert (lean_status, full_status) == ((404, 404) if product_id == "no-such-product" else (200, 200))
    assert set(lean_headers) == set(full_headers)
    for name in (*SECURITY_HEADERS, "Content-Type"):
        assert lean_headers[name] == full_headers[name]
    assert json.loads(lean_body).keys() == json.loads(full_body).keys()


def test_a_single_event_through_the_lean_route_is_stored(tenant, raw_key):
    ProductFactory(tenant=tenant, external_id="p1")
    body = json.dumps({"type": "view", "customer_id": "c1", "product_id": "p1", "event_id": str(uuid.uuid4())})
    request = RequestFactory().post("/v1/events", body, content_type="application/json",
                                    HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    status, headers, _ = _call(ServiceHandler(), request)
    assert status == 201 and headers["X-Frame-Options"] == "DENY"
    with tenant_context(tenant.pk):
        assert Event.objects.for_tenant(tenant).count() == 1


def test_refusals_on_a_hot_route_are_problems_with_the_security_headers(raw_key):
    request = RequestFactory().get("/v1/recommendations", {"customer_id": "c1"}, HTTP_AUTHORIZATION="Bearer rsk_forged")
    status, headers, _ = _call(ServiceHandler(), request)
    assert status == 401 and headers["Content-Type"].startswith("application/problem+json")
    assert all(name in headers for name in SECURITY_HEADERS)


def test_https_redirects_still_apply_on_the_hot_routes(settings, raw_key):
    settings.SECURE_SSL_REDIRECT = True
    handler = ServiceHandler()  # the security middleware reads its settings when the chain is built
    for path in (*LEAN_PATHS, "/v1/products/p1/similar"):
        status, headers, _ = _call(handler, RequestFactory().get(path, HTTP_AUTHORIZATION=f"Bearer {raw_key}"))
        assert status == 301 and headers["Location"].startswith("https://")


def test_other_paths_run_the_whole_middleware_stack():
    # The dashboard needs the session and authentication middleware: without them this would be a 500.
    status, headers, _ = _call(ServiceHandler(), RequestFactory().get("/"))
    assert status == 302 and "login" in headers["Location"]
