"""Redis lost and restarted under the production server: answers keep coming (cache misses, answers served
unrecorded and counted on /metrics), and cache and recording come back with Redis, without a restart.

The Redis is one the test starts itself on another loopback port (never the shared one), without
persistence, killed with SIGKILL (a crash or a lost machine) and started again empty on the same port. The
database is the test database (committed rows: gunicorn reads them from another connection)."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import shutil
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from recs.ingest.catalog import upsert_products
from recs.ingest.events import ingest_events
from tenants.api_keys import create_api_key
from tenants.context import dangerously_all_tenants, tenant_context
from tests.bench import _load
from tests.celery_worker import url_of_test_database
from tests.deploy.servers import own_redis
from tests.factories import TenantFactory

pytestmark = [
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
    pytest.mark.django_db(transaction=True),
]

STREAM = "recsvc:1:recs:answers"  # the served-answers stream under the service's default cache prefix


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": "localhost", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _metric(port: int, name: str, **labels: str) -> float:
    status, body = _get(port, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


@pytest.fixture
def shop():
    """A shop with products and views (popular answers hold items without a model) and a recommend key."""
    with dangerously_all_tenants():
        tenant = TenantFactory(name="Redis outage shop", slug="redis-outage-shop", plan="scale")
        _, raw_key = create_api_key(tenant, name="outage", scopes=["recommend"])
    with tenant_context(tenant.pk):
        products = [{"external_id": f"p{i}", "title": f"Product {i}", "price": "10.00"} for i in range(8)]
        upsert_products(tenant.pk, products)
        start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)  # no test depends on today's date
        ingest_events(tenant.pk, [{"type": "view", "customer_id": f"v{i % 3}", "product_id": f"p{i % 8}",
                                   "timestamp": (start + dt.timedelta(minutes=i)).isoformat()} for i in range(24)])
    yield {"Authorization": f"Bearer {raw_key}"}
    with dangerously_all_tenants():
        tenant.delete()


def test_serving_rides_out_a_lost_redis_and_recovers_when_it_returns(shop, django_db_setup):
    from django.db import connection

    with own_redis() as redis_server:
        env = {"DATABASE_URL": url_of_test_database(connection.settings_dict["NAME"]), "REDIS_URL": redis_server.url,
               "CELERY_BROKER_URL": redis_server.url, "RECSVC_CACHE_PREFIX": "recsvc", "RECSVC_RECORD_ANSWERS": "1",
               "RECSVC_RECS_CACHE_SECONDS": "60", "RECSVC_WEB_WORKERS": "1"}
        with _load.gunicorn(workers=1, env=env) as web:
            def popular() -> dict:
                status, body = _get(web.port, "/v1/popular?k=3", shop)
                assert status == 200, body
                answer = json.loads(body)
                assert len(answer["items"]) == 3
                return answer

            def hits() -> float:
                return _metric(web.port, "recsvc_answer_cache_lookups_total", result="hit")

            # Redis up: computed once, then served from the cache; both answers recorded on the stream.
            popular(), popular()
            assert hits() == 1
            assert redis_server.cli("xlen", STREAM) == "2"

            redis_server.stop()
            for _ in range(3):  # no cache, no stream: still answered
                popular()
            assert hits() == 1
            assert _metric(web.port, "recsvc_answers_unrecorded_total") == 3
            status, body = _get(web.port, "/v1/recommendations?customer_id=v1&k=3", shop)
            assert status == 200, body

            redis_server.start()  # back, empty (no persistence): a replaced Redis
            deadline = time.monotonic() + 20  # recording retries after its 5 s back-off
            while time.monotonic() < deadline and redis_server.cli("xlen", STREAM) in ("", "0"):
                popular()
                time.sleep(0.5)
            assert int(redis_server.cli("xlen", STREAM)) >= 1, "answers are recorded again"
            cached_before = hits()
            popular(), popular()
            assert hits() > cached_before, "answers are cached again"
