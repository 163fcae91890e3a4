"""Ingestion benchmark: bulk events API against a raw COPY floor, single-event latency against a no-op,
and a streaming import of a large NDJSON file (wall time and peak memory of the importing process).

    python tests/bench/ingest.py                  # everything, 10 million events imported (minutes)
    python tests/bench/ingest.py --events 200000  # quick check

DATABASE_URL / REDIS_URL default to the local services (postgres://recsvc@127.0.0.1:5432/recsvc,
redis://127.0.0.1:6379/0). The script migrates, creates a fresh bench tenant with a synthetic catalog,
starts gunicorn (`config.wsgi`) on a loopback port and removes the tenant, its rows and its files when
it ends. It prints readable tables, then as its LAST line one JSON object with the figures.

What is measured (targets from the ingestion issue):
* bulk: POST /v1/events/bulk, 10,000-event bodies serialised before timing (fresh event_ids), from 1 and
  from 2 concurrent clients. The floor is rows of the same kind written straight into recs_event in
  the same run, with the same concurrency: psycopg COPY of pre-encoded rows into a temp staging table,
  then INSERT ... ON CONFLICT (tenant_id, event_id) DO NOTHING, ids already resolved, as the same role
  with the tenant's app.tenant_id set (row-level security active). Phases alternate to share the noise,
  and each loads the next batches of one time-ordered synthetic stream (see bench_bulk).
  Targets: API >= 0.7 x floor and >= 50,000 events/s.
* single: POST /v1/events (one event, fresh event_id) from 8 concurrent clients, and the
  no-op /healthz on the same server in the same run, alternating. Target: p99(single) <= 2 x p99(no-op).
* import: recs.ingest.imports.run_import of an NDJSON file written by the synthetic shop generator, in a
  child process whose peak RSS (VmHWM) is reported; memory must not grow with the file.

The load generator runs on the same machine (threads, raw sockets, pre-built requests) and shares its
CPUs with the server and PostgreSQL, and other work on the machine adds noise: compare figures of one
run with each other, not across machines.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load

BATCH = 10_000
SINGLE_CLIENTS = 8
EVENT_COLUMNS = (
    "event_type", "customer_id", "product_id", "ts", "value", "quantity", "price", "session_id",
    "recommendation_id", "event_id",
)
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS bench_floor_staging ("
    " event_type varchar(32), customer_id bigint, product_id bigint, ts timestamptz, value double precision,"
    " quantity integer, price numeric(12,2), session_id varchar(128), recommendation_id uuid,"
    " event_id varchar(128)) ON COMMIT DELETE ROWS"
)
_COLS = ", ".join(EVENT_COLUMNS)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the import file")
    parser.add_argument("--customers", type=int, default=100_000, help="customers in the bench catalog")
    parser.add_argument("--products", type=int, default=10_000, help="products in the bench catalog")
    parser.add_argument("--batches", type=int, default=24, help="timed 10k-event batches per bulk phase (>= 20)")
    parser.add_argument("--requests", type=int, default=3_000, help="timed requests per latency phase")
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default: config/gunicorn.py's)")
    parser.add_argument("--worker-class", help="gunicorn worker class (sync keeps no connection alive)")
    parser.add_argument("--threads", type=int, help="threads per gthread worker")
    parser.add_argument("--workdir", default=None, help="where the import file is written (default: a temp dir)")
    parser.add_argument("--skip-bulk", action="store_true")
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the bench tenant and its rows")
    parser.add_argument("--import-child", nargs=2, type=int, metavar=("TENANT", "JOB"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- set-up and clean-up --------------------------------------------------------------------------------


@dataclasses.dataclass
class BenchTenant:
    tenant_id: int
    api_key: str
    customer_pk: dict[str, int]
    product_pk: dict[str, int]


_PRODUCT_FK_INDEX = "bench_tmp_event_product_idx"


def _delete_tenant_rows(tenant_id: int) -> None:
    """Raw deletes, children first (10 million events through the ORM's collector would take an hour).

    recs_event has no index on product_id, so each deleted product's foreign-key check scans the whole
    event table (dead rows included): 10,000 products took over ten minutes. A temporary index on
    product_id, built after the events are gone, makes those checks index probes; it is dropped again.
    """
    from django.db import connection

    from tenants.context import tenant_context
    from tenants.models import Tenant

    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute("DELETE FROM recs_event WHERE tenant_id = %s", [tenant_id])
        cursor.execute("VACUUM recs_event")
        cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {_PRODUCT_FK_INDEX} ON recs_event (product_id)")
        try:
            for table in (
                "recs_importjob", "recs_eventtype", "recs_customerversion", "recs_productversion", "recs_customer",
                "recs_product",
            ):
                cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant_id])
        finally:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_PRODUCT_FK_INDEX}")
        # Leave no bloat behind: the next run's id lookups would seq-scan 100,000s of dead catalog rows.
        for table in ("recs_customer", "recs_customerversion", "recs_product", "recs_productversion"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        Tenant.objects.filter(pk=tenant_id).delete()


def _remove_stale_bench_tenants() -> None:
    from tenants.models import Tenant

    for tenant_id in Tenant.objects.filter(slug__startswith="bench-ingest-").values_list("pk", flat=True):
        print(f"removing a bench tenant left by an interrupted run (id {tenant_id})", file=sys.stderr)
        _delete_tenant_rows(tenant_id)


def _create_tenant(catalog) -> BenchTenant:
    from django.db import connection

    from recs.ingest.catalog import upsert_customers, upsert_products
    from tenants.api_keys import create_api_key
    from tenants.context import tenant_context
    from tenants.models import Tenant

    # A paid plan: the benchmark measures ingestion, not the free plan's monthly quota.
    tenant = Tenant.objects.create(
        name="Ingest benchmark", slug=f"bench-ingest-{uuid.uuid4().hex[:8]}", plan=Tenant.Plan.SCALE
    )
    _, raw_key = create_api_key(tenant, name="bench", scopes=["ingest"])
    with tenant_context(tenant.pk):
        n_products, n_customers = len(catalog.products), len(catalog.customers)
        for start in range(0, n_products, 1_000):
            upsert_products(tenant.pk, list(catalog.iter_product_records(start, min(start + 1_000, n_products))))
        for start in range(0, n_customers, 1_000):
            records = catalog.iter_customer_records(start, min(start + 1_000, n_customers))
            upsert_customers(tenant.pk, [{k: v for k, v in r.items() if k != "created_at"} for r in records])
            if start % 20_000 == 0:
                # Statistics of a table that was empty make the upserts' lookups seq scans of a growing table.
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE recs_customer; ANALYZE recs_customerversion")
        with connection.cursor() as cursor:
            cursor.execute("SELECT external_id, id FROM recs_customer WHERE tenant_id = %s", [tenant.pk])
            customers = dict(cursor.fetchall())
            cursor.execute("SELECT external_id, id FROM recs_product WHERE tenant_id = %s", [tenant.pk])
            products = dict(cursor.fetchall())
            cursor.execute("ANALYZE recs_customer; ANALYZE recs_product")
    return BenchTenant(tenant.pk, raw_key, customers, products)


# --- bulk: API against the COPY floor -----------------------------------------------------------------------


def _event_batches(spec, catalog, n_batches: int):
    """Decoded synthetic events in batches of BATCH (the generator's own ids; callers replace event_id)."""
    import msgspec

    from demo.synthetic import format_ndjson, iter_event_chunks
    from recs.ingest.event_schema import EventIn

    decoder = msgspec.json.Decoder(EventIn)
    spec = dataclasses.replace(spec, n_events=int(n_batches * BATCH * 1.05) + BATCH, seed=spec.seed + 1)
    batches = []
    for chunk in iter_event_chunks(spec, catalog, chunk_size=BATCH):
        if len(chunk) < BATCH or len(batches) == n_batches:
            break
        batches.append([decoder.decode(line) for line in format_ndjson(chunk).encode().splitlines()])
    if len(batches) < n_batches:
        raise RuntimeError("the generator produced fewer events than asked for")
    return batches


def _api_body(events, prefix: str) -> bytes:
    import msgspec

    return msgspec.json.encode({"events": [_with_event_id(e, f"{prefix}{e.event_id}") for e in events]})


def _with_event_id(event, event_id: str):
    import msgspec

    return msgspec.structs.replace(event, event_id=event_id)


def _copy_text(value) -> str:
    if value is None:
        return r"\N"
    return str(value)


def _floor_payload(events, prefix: str, bench: BenchTenant) -> bytes:
    """The batch as COPY text rows with database ids resolved (what the API writes, minus the work)."""
    lines = []
    for e in events:
        row = (
            e.type, bench.customer_pk[e.customer_id], bench.product_pk[e.product_id], e.timestamp.isoformat(),
            e.value, e.quantity, e.price, e.session_id or "", e.recommendation_id, f"{prefix}{e.event_id}",
        )
        lines.append("\t".join(_copy_text(v) for v in row))
    return ("\n".join(lines) + "\n").encode()


class Floor:
    """Direct COPY + INSERT ... ON CONFLICT, one connection per client, each batch its own transaction."""

    def __init__(self, tenant_id: int, clients: int):
        import psycopg
        from django.conf import settings

        db = settings.DATABASES["default"]
        self.tenant_id = tenant_id
        self.connections = []
        for _ in range(clients):
            conn = psycopg.connect(
                host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"] or None,
                dbname=db["NAME"], autocommit=True,
            )
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", [str(tenant_id)])
            conn.execute(_STAGING)
            self.connections.append(conn)

    def close(self) -> None:
        for conn in self.connections:
            conn.close()

    def _load(self, conn, payload: bytes) -> int:
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(f"COPY bench_floor_staging ({_COLS}) FROM STDIN") as copy:
                copy.write(payload)
            cursor.execute(
                f"INSERT INTO recs_event (tenant_id, {_COLS}, received_at)"
                f" SELECT %s, {_COLS}, now() FROM bench_floor_staging ON CONFLICT (tenant_id, event_id) DO NOTHING",
                [self.tenant_id],
            )
            return cursor.rowcount

    def run(self, payloads: list[bytes], clients: int) -> _load.LoadResult:
        result = _load.LoadResult()
        cursor = iter(range(len(payloads)))
        lock = threading.Lock()
        stored = []

        def client(conn) -> None:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                started = time.perf_counter_ns()
                n = self._load(conn, payloads[index])
                elapsed = (time.perf_counter_ns() - started) / 1e6
                with lock:
                    result.latencies_ms.append(elapsed)
                    stored.append(n)

        threads = [threading.Thread(target=client, args=(conn,)) for conn in self.connections[:clients]]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.wall_s = time.perf_counter() - started
        if sum(stored) != BATCH * len(payloads):
            raise RuntimeError(f"floor stored {sum(stored)} of {BATCH * len(payloads)} rows")
        return result


def _bulk_requests(bodies: list[bytes], api_key: str) -> list[bytes]:
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    return [_load.build_request("POST", "/v1/events/bulk", body=body, headers=headers) for body in bodies]


def _check_bulk(result: _load.LoadResult, batches: int) -> None:
    import msgspec

    stored = sum(msgspec.json.decode(body).get("stored", 0) for body in result.bodies)
    if result.statuses != {200: batches} or stored != batches * BATCH:
        raise RuntimeError(f"bulk API answered {dict(result.statuses)} and stored {stored} of {batches * BATCH}")


def bench_bulk(server: _load.Server, bench: BenchTenant, spec, catalog, batches: int) -> dict:
    """Alternate floor and API phases at 1 and 2 clients; two rounds, each with half the batches."""
    rounds, concurrencies = 2, (1, 2)
    per_phase = -(-batches // rounds)
    warmup = 4
    # Every phase, floor or API, loads the next batches of one time-ordered stream, so that each appends
    # newer events than the table holds, as live traffic does. (When both loaded the same batches, the API
    # second, its rows' timestamps fell behind the floor's: their index entries went into the middle of
    # the (tenant, ts) and per-customer indexes instead of onto the right edge, which cost the API about
    # a quarter more PostgreSQL CPU per batch whoever came second: measured in process, 2026-11-24.)
    needed = 2 * (warmup + rounds * len(concurrencies) * per_phase)
    print(f"bulk: generating {needed} batches of {BATCH} events", file=sys.stderr)
    stream = iter(_event_batches(spec, catalog, needed))
    token = uuid.uuid4().hex[:8]

    def api_requests(n: int) -> list[bytes]:
        return _bulk_requests([_api_body(next(stream), f"api-{token}-") for _ in range(n)], bench.api_key)

    def floor_payloads(n: int) -> list[bytes]:
        return [_floor_payload(next(stream), f"floor-{token}-", bench) for _ in range(n)]

    floor = Floor(bench.tenant_id, max(concurrencies))
    try:
        _check_bulk(_load.run_closed_loop(server.address, api_requests(warmup), concurrency=2, keep_bodies=True),
                    warmup)
        floor.run(floor_payloads(warmup), 2)
        api = {c: _load.LoadResult() for c in concurrencies}
        flo = {c: _load.LoadResult() for c in concurrencies}
        # A gthread worker (the deployed class until the seventh session; --worker-class gthread) serves a
        # keep-alive connection in the worker that accepted it, for its whole life: when both clients'
        # connections land in one worker, their batches share its GIL while the other idles. Sync workers
        # take every request from the shared socket. The busiest worker's share of the workers' CPU (0.5:
        # an even split over two busy ones) says where the batches ran.
        busiest_share: list[float | None] = []
        for _ in range(rounds):
            for clients in concurrencies:
                got = floor.run(floor_payloads(per_phase), clients)
                flo[clients].latencies_ms += got.latencies_ms
                flo[clients].wall_s += got.wall_s
                requests = api_requests(per_phase)
                pids = server.worker_pids()
                before = [_load.cpu_seconds(pid) for pid in pids]
                got = _load.run_closed_loop(server.address, requests, concurrency=clients, keep_bodies=True)
                _check_bulk(got, per_phase)
                if clients == 2:
                    used = [_load.cpu_seconds(pid) - cpu for pid, cpu in zip(pids, before, strict=True)]
                    busiest_share.append(round(max(used) / sum(used), 2) if sum(used) else None)
                api[clients].latencies_ms += got.latencies_ms
                api[clients].wall_s += got.wall_s
                print(f"bulk round: {clients} client(s) done", file=sys.stderr)
    finally:
        floor.close()

    def rate(result: _load.LoadResult) -> float:
        return result.count * BATCH / result.wall_s

    figures = {}
    for clients in concurrencies:
        suffix = "" if clients == 2 else "_1client"
        figures[f"bulk_events_per_s{suffix}"] = round(rate(api[clients]))
        figures[f"floor_events_per_s{suffix}"] = round(rate(flo[clients]))
        figures[f"bulk_vs_floor{suffix}"] = round(rate(api[clients]) / rate(flo[clients]), 3)
        figures[f"bulk_median_batch_ms{suffix}"] = round(_load.median(api[clients].latencies_ms), 1)
        figures[f"floor_median_batch_ms{suffix}"] = round(_load.median(flo[clients].latencies_ms), 1)
    figures["bulk_median_batch_events_per_s"] = round(BATCH / (_load.median(api[1].latencies_ms) / 1000))
    figures["bulk_busiest_worker_cpu_share"] = busiest_share
    figures["bulk_batches"] = api[2].count
    figures["bulk_clients"] = 2
    return figures


# --- single events against the no-op ------------------------------------------------------------------------


def bench_single(server: _load.Server, bench: BenchTenant, spec, catalog, n_requests: int) -> dict:
    import msgspec

    warmup = 400
    rounds = 2
    per_round = -(-n_requests // rounds)
    events = [e for batch in _event_batches(dataclasses.replace(spec, seed=spec.seed + 7), catalog, 1) for e in batch]
    token = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {bench.api_key}", "Content-Type": "application/json"}
    rng = random.Random(5)
    posts = [
        _load.build_request(
            "POST", "/v1/events", headers=headers,
            body=msgspec.json.encode(_with_event_id(rng.choice(events), f"one-{token}-{i}")),
        )
        for i in range(warmup + rounds * per_round)
    ]
    noop = [_load.build_request("GET", "/healthz")] * (warmup + rounds * per_round)
    _load.run_closed_loop(server.address, noop[:warmup], concurrency=SINGLE_CLIENTS)
    warm = _load.run_closed_loop(server.address, posts[:warmup], concurrency=SINGLE_CLIENTS)
    if warm.statuses != {201: warmup}:
        raise RuntimeError(f"single POST answered {dict(warm.statuses)}")
    noop_all, post_all = _load.LoadResult(), _load.LoadResult()
    for r in range(rounds):
        part = slice(warmup + r * per_round, warmup + (r + 1) * per_round)
        got = _load.run_closed_loop(server.address, noop[part], concurrency=SINGLE_CLIENTS, max_seconds=120)
        noop_all.latencies_ms += got.latencies_ms
        noop_all.wall_s += got.wall_s
        noop_all.statuses.update(got.statuses)
        got = _load.run_closed_loop(server.address, posts[part], concurrency=SINGLE_CLIENTS, max_seconds=120)
        post_all.latencies_ms += got.latencies_ms
        post_all.wall_s += got.wall_s
        post_all.statuses.update(got.statuses)
        post_all.reconnects += got.reconnects
    if set(post_all.statuses) != {201} or set(noop_all.statuses) != {200}:
        raise RuntimeError(f"single POST {dict(post_all.statuses)}, no-op {dict(noop_all.statuses)}")
    return {
        "noop_p50_ms": round(noop_all.percentile(50), 2),
        "noop_p99_ms": round(noop_all.percentile(99), 2),
        "noop_rps": round(noop_all.rate),
        "single_post_p50_ms": round(post_all.percentile(50), 2),
        "single_post_p99_ms": round(post_all.percentile(99), 2),
        "single_post_rps": round(post_all.rate),
        "single_post_p99_vs_noop": round(post_all.percentile(99) / noop_all.percentile(99), 2),
        "single_requests": post_all.count,
        "single_clients": SINGLE_CLIENTS,
        "single_reconnects": post_all.reconnects,
    }


# --- streaming import ---------------------------------------------------------------------------------------


def _import_child(tenant_id: int, job_id: int) -> None:
    """Runs in a fresh process: load the job's file, report wall time and peak RSS as one JSON line."""
    _load.bootstrap_django(migrate=False)
    from recs.ingest.imports import run_import
    from recs.models import ImportJob
    from tenants.context import tenant_context

    with tenant_context(tenant_id):
        job = ImportJob.objects.for_tenant(tenant_id).get(pk=job_id)
        started = time.perf_counter()
        job = run_import(job)
        wall = time.perf_counter() - started
    print(json.dumps({
        "status": job.status, "error": job.error_message, "wall_s": wall, "rows_ok": job.rows_ok,
        "rows_failed": job.rows_failed, "rows_duplicate": job.rows_duplicate,
        # VmHWM, not getrusage's ru_maxrss: Linux carries the parent's RSS at fork into ru_maxrss across
        # exec, which would report the benchmark's own memory instead of the importer's.
        "peak_rss_kb": _load.proc_status_kb(os.getpid(), "VmHWM"),
    }))


def bench_import(bench: BenchTenant, spec, catalog, n_events: int, workdir: Path) -> dict:
    from demo.synthetic import iter_event_chunks, write_ndjson
    from recs.models import ImportJob
    from tenants.context import tenant_context

    path = workdir / "events.ndjson"
    started = time.perf_counter()
    written = write_ndjson(path, iter_event_chunks(dataclasses.replace(spec, n_events=n_events), catalog))
    generate_s = time.perf_counter() - started
    size = path.stat().st_size
    print(f"import: wrote {written:,} events ({size / 1e9:.2f} GB) in {generate_s:.0f} s", file=sys.stderr)
    with tenant_context(bench.tenant_id):
        job = ImportJob.objects.create(
            tenant_id=bench.tenant_id, kind=ImportJob.Kind.EVENTS, format=ImportJob.Format.NDJSON,
            file_path=str(path), size_bytes=size,
        )
    child = subprocess.Popen(
        [sys.executable, __file__, "--import-child", str(bench.tenant_id), str(job.pk)],
        stdout=subprocess.PIPE, text=True, cwd=_load.REPO,
    )
    samples: list[tuple[float, int]] = []  # (progress, rss kB)
    started = time.perf_counter()
    with tenant_context(bench.tenant_id):
        while child.poll() is None:
            rss = _load.proc_status_kb(child.pid, "VmRSS")
            done = ImportJob.objects.for_tenant(bench.tenant_id).filter(pk=job.pk).values_list(
                "processed_bytes", flat=True
            ).first()
            if rss is not None and done is not None:
                samples.append((done / size, rss))
            if len(samples) % 20 == 1:
                print(f"import: {done / size:6.1%}  rss {rss / 1024:.0f} MB", file=sys.stderr)
            time.sleep(0.5)
    outcome = json.loads(child.stdout.read().strip().splitlines()[-1])
    if child.returncode or outcome["status"] != "succeeded":
        raise RuntimeError(f"import failed: {outcome}")
    wall = time.perf_counter() - started
    started_rss = [rss for progress, rss in samples if progress > 0]
    by_quarter = {
        f"{q}%": round(max(rss for progress, rss in samples if progress <= q / 100) / 1024)
        for q in (25, 50, 75, 100) if any(progress <= q / 100 for progress, _ in samples)
    }
    return {
        "import_events": written,
        "import_rows_ok": outcome["rows_ok"],
        "import_rows_failed": outcome["rows_failed"],
        "import_file_gb": round(size / 1e9, 2),
        "import_10m_s": round(outcome["wall_s"], 1),
        "import_process_s": round(wall, 1),
        "import_events_per_s": round(written / outcome["wall_s"]),
        "import_peak_rss_mb": round(outcome["peak_rss_kb"] / 1024),
        "import_rss_after_first_chunk_mb": round(started_rss[0] / 1024) if started_rss else None,
        # The highest RSS sampled up to each share of the file: flat memory keeps these equal.
        "import_rss_mb_by_progress": by_quarter,
        "import_generate_s": round(generate_s, 1),
    }


# --- main ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.import_child:
        _import_child(*args.import_child)
        return 0
    if args.batches < 20:
        raise SystemExit("--batches must be at least 20")
    _load.bootstrap_django()
    from django.conf import settings

    from demo.synthetic import ShopSpec, generate_catalog

    if not settings.IS_POSTGRES:
        raise SystemExit("the ingestion benchmark needs PostgreSQL (set DATABASE_URL)")
    spec = ShopSpec(n_customers=args.customers, n_products=args.products, n_events=args.events, seed=11)
    catalog = generate_catalog(spec)
    _remove_stale_bench_tenants()
    started = time.perf_counter()
    bench = _create_tenant(catalog)
    figures: dict = {"catalog_products": len(catalog.products), "catalog_customers": len(catalog.customers),
                     "catalog_load_s": round(time.perf_counter() - started, 1)}
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server_env = {"RECSVC_RATE_LIMIT_PER_MINUTE": "1000000000", "DJANGO_DEBUG": "0"}
    try:
        if not (args.skip_bulk and args.skip_single):
            with _load.gunicorn(workers=args.workers, worker_class=args.worker_class, threads=args.threads,
                                env=server_env) as server:
                figures["server"] = server.description
                figures.update(_load.database_settings())
                figures["load_generator"] = _load.LOAD_GENERATOR
                if not args.skip_bulk:
                    figures.update(bench_bulk(server, bench, spec, catalog, args.batches))
                if not args.skip_single:
                    figures.update(bench_single(server, bench, spec, catalog, args.requests))
        if not args.skip_import:
            figures.update(bench_import(bench, spec, catalog, args.events, workdir))
    finally:
        print(json.dumps(figures, sort_keys=True), file=sys.stderr)  # kept even if the clean-up fails
        if not args.keep:
            print("cleaning up the bench tenant", file=sys.stderr)
            started = time.perf_counter()
            _delete_tenant_rows(bench.tenant_id)
            print(f"cleaned up in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                (workdir / "events.ndjson").unlink()
    _report(figures)
    return 0


def _report(figures: dict) -> None:
    def fmt(key: str, unit: str = "") -> str:
        value = figures.get(key)
        if value is None:
            return "-"
        return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"

    _load.print_table("Bulk events (10,000 per request)", [
        ("server", fmt("server")),
        ("API, 2 clients", fmt("bulk_events_per_s", " events/s")),
        ("floor (COPY), 2 connections", fmt("floor_events_per_s", " events/s")),
        ("API / floor (target >= 0.7)", fmt("bulk_vs_floor")),
        ("API, 1 client", fmt("bulk_events_per_s_1client", " events/s")),
        ("floor, 1 connection", fmt("floor_events_per_s_1client", " events/s")),
        ("API / floor, 1 client", fmt("bulk_vs_floor_1client")),
        ("busiest worker's CPU share, 2 clients, by round",
         " / ".join(str(v) for v in figures.get("bulk_busiest_worker_cpu_share") or []) or "-"),
        ("median batch, API 1 client", fmt("bulk_median_batch_ms_1client", " ms")),
        ("median batch, floor 1 conn", fmt("floor_median_batch_ms_1client", " ms")),
        ("median per-batch rate, API", fmt("bulk_median_batch_events_per_s", " events/s")),
    ])
    _load.print_table(f"Single event vs no-op ({SINGLE_CLIENTS} concurrent clients)", [
        ("no-op /healthz p50 / p99", f"{fmt('noop_p50_ms')} / {fmt('noop_p99_ms')} ms"),
        ("POST /v1/events p50 / p99", f"{fmt('single_post_p50_ms')} / {fmt('single_post_p99_ms')} ms"),
        ("p99 ratio (target <= 2)", fmt("single_post_p99_vs_noop")),
        ("throughput no-op / POST", f"{fmt('noop_rps')} / {fmt('single_post_rps')} req/s"),
    ])
    _load.print_table("Streaming import", [
        ("events", fmt("import_events")),
        ("file", fmt("import_file_gb", " GB")),
        ("wall time (run_import)", fmt("import_10m_s", " s")),
        ("rate", fmt("import_events_per_s", " events/s")),
        ("RSS after first chunk", fmt("import_rss_after_first_chunk_mb", " MB")),
        ("max RSS up to 25/50/75/100%", " / ".join(
            str(v) for v in (figures.get("import_rss_mb_by_progress") or {}).values()) + " MB"),
        ("peak RSS (VmHWM)", fmt("import_peak_rss_mb", " MB")),
    ])
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    raise SystemExit(main())
