"""The dashboard's Content-Security-Policy: every page sends it, and no page needs what it forbids (an
inline script or event handler), so markup slipped into a page could not run code."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

SIGNED_IN_PAGES = ["/", "/keys", "/products", "/customers", "/events", "/imports", "/training", "/models",
                   "/rules", "/promotions", "/integrations", "/billing", "/shops/new"]
PUBLIC_PAGES = ["/login", "/signup"]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
SCRIPT_URL = re.compile(r'<script[^>]*\bsrc="([^"]+)"', re.I)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in header.split(";")) if d}


def assert_strict_and_clean(response) -> None:
    directives = policy(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in directives.get("default-src", [])
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html).group(0)
    assert not INLINE_HANDLER.search(html), INLINE_HANDLER.search(html).group(0)
    assert "javascript:" not in html


@pytest.fixture
def owner_client(owner, tenant) -> Client:
    ProductFactory(tenant=tenant)
    client = Client()
    client.force_login(owner)
    return client


@pytest.mark.parametrize("path", SIGNED_IN_PAGES)
def test_signed_in_pages_carry_the_policy_and_no_inline_script(owner_client, path):
    response = owner_client.get(path)
    assert response.status_code == 200, path
    assert_strict_and_clean(response)


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_public_pages_carry_the_policy(client, path):
    assert_strict_and_clean(client.get(path))


def test_the_page_showing_a_new_key_copies_it_without_inline_script(owner_client):
    response = owner_client.post("/keys", {"name": "storefront", "scopes": ["recommend"]})
    assert response.status_code == 200 and 'id="copy-key"' in response.content.decode()
    assert_strict_and_clean(response)


def test_the_behaviour_moved_out_of_the_pages_is_served_from_this_origin(owner_client):
    html = owner_client.get("/events").content.decode()
    assert "data-autosubmit" in html
    (script,) = SCRIPT_URL.findall(html)
    assert script.startswith("/static/")
    served = Client().get(script)
    assert served.status_code == 200
    body = b"".join(served.streaming_content) if served.streaming else served.content
    assert b"data-autosubmit" in body and b"copy-key" in body and b"live" in body
