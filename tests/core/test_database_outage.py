"""A request that meets a database outage gets a 503 with Retry-After (a problem on the API), and the
service answers again once the database is back, without a restart. A client that loads events in batches
with its own event ids and retries on 503 or a cut connection loses nothing and stores nothing twice when
PostgreSQL restarts under the load.

The database is a PostgreSQL cluster this test starts itself on another loopback port (never the
shared one), holding a copy of the test database; gunicorn as deployed serves from it, and the test stops
and restarts that PostgreSQL under it."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time

import pytest

from tenants.api_keys import create_api_key
from tenants.context import dangerously_all_tenants
from tests.bench import _load
from tests.deploy.servers import own_postgres, postgres_bin
from tests.factories import ProductFactory, TenantFactory

pytestmark = [
    pytest.mark.skipif(postgres_bin() is None, reason="no PostgreSQL binaries under /usr/lib/postgresql"),
    # Committed rows: pg_dump copies them from another connection.
    pytest.mark.django_db(transaction=True),
]


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": "localhost", **headers})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def copied_database(django_db_setup, django_db_blocker):
    """(own PostgreSQL, API key): the test database with one shop, its key and a product, copied into a
    cluster of the test's own (same roles, same row-level security)."""
    from django.db import connection

    with django_db_blocker.unblock(), dangerously_all_tenants():
        # A paid plan: the bulk load is not stopped by the free plan's monthly events quota.
        tenant = TenantFactory(name="Outage shop", slug="outage-shop", plan="scale")
        product = ProductFactory(tenant=tenant)
        _, raw_key = create_api_key(tenant, name="outage", scopes=["admin"])
        source = connection.settings_dict
    try:
        dump = subprocess.run(
            [str(postgres_bin() / "pg_dump"), "-h", source["HOST"] or "127.0.0.1", "-p", str(source["PORT"] or 5432),
             "-U", "postgres", "-d", source["NAME"], "--no-comments"],
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        with django_db_blocker.unblock(), dangerously_all_tenants():
            tenant.delete()
    with own_postgres() as server:
        server.psql(
            "CREATE ROLE recsvc LOGIN NOSUPERUSER NOBYPASSRLS; CREATE ROLE recsvc_owner LOGIN NOSUPERUSER NOBYPASSRLS;"
            " CREATE ROLE recsvc_maintenance NOLOGIN NOSUPERUSER NOBYPASSRLS;"
            " GRANT recsvc_maintenance TO recsvc, recsvc_owner; CREATE DATABASE recsvc OWNER recsvc_owner;"
        )
        server.psql(dump, database="recsvc")
        yield server, raw_key, product.external_id


def test_api_answers_503_with_retry_after_while_the_database_is_down_and_recovers(copied_database):
    server, raw_key, _ = copied_database
    auth = {"Authorization": f"Bearer {raw_key}"}
    env = {"DATABASE_URL": server.url("recsvc", "recsvc"), "RECSVC_WEB_WORKERS": "1"}
    with _load.gunicorn(workers=1, env=env) as web:
        status, _, body = _get(web.port, "/v1/products", auth)
        assert status == 200, body
        assert len(json.loads(body)["results"]) == 1

        server.stop()
        status, headers, body = _get(web.port, "/v1/products", auth)
        assert status == 503, body
        assert headers["retry-after"] == "5"
        assert headers["content-type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["status"] == 503 and problem["type"] == "/problems/database-unavailable"
        # A second request, on a connection Django has now closed, meets the outage while connecting.
        status, headers, _ = _get(web.port, "/v1/products", auth)
        assert (status, headers["retry-after"]) == (503, "5")
        # Outside DRF (a dashboard page whose session is read from the database): 503, not Django's 500.
        status, headers, _ = _get(web.port, "/", {"Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345"})
        assert (status, headers.get("retry-after")) == (503, "5")

        server.start()
        status, _, body = _get(web.port, "/v1/products", auth)
        assert status == 200, body
        assert len(json.loads(body)["results"]) == 1


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Host": "localhost", "Content-Type": "application/json",
                                                       **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


EVENTS, BATCH = 30_000, 500


def test_a_retrying_bulk_load_loses_and_doubles_nothing_across_a_database_restart(copied_database):
    server, raw_key, product_id = copied_database
    auth = {"Authorization": f"Bearer {raw_key}"}
    batches = [
        json.dumps({"events": [
            {"event_id": f"e-{i}", "customer_id": f"c-{i % 997}", "product_id": product_id, "type": "view",
             "timestamp": 1_700_000_000 + i}
            for i in range(start, start + BATCH)
        ]}).encode()
        for start in range(0, EVENTS, BATCH)
    ]
    sent = threading.Event()  # a third of the batches are in: the restart happens under the load
    results: list[dict] = []
    retried: list[str] = []  # what each failed attempt met: a 503 status or a connection error

    def client(port: int) -> None:
        for n, body in enumerate(batches):
            for _ in range(200):  # a restart takes a couple of seconds; 200 x 0.1 s is ample
                try:
                    status, answer = _post(port, "/v1/events/bulk", body, auth)
                except (ConnectionError, http.client.HTTPException) as error:
                    retried.append(type(error).__name__)
                else:
                    if status == 200:
                        results.append(json.loads(answer))
                        break
                    assert status == 503, answer  # anything else is not an outage: the test fails
                    retried.append("503")
                time.sleep(0.1)
            else:
                raise AssertionError(f"batch {n} never stored")
            if n == len(batches) // 3:
                sent.set()

    env = {"DATABASE_URL": server.url("recsvc", "recsvc"), "RECSVC_WEB_WORKERS": "2",
           "RECSVC_RATE_LIMIT_PER_MINUTE": "1000000"}
    with _load.gunicorn(workers=2, env=env) as web:
        loader = threading.Thread(target=client, args=(web.port,))
        loader.start()
        assert sent.wait(60), "the load never got going"
        server.stop()  # fast shutdown: connections and the transactions in flight are cut
        time.sleep(1.0)  # the client meets the outage
        server.start()
        loader.join(60)
        assert not loader.is_alive()

    assert len(results) == len(batches)
    assert retried, "the restart happened under the load: some attempt met it"
    rows, distinct = server.psql("SELECT count(*), count(DISTINCT event_id) FROM recs_event",
                                 database="recsvc").strip().split("|")
    assert (int(rows), int(distinct)) == (EVENTS, EVENTS)
    # A batch stored before its answer was cut comes back as duplicates on the retry, never as new rows.
    assert sum(r["stored"] for r in results) == EVENTS
    assert sum(r["stored"] + r["duplicates"] for r in results) == EVENTS
    assert all(r["rejected"] == 0 for r in results)
