"""API keys: shown once, stored only as a hash, revocable at once, scoped; the create_tenant command."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tenants.api_keys import InvalidScope, authenticate_api_key, create_api_key, revoke_api_key
from tenants.models import ApiKey, Membership, Tenant
from tenants.services import deactivate_tenant
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def _client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_create_returns_the_raw_key_once_and_stores_only_its_hash(tenant, owner):
    key, raw = create_api_key(tenant, name="shop backend", scopes=["ingest", "recommend"], created_by=owner)
    assert re.fullmatch(r"rsk_[0-9a-f]{12}_[A-Za-z0-9_-]{32}", raw)
    assert raw.startswith(key.prefix + "_")
    secret = raw[len(key.prefix) + 1:]
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert row["secret_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert not any(secret in str(value) for value in row.values())
    assert row["scopes"] == ["ingest", "recommend"]
    # Two keys never share a prefix or a secret.
    other, other_raw = create_api_key(tenant, name="second", scopes=["admin"])
    assert other.prefix != key.prefix and other_raw != raw


def test_authenticate_accepts_the_key_and_nothing_like_it(tenant):
    key, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    assert authenticate_api_key(raw) == key
    assert authenticate_api_key(raw) == key  # from the cache this time
    secret = raw[len(key.prefix) + 1:]
    wrong_secret = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for forged in (
        f"{key.prefix}_{wrong_secret}",
        f"{key.prefix}_",
        key.prefix,
        raw + "x",
        raw[:-1],
        raw.replace("rsk_", "rk_", 1),
        "rsk_" + "0" * 12 + "_" + secret,
        raw + "A" * 200,
        "",
    ):
        assert authenticate_api_key(forged) is None, forged


def test_a_key_works_over_http_and_a_wrong_secret_does_not(tenant):
    key, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    assert _client(raw).get("/v1/products").status_code == 200
    response = _client(f"{key.prefix}_wrong-secret").get("/v1/products")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert APIClient().get("/v1/products", HTTP_X_API_KEY=raw).status_code == 200


def test_revoked_key_fails_on_the_very_next_request(tenant):
    key, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    client = _client(raw)
    assert client.get("/v1/products").status_code == 200  # the key is now cached
    revoke_api_key(key)
    assert client.get("/v1/products").status_code == 401
    assert authenticate_api_key(raw) is None
    first_revocation = ApiKey.objects.get(pk=key.pk).revoked_at
    revoke_api_key(key)  # idempotent: the first revocation time stays
    assert ApiKey.objects.get(pk=key.pk).revoked_at == first_revocation


@pytest.mark.parametrize("scopes", [[], ["superuser"], ["ingest", "everything"], ["INGEST"]])
def test_scopes_are_validated(tenant, scopes):
    with pytest.raises(InvalidScope):
        create_api_key(tenant, name="k", scopes=scopes)
    assert not ApiKey.objects.filter(tenant=tenant).exists()


def test_scopes_are_deduplicated_and_admin_implies_all(tenant):
    key, _ = create_api_key(tenant, name="k", scopes=["ingest", "ingest"])
    assert key.scopes == ["ingest"]
    assert key.has_scope("ingest") and not key.has_scope("recommend")
    admin, _ = create_api_key(tenant, name="a", scopes=["admin"])
    assert all(admin.has_scope(s) for s in ApiKey.Scope.values)


def test_key_of_an_inactive_tenant_fails(tenant):
    dormant = TenantFactory(is_active=False)
    _, dormant_raw = create_api_key(dormant, name="k", scopes=["admin"])
    assert authenticate_api_key(dormant_raw) is None
    assert _client(dormant_raw).get("/v1/products").status_code == 401

    _, raw = create_api_key(tenant, name="k", scopes=["admin"])
    client = _client(raw)
    assert client.get("/v1/products").status_code == 200  # cached as active
    deactivate_tenant(tenant)
    assert client.get("/v1/products").status_code == 401
    assert not Tenant.objects.get(pk=tenant.pk).is_active


def test_create_tenant_command_with_a_working_key(db):
    out = io.StringIO()
    call_command(
        "create_tenant", "--name", "Corner Shop", "--owner-email", "boss@corner.example", "--with-key", stdout=out
    )
    tenant = Tenant.objects.get(slug="corner-shop")
    membership = Membership.objects.get(tenant=tenant)
    assert (membership.user.username, membership.role) == ("boss@corner.example", Membership.Role.OWNER)
    raw = re.search(r"API key \(shown once\): (rsk_\S+)", out.getvalue()).group(1)
    assert authenticate_api_key(raw).tenant == tenant
    assert _client(raw).get("/v1/products").status_code == 200

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_tenant", "--name", "Corner Shop", "--owner-email", "x@y.example", stdout=io.StringIO())
    assert Tenant.objects.filter(slug="corner-shop").count() == 1


def test_create_tenant_command_without_key_prints_none(db):
    out = io.StringIO()
    call_command("create_tenant", "--name", "Quiet", "--owner-email", "q@quiet.example", stdout=out)
    assert "rsk_" not in out.getvalue()
    assert not ApiKey.objects.filter(tenant__slug="quiet").exists()


def test_use_is_recorded_on_the_key(api, tenant):
    from tenants.models import ApiKey

    assert api.get("/v1/products").status_code == 200
    key = ApiKey.objects.get(prefix=api.raw_key[:16])  # rsk_ + 12 hex digits
    assert key.last_used_at is not None
