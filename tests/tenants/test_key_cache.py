"""The API key's shared cache entry is JSON: a pickle planted in Redis is never unpickled, every field of
the key and its tenant survives the round trip, and an unknown key costs one query per 30 s, not one per
request."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.redis_client import raw_redis
from tenants import api_keys, key_cache
from tenants.api_keys import create_api_key
from tenants.models import ApiKey, Tenant

pytestmark = pytest.mark.django_db


def _client(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


class _Planted:
    """Unpickling this creates the file `path`: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_planted_in_redis_is_never_unpickled(tenant, tmp_path):
    key, raw = create_api_key(tenant, name="k", scopes=["ingest"])
    client = _client(raw)
    assert client.get("/v1/products").status_code == 200
    redis = raw_redis()
    assert redis is not None, "needs Redis (make test)"
    name = key_cache.redis_name(key.prefix)
    marker = tmp_path / "pwned"
    # Someone with write access to Redis replaces the entry with a pickle (as django-redis would store it).
    redis.set(name, pickle.dumps(_Planted(str(marker))), ex=60)
    assert client.get("/v1/products").status_code == 200  # an unreadable entry is a miss: the database answers
    assert not marker.exists()
    assert redis.get(name).startswith(b'{"v":1,')  # the entry written back, as JSON


def test_every_field_of_the_key_and_its_tenant_survives_the_entry(tenant, owner):
    key, _ = create_api_key(tenant, name="shop backend", scopes=["ingest", "recommend"], created_by=owner)
    Tenant.objects.filter(pk=tenant.pk).update(
        plan=Tenant.Plan.GROWTH, stripe_customer_id="cus_1", current_period_end=dt.datetime(2031, 2, 3, 4, 5, 6, 789,
                                                                                            tzinfo=dt.UTC)
    )
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    original = ApiKey.objects.select_related("tenant").get(pk=key.pk)
    copy = key_cache.decode(key_cache.encode(original))
    assert copy is not None and not copy._state.adding
    for model, a, b in ((ApiKey, original, copy), (Tenant, original.tenant, copy.tenant)):
        for field in model._meta.concrete_fields:
            assert getattr(b, field.attname) == getattr(a, field.attname), field.name
    assert copy.has_scope("recommend") and copy.tenant.current_period_end.tzinfo is not None


@pytest.mark.parametrize("raw", [b"", b"null", b"[]", b'{"v":2}', b'{"v":1,"key":[1],"tenant":[]}', b"\x80\x04K\x01."])
def test_an_unreadable_entry_is_a_miss(raw):
    assert key_cache.decode(raw) is None


def test_an_unknown_key_costs_one_query_then_none_for_a_while(tenant):
    unknown = _client(f"rsk_{secrets.token_hex(6)}_" + "A" * 32)  # a prefix no test has tried before
    with CaptureQueriesContext(connection) as first:
        assert unknown.get("/v1/products").status_code == 401
    assert len(first.captured_queries) == 1, first.captured_queries
    with CaptureQueriesContext(connection) as again:
        for _ in range(20):
            assert unknown.get("/v1/products").status_code == 401
    assert again.captured_queries == []
    assert api_keys.unknown_prefixes.seconds == api_keys.UNKNOWN_SECONDS


def test_a_prefix_is_remembered_as_unknown_for_its_seconds_only():
    now = [1_000.0]
    misses = api_keys.RecentMisses(30.0, clock=lambda: now[0], max_size=2)
    misses.add("aaa")
    now[0] += 29.9
    assert "aaa" in misses and "bbb" not in misses
    now[0] += 0.2
    assert "aaa" not in misses  # after its seconds the database is asked again
    misses.add("bbb")
    misses.add("ccc")
    misses.add("ddd")  # full: cleared, then remembered
    assert "ddd" in misses and "bbb" not in misses
