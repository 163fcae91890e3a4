"""A request that meets a database outage gets a 503 with Retry-After (a problem on the API), and the
service answers again once the database is back, without a restart.

The database is a PostgreSQL cluster this test starts itself on another loopback port (never the
shared one), holding a copy of the test database; gunicorn as deployed serves from it, and the test stops
and restarts that PostgreSQL under it."""

from __future__ import annotations

import http.client
import json
import subprocess

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
        tenant = TenantFactory(name="Outage shop", slug="outage-shop")
        ProductFactory(tenant=tenant)
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
        yield server, raw_key


def test_api_answers_503_with_retry_after_while_the_database_is_down_and_recovers(copied_database):
    server, raw_key = copied_database
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
