"""What kept candidate rows save an uncached answer: paired, in one process, over the kept bench shop.

    python tests/bench/serving.py --keep          # once: the 1M-product shop and its active version
    python tests/bench/candidate_rows.py          # then this, as often as wanted

Uncached answers (distinct customers, each asked once) alternate between the kept rows on and off
(`RECSVC_CANDIDATE_ROWS`), one request each in turn, through Django's test client in this process, so
both halves see the same machine at the same moments: on this shared machine, runs minutes apart differ
by more than the effect. Per answer it measures this thread's CPU (the web worker's share) and the CPU of
this process's PostgreSQL backend (from /proc), and how many candidate rows were read from PostgreSQL.
The LAST line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=600, help="uncached answers in each half")
    parser.add_argument("--warmup", type=int, default=300, help="answers before measuring (rows kept)")
    args = parser.parse_args(argv)

    _load.bootstrap_django(migrate=False)
    import gc

    import numpy as np
    import torch
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from serving import catalog
    from serving.cache import bump_rules_generation
    from tests.bench.serving import _customers_with_history, _kept_tenants

    torch.set_num_threads(1)  # as config/wsgi.py sets a web worker up
    gc.collect()
    gc.freeze()
    _, shop = _kept_tenants()
    customers = _customers_with_history(shop.tenant_id, args.warmup + 2 * args.answers, seed=int(time.time()))
    if len(customers) < args.warmup + 2 * args.answers:
        raise SystemExit(f"only {len(customers)} customers with events")
    bump_rules_generation(shop.tenant_id)  # nothing the kept run cached is found
    read_rows = [0]
    statement = catalog._rows_through_sql

    def counting(tenant_id, pks, keys):
        read_rows[0] += len(pks)
        return statement(tenant_id, pks, keys)

    catalog._rows_through_sql = counting
    client, auth = Client(), {"HTTP_AUTHORIZATION": f"Bearer {shop.api_key}"}

    def answer(customer: str) -> None:
        response = client.get(f"/v1/recommendations?customer_id={customer}&k=10", **auth)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.content[:200]!r}")

    kept_rows = settings.RECSVC_CANDIDATE_ROWS
    for customer in customers[: args.warmup]:
        answer(customer)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    halves = {"kept": ([], [], [0]), "not_kept": ([], [], [0])}
    for i, customer in enumerate(customers[args.warmup: args.warmup + 2 * args.answers]):
        name = "kept" if i % 2 == 0 else "not_kept"
        settings.RECSVC_CANDIDATE_ROWS = kept_rows if name == "kept" else 0
        worker, database, rows = halves[name]
        read_rows[0] = 0
        pg_before, started = _load.cpu_seconds(backend), time.thread_time()
        answer(customer)
        worker.append(1000 * (time.thread_time() - started))
        database.append(1000 * (_load.cpu_seconds(backend) - pg_before))
        rows[0] += read_rows[0]
    settings.RECSVC_CANDIDATE_ROWS = kept_rows

    figures: dict = {"answers_per_half": args.answers, "kept_rows_limit": kept_rows, "catalog_size": shop.n_items}
    table = []
    for name, (worker, database, rows) in halves.items():
        figures[f"{name}_worker_cpu_ms"] = round(float(np.mean(worker)), 3)
        figures[f"{name}_worker_cpu_median_ms"] = round(float(np.median(worker)), 3)
        figures[f"{name}_postgres_cpu_ms"] = round(float(np.mean(database)), 3)
        figures[f"{name}_rows_read_per_answer"] = round(rows[0] / args.answers, 1)
        total = figures[f"{name}_worker_cpu_ms"] + figures[f"{name}_postgres_cpu_ms"]
        figures[f"{name}_total_cpu_ms"] = round(total, 3)
        table.append((f"rows {name.replace('_', ' ')}: worker / PostgreSQL / both",
                      f"{figures[f'{name}_worker_cpu_ms']:.2f} / {figures[f'{name}_postgres_cpu_ms']:.2f} / "
                      f"{total:.2f} ms per answer, {figures[f'{name}_rows_read_per_answer']} rows read"))
    figures["total_cpu_ratio"] = round(figures["kept_total_cpu_ms"] / figures["not_kept_total_cpu_ms"], 3)
    table.append(("kept / not kept, CPU per answer", f"{figures['total_cpu_ratio']:.3f}"))
    _load.print_table(f"Uncached answers on the {shop.n_items:,}-product shop, paired in one process", table)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
