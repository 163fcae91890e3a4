"""The buffering proxy of deploy/nginx/ in front of a real gunicorn as deployed (config/gunicorn.py), with
one sync worker so that one stuck connection would show: nginx keeps clients' connections alive, holds a
stalled client itself instead of handing it to the worker, refuses an oversized body as a problem, and
limits the rate of webhook deliveries per connection.

Runs where nginx is installed (CI installs Debian's nginx-light); elsewhere it is skipped, saying so."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import string
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tenants.api_keys import create_api_key
from tests.bench import _load
from tests.celery_worker import url_of_test_database

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "recsvc.conf.template"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)

pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")


def _partial_request(cut: str, api_key: str) -> bytes:
    """A request cut off before its end: headers without their blank line, or an event whose body is
    shorter than its length (with a valid key, so the app reads the body)."""
    if cut == "headers":
        return b"GET /healthz HTTP/1.1\r\nHost: shop.example\r\n"
    return (f"POST /v1/events HTTP/1.1\r\nHost: shop.example\r\nAuthorization: Bearer {api_key}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"event_").encode()


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """(nginx port, gunicorn port): gunicorn with one sync worker, on the test database, behind nginx
    rendered from the template."""
    from django.db import connection

    with django_db_blocker.unblock():
        database = connection.settings_dict["NAME"]
    root = tmp_path_factory.mktemp("nginx")
    with _load.gunicorn(workers=1, env={"DATABASE_URL": url_of_test_database(database)}) as server:
        nginx_port = _load.free_port()
        rendered = string.Template(TEMPLATE.read_text()).safe_substitute(
            RECSVC_LISTEN=f"127.0.0.1:{nginx_port}", RECSVC_UPSTREAM=f"127.0.0.1:{server.port}")
        (root / "recsvc.conf").write_text(rendered)
        temp_paths = "".join(f"{kind}_temp_path {root / kind};\n"
                             for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (root / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\nworker_processes 1;\npid {root / 'nginx.pid'};\nerror_log {root / 'error.log'};\n"
            + "events { worker_connections 64; }\n"
            + f"http {{\naccess_log off;\n{temp_paths}include {root / 'recsvc.conf'};\n}}\n"
        )
        nginx = subprocess.Popen([NGINX, "-p", str(root), "-e", str(root / "error.log"),
                                  "-c", str(root / "nginx.conf")])
        try:
            _load.wait_until_healthy(_load.Server("127.0.0.1", nginx_port, nginx, "nginx"), timeout_s=30)
            yield nginx_port, server.port
        finally:
            nginx.terminate()
            nginx.wait(timeout=30)


def _healthz(port: int, timeout_s: float = 3) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_client_keeps_its_connection_through_the_proxy(stack):
    nginx_port, _ = stack
    conn = http.client.HTTPConnection("127.0.0.1", nginx_port, timeout=5)
    conn.request("GET", "/healthz")
    first = conn.getresponse()
    assert (first.status, first.read()) == (200, b'{"ok": true}')
    assert not first.will_close  # gunicorn closed its side; nginx keeps the client's
    sock = conn.sock
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200 and conn.sock is sock
    conn.close()


@pytest.fixture
def ingest_key(tenant) -> str:
    return create_api_key(tenant, name="proxy test", scopes=["ingest"])[1]


@pytest.mark.django_db(transaction=True)  # the server's own connection sees the key
@pytest.mark.parametrize("cut", ["headers", "body"])
def test_a_stalled_client_holds_the_proxy_not_the_worker(stack, ingest_key, cut):
    nginx_port, gunicorn_port = stack
    partial = _partial_request(cut, ingest_key)
    with socket.create_connection(("127.0.0.1", nginx_port)) as stalled:
        stalled.sendall(partial)
        time.sleep(0.3)
        assert _healthz(nginx_port) == 200  # the one worker is free
    # Without the proxy the same client takes the worker until it finishes, and the next request waits.
    with socket.create_connection(("127.0.0.1", gunicorn_port)) as stalled:
        stalled.sendall(partial)
        time.sleep(0.3)
        with pytest.raises(TimeoutError):
            _healthz(gunicorn_port, timeout_s=1.5)
    assert _healthz(gunicorn_port, timeout_s=10) == 200  # freed once the stalled client went away


def test_a_body_over_the_limit_is_refused_by_the_proxy_as_a_problem(stack):
    nginx_port, _ = stack
    with socket.create_connection(("127.0.0.1", nginx_port), timeout=5) as sock:
        sock.sendall(b"POST /v1/events/bulk HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 18874368\r\n\r\n")  # 18 MiB declared, none sent: refused before reading
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert response.getheader("Content-Type") == "application/problem+json"
        body = json.loads(response.read())
    assert body["status"] == 413 and body["type"] == "/problems/payload-too-large"


def _post(conn: http.client.HTTPConnection, path: str) -> http.client.HTTPResponse:
    conn.request("POST", path, body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.body = response.read()
    return response


def test_webhook_deliveries_are_rate_limited_per_connection_at_the_proxy(stack):
    """A burst of 200 passes; beyond it, at 20 per second sustained, nginx answers 429 itself, and another
    connection's URL and the API are not held back. (An unknown connection: the app answers 404.)"""
    nginx_port, _ = stack
    flooded, other = (f"/webhooks/shopify/{uuid.uuid4()}" for _ in range(2))
    conn = http.client.HTTPConnection("127.0.0.1", nginx_port, timeout=10)
    started = time.monotonic()
    responses = [_post(conn, flooded) for _ in range(400)]
    elapsed = time.monotonic() - started

    statuses = [r.status for r in responses]
    assert statuses[:200] == [404] * 200
    refused = [r for r in responses if r.status == 429]
    # At most the burst and what the rate refilled meanwhile got through (nginx counts in milliseconds).
    assert len(refused) >= 400 - 201 - 20 * elapsed - 1, (len(refused), elapsed)
    assert refused[0].getheader("Content-Type") == "application/problem+json"
    assert refused[0].getheader("Retry-After") == "1"
    assert json.loads(refused[0].body)["status"] == 429
    assert _post(conn, other).status == 404
    conn.close()
    assert _healthz(nginx_port) == 200


def test_a_webhook_body_over_its_cap_is_refused_by_the_proxy(stack):
    nginx_port, _ = stack
    with socket.create_connection(("127.0.0.1", nginx_port), timeout=5) as sock:
        sock.sendall(f"POST /webhooks/woocommerce/{uuid.uuid4()} HTTP/1.1\r\nHost: shop.example\r\n"
                     "Content-Type: application/json\r\nContent-Length: 4194304\r\n\r\n".encode())  # 4 MiB, none sent
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert response.getheader("Content-Type") == "application/problem+json"
