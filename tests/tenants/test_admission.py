"""Admission in one Redis round trip (tenants.admission): what each process keeps about a key never lets
a revoked or deleted key in, a forged secret costs the key nothing, and the rate limit and the quota
still bind on the request where they should."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from tenants import api_keys, key_cache
from tenants.api_keys import create_api_key
from tenants.models import ApiKey

pytestmark = pytest.mark.django_db


def _client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_a_key_revoked_by_another_process_fails_on_the_next_request(tenant):
    key, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    client = _client(raw)
    assert client.get("/v1/products").status_code == 200  # identity kept in this process, row in the cache
    # Another process revokes it: its row and the shared cache entry change; this process's memory does not.
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    cache.delete(api_keys.cache_key(key.prefix))
    assert client.get("/v1/products").status_code == 401


def test_a_revoked_copy_in_the_shared_cache_binds_at_once(tenant):
    key, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    client = _client(raw)
    assert client.get("/v1/products").status_code == 200
    stale = ApiKey.objects.select_related("tenant").get(pk=key.pk)
    stale.revoked_at = timezone.now()
    key_cache.store(stale)
    assert client.get("/v1/products").status_code == 401


def test_a_deleted_key_is_refused_although_its_identity_is_remembered(tenant):
    key, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    client = _client(raw)
    assert client.get("/v1/products").status_code == 200
    assert key.prefix in api_keys._identities
    ApiKey.objects.filter(pk=key.pk).delete()
    cache.delete(api_keys.cache_key(key.prefix))
    assert client.get("/v1/products").status_code == 401


def test_a_forged_secret_is_refused_without_spending_the_keys_budget(tenant, settings):
    settings.RECSVC_RATE_LIMIT_PER_MINUTE = 3
    key, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    assert _client(raw).get("/v1/products").status_code == 200  # the identity is now known in this process
    forged = _client(f"{key.prefix}_{'A' * 32}")
    for _ in range(10):
        assert forged.get("/v1/products").status_code == 401
    # Had the forgeries been counted, the window's budget of 3 would be spent (two windows at most: <= 6).
    assert [_client(raw).get("/v1/products").status_code for _ in range(2)] == [200, 200]


def test_without_redis_the_plain_paths_admit_and_limit(tenant, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.RECSVC_RATE_LIMIT_PER_MINUTE = 2
    _, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    statuses = [_client(raw).get("/v1/products").status_code for _ in range(5)]
    assert statuses[0] == 200 and 429 in statuses
