"""Per-key rate limit on real Redis: 429 problem responses with Retry-After; Redis down degrades, never fails."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

pytestmark = pytest.mark.django_db

LIMIT = 3


@pytest.fixture(autouse=True)
def _low_limit(settings):
    assert "redis" in django_settings.CACHES["default"]["BACKEND"], "rate-limit tests need Redis (make test)"
    settings.RECSVC_RATE_LIMIT_PER_MINUTE = LIMIT


def _until_limited(client, max_requests: int = 2 * LIMIT + 1):
    """Statuses up to and including the first 429. A fixed window may roll over once during the loop, so
    2 * LIMIT + 1 requests always reach the limit without depending on the clock."""
    statuses = []
    for _ in range(max_requests):
        response = client.get("/v1/products")
        statuses.append(response.status_code)
        if response.status_code == 429:
            return statuses, response
    pytest.fail(f"never limited: {statuses}")


def test_requests_past_the_limit_get_429_with_retry_after(ingest_api):
    statuses, limited = _until_limited(ingest_api)
    assert set(statuses[:-1]) == {200} and len(statuses) > LIMIT
    assert limited["Content-Type"] == "application/problem+json"
    problem = limited.json()
    assert problem["status"] == 429 and problem["title"] == "Too many requests"
    retry_after = limited["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    assert problem["retry_after"] == int(retry_after)
    # Still limited: every further request in the window is refused, writes included.
    assert ingest_api.post("/v1/products", {"id": "p", "title": "t"}, format="json").status_code == 429


def test_each_key_has_its_own_budget(ingest_api, api, outsider_api):
    _until_limited(ingest_api)
    assert api.get("/v1/products").status_code == 200  # another key of the same tenant
    assert outsider_api.get("/v1/products").status_code == 200


def test_unauthenticated_requests_are_not_counted_against_a_key(ingest_api, client):
    for _ in range(LIMIT + 2):
        assert client.get("/v1/products").status_code == 401
    assert ingest_api.get("/v1/products").status_code == 200


def test_redis_down_degrades_to_no_limit(ingest_api, caplog):
    dead_redis = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    with override_settings(CACHES=dead_redis):
        statuses = [ingest_api.get("/v1/products").status_code for _ in range(LIMIT + 2)]
        created = ingest_api.post("/v1/products", {"id": "p1", "title": "while Redis is down"}, format="json")
    assert statuses == [200] * (LIMIT + 2)
    assert created.status_code == 201, created.content
    # The limiter really tried the dead server (this is not a pass by a silently different code path).
    assert any("rate limiter unavailable" in r.getMessage() for r in caplog.records if r.name == "tenants.ratelimit")
