"""CPU per request in the web process: Django's WSGI application called in process, no HTTP server.

    python tests/bench/request_cpu.py               # figures and a JSON line
    python tests/bench/request_cpu.py --profile     # and where a cached answer's CPU goes, by function

The latency benchmark (tests/bench/serving.py) needs a trained shop and a loaded machine to say anything;
this one isolates what the request pipeline itself costs, which is what the latency ratios against the
no-op mostly measure. A small shop is loaded through the API, then rounds alternate, each timing the
same number of requests of every kind with `time.process_time()` (this process only: PostgreSQL's and
Redis's CPU is not counted, their round trips are not CPU):

* no-op: GET /healthz (the URL resolver, middleware and a JSON response);
* cached answer: GET /v1/recommendations for a customer whose answer is in the answer cache;
* single event: POST /v1/events (authentication, admission, validation, one insert).

Medians over the rounds, in microseconds, and each as a multiple of the no-op. The LAST line is JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load

N_PRODUCTS = 200
N_CUSTOMERS = 50


def _environ(method: str, path: str, api_key: str | None, body: bytes = b"") -> Callable[[], dict]:
    path, _, query = path.partition("?")
    base = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.errors": sys.stderr, "HTTP_HOST": "localhost",
    }
    if api_key:
        base["HTTP_AUTHORIZATION"] = f"Bearer {api_key}"
    if body:
        base["CONTENT_TYPE"] = "application/json"
        base["CONTENT_LENGTH"] = str(len(body))

    def make() -> dict:
        return {**base, "wsgi.input": io.BytesIO(body)}

    return make


def _call(app, environ: dict) -> tuple[int, bytes]:
    status: list[str] = []
    chunks = app(environ, lambda s, headers, exc_info=None: status.append(s))
    body = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return int(status[0].split()[0]), body


def _setup(app) -> tuple[int, str, str]:
    from tenants.api_keys import create_api_key
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="bench cpu", slug=f"bench-cpu-{uuid.uuid4().hex[:8]}", plan=Tenant.Plan.SCALE)
    _, ingest_key = create_api_key(tenant, name="bench", scopes=["ingest"])
    _, recommend_key = create_api_key(tenant, name="bench", scopes=["recommend"])
    products = [{"id": f"p{i}", "title": f"Product {i}", "price": "9.99"} for i in range(N_PRODUCTS)]
    events = [
        {"type": "view", "customer_id": f"c{i % N_CUSTOMERS}", "product_id": f"p{(i * 7) % N_PRODUCTS}",
         "event_id": f"setup-{i}", "timestamp": "2026-01-01T00:00:00Z"}
        for i in range(2_000)
    ]
    for path, body in (("/v1/products/bulk", {"items": products}), ("/v1/events/bulk", {"events": events})):
        status, answer = _call(app, _environ("POST", path, ingest_key, json.dumps(body).encode())())
        if status >= 300:
            raise SystemExit(f"setup {path}: {status} {answer[:300]!r}")
    return tenant.pk, ingest_key, recommend_key


def _delete(tenant_id: int) -> None:
    from django.db import connection

    from tenants.context import tenant_context
    from tenants.models import Tenant

    with tenant_context(tenant_id), connection.cursor() as cursor:
        for table in ("recs_event", "recs_eventtype", "recs_customerversion", "recs_productversion", "recs_customer",
                      "recs_product"):
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant_id])
    Tenant.objects.filter(pk=tenant_id).delete()


def _round(app, make: Callable[[], dict], n: int, expect: int) -> float:
    """CPU microseconds per request over n requests."""
    start = time.process_time()
    for _ in range(n):
        status, body = _call(app, make())
        if status != expect:
            raise SystemExit(f"expected {expect}, got {status}: {body[:300]!r}")
    return (time.process_time() - start) / n * 1e6


def _event_maker(api_key: str) -> Callable[[], dict]:
    counter = iter(range(10**9))

    def make() -> dict:
        body = json.dumps({"type": "view", "customer_id": "c-bench", "product_id": "p1",
                           "event_id": f"bench-{next(counter)}-{uuid.uuid4().hex[:6]}"}).encode()
        return _environ("POST", "/v1/events", api_key, body)()

    return make


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=300, help="requests of each kind per round")
    parser.add_argument("--profile", action="store_true", help="profile cached answers and print the top functions")
    args = parser.parse_args(argv)

    _load.bootstrap_django()
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    tenant_id, ingest_key, recommend_key = _setup(app)
    try:
        kinds = {
            "noop": (_environ("GET", "/healthz", None), 200),
            "cached_answer": (_environ("GET", "/v1/recommendations?customer_id=c1&k=10", recommend_key), 200),
            "single_event": (_event_maker(ingest_key), 201),
        }
        for make, expect in kinds.values():  # warm: imports, connections, the answer cache
            for _ in range(20):
                _round(app, make, 1, expect)
        samples: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(args.rounds):
            for name, (make, expect) in kinds.items():
                samples[name].append(_round(app, make, args.requests, expect))
        figures = {name: round(statistics.median(values), 1) for name, values in samples.items()}
        noop = figures["noop"]
        print(f"CPU per request, median of {args.rounds} rounds of {args.requests} (microseconds):")
        for name, value in figures.items():
            print(f"  {name:14s} {value:8.1f} us   {value / noop:5.2f}x the no-op")
        if args.profile:
            make, expect = kinds["cached_answer"]
            profiler = cProfile.Profile()
            profiler.enable()
            _round(app, make, args.requests, expect)
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=_load.REPO).stdout.strip()
        print(json.dumps({
            "benchmark": "request_cpu", "commit": commit, "rounds": args.rounds, "requests": args.requests,
            **{f"{name}_us": value for name, value in figures.items()},
            **{f"{name}_per_noop": round(value / noop, 2) for name, value in figures.items() if name != "noop"},
            "cpus": os.cpu_count(),
        }))
    finally:
        _delete(tenant_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
