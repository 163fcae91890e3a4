"""What attribution and experiment assignment cost an uncached recommendation (issue 22's
`attribution_overhead_p99_ratio`): p99 with both on over p99 with both off, in one run, interleaved.

    python tests/bench/experiments.py --serving      # merged into that script's last JSON line
    python tests/bench/_attribution_overhead.py      # these figures alone, as one JSON line

`tests/bench/experiments.py` merges `figures()` into its last JSON line only with `--serving`: the rest of
that script needs neither database nor server, this part needs PostgreSQL and Redis (DATABASE_URL and
REDIS_URL, defaulting to the local services as in tests/bench/_load.py) and takes a few minutes.

How: a synthetic shop is loaded and trained through the product's own functions (tests/bench/serving.py's
loader, a small catalog), and an experiment with two variants of the same serving configuration (ranker on,
so both variants do the same serving work as no experiment) is created on it. Two servers as deployed
(gunicorn, config/gunicorn.py) run side by side on the same database and Redis:

* ON: RECSVC_RECORD_ANSWERS=1 (each answer is one XADD to the served-answers stream) while the experiment
  runs (each request reads the shop's experiments generation from Redis and hashes the unit: its variant);
* OFF: RECSVC_RECORD_ANSWERS=0 while the experiment is paused (nothing recorded, every unit gets the
  default serving). The generation read stays on this side too: serving has no switch that skips it, so
  the ratio measures recording plus assignment proper, not that one cache read.

Phases alternate ON, OFF, OFF, ON, ... (6 of each), each sending 800 uncached recommendations
(distinct customers with history, each asked once) from 8 concurrent clients, after a few untimed requests
that let every worker reload the experiments it holds. Every timed answer is checked: ON answers carry the
experiment's variant, OFF answers "control", and the stream grows by the ON answers only.

Where the time goes: the servers' CPU per request in each state, and the two hot-path calls timed in this
process against the same Redis (`record_answer`, `assignment_for`, microseconds per call).

The machine is small and shared: compare the two states of one run, not figures across runs.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import _load

CLIENTS = 8
WARMUP_PER_PHASE = 16
TARGET = 1.10


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] overhead: {message}", file=sys.stderr, flush=True)


def _experiment(tenant_id: int):
    from experiments.lifecycle import create_experiment, start
    from tenants.context import tenant_context

    same = {"ranker": True}
    with tenant_context(tenant_id):
        experiment = create_experiment(tenant_id, {
            "name": "overhead", "goal": "revenue_per_1000",
            "variants": [{"name": "a", "weight": 1, "config": same}, {"name": "b", "weight": 1, "config": same}],
        })
        return start(experiment)


def _set_running(experiment, running: bool) -> None:
    from experiments.lifecycle import pause, start
    from tenants.context import tenant_context

    with tenant_context(experiment.tenant_id):
        (start if running else pause)(experiment)


def _stream_length() -> int:
    from core.redis_client import raw_redis
    from recs.attribution.stream import stream_key

    return int(raw_redis().xlen(stream_key()))


def _hot_path_calls(tenant_id: int, customers: list[str], repeat: int = 2_000) -> dict:
    """Microseconds per call of the two hot-path steps, in this process against the same Redis."""
    from django.test import override_settings

    from experiments.running import assignment_for
    from recs.attribution.record import record_answer

    answer = {"recommendation_id": "00000000-0000-4000-8000-000000000000", "variant": "1:a", "model_version": 1,
              "reason": "personalized", "items": [{"id": f"p-{i}"} for i in range(10)]}
    out = {}
    for name, call in (
        ("assignment_for", lambda c: assignment_for(tenant_id, c, None)),
        ("record_answer", lambda c: record_answer(tenant_id, "recommendations", answer, customer_id=c)),
    ):
        with override_settings(RECSVC_RECORD_ANSWERS=True):
            for c in customers[:50]:
                call(c)  # connections and the experiments' copy
            started = time.perf_counter()
            for i in range(repeat):
                call(customers[i % len(customers)])
        out[f"{name}_us_per_call"] = round((time.perf_counter() - started) / repeat * 1e6, 1)
    return out


def _measure(servers: dict, experiment, shop, customers: list[str], requests: int, rounds: int) -> dict:
    from tests.bench.serving import _recommend_requests

    per_phase = WARMUP_PER_PHASE + requests
    needed = 2 * rounds * per_phase
    if len(customers) < needed:
        raise RuntimeError(f"only {len(customers)} customers with history, {needed} needed")
    batches = iter(_recommend_requests(shop, customers[i:i + per_phase]) for i in range(0, needed, per_phase))
    order = [s for r in range(rounds) for s in (("on", "off") if r % 2 == 0 else ("off", "on"))]
    results = {state: _load.LoadResult() for state in ("on", "off")}
    cpu = {state: 0.0 for state in ("on", "off")}
    p99s: dict[str, list[float]] = {"on": [], "off": []}
    bad_variants = {"on": 0, "off": 0}
    recorded = {"on": 0, "off": 0}
    for state in order:
        server = servers[state]
        _set_running(experiment, state == "on")
        batch = next(batches)
        _load.run_closed_loop(server.address, batch[:WARMUP_PER_PHASE], concurrency=CLIENTS)
        pids = server.worker_pids()
        before_cpu = sum(map(_load.cpu_seconds, pids))
        before_stream = _stream_length()
        got = _load.run_closed_loop(server.address, batch[WARMUP_PER_PHASE:], concurrency=CLIENTS,
                                    keep_bodies=True, max_seconds=300)
        cpu[state] += sum(map(_load.cpu_seconds, pids)) - before_cpu
        recorded[state] += _stream_length() - before_stream
        if set(got.statuses) != {200}:
            raise RuntimeError(f"{state}: expected 200, got {dict(got.statuses)}")
        variants = [json.loads(body)["variant"] for body in got.bodies]
        expected_prefix = f"{experiment.pk}:" if state == "on" else "control"
        bad_variants[state] += sum(not v.startswith(expected_prefix) for v in variants)
        results[state].latencies_ms += got.latencies_ms
        results[state].wall_s += got.wall_s
        p99s[state].append(got.percentile(99))
        _log(f"{state}: p50 {got.percentile(50):.1f} ms, p99 {got.percentile(99):.1f} ms, {got.rate:.0f} req/s")
    if bad_variants["on"] or bad_variants["off"]:
        raise RuntimeError(f"answers with the wrong variant: {bad_variants}")
    out: dict = {}
    for state, result in results.items():
        out[f"attribution_{state}_p50_ms"] = round(result.percentile(50), 2)
        out[f"attribution_{state}_p99_ms"] = round(result.percentile(99), 2)
        out[f"attribution_{state}_p99_ms_by_phase"] = [round(p, 1) for p in p99s[state]]
        out[f"attribution_{state}_median_phase_p99_ms"] = round(statistics.median(p99s[state]), 2)
        out[f"attribution_{state}_rps"] = round(result.rate, 1)
        out[f"attribution_{state}_server_cpu_ms_per_request"] = round(1000 * cpu[state] / result.count, 2)
        out[f"attribution_{state}_answers_recorded"] = recorded[state]
    out["attribution_requests_per_state"] = results["on"].count
    out["attribution_overhead_p99_ratio"] = round(out["attribution_on_p99_ms"] / out["attribution_off_p99_ms"], 3)
    out["attribution_overhead_p50_ratio"] = round(out["attribution_on_p50_ms"] / out["attribution_off_p50_ms"], 3)
    out["attribution_overhead_median_phase_p99_ratio"] = round(
        out["attribution_on_median_phase_p99_ms"] / out["attribution_off_median_phase_p99_ms"], 3)
    out["attribution_overhead_target"] = TARGET
    return out


def figures(*, items: int = 10_000, requests: int = 800, rounds: int = 6) -> dict:
    """The overhead figures (keys start with `attribution_`), from a shop this call loads and removes."""
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")  # the index build and activation, in process
    _load.bootstrap_django()
    from django.conf import settings

    from demo.synthetic import ShopSpec
    from tests.bench import serving

    if not settings.IS_POSTGRES or not settings.REDIS_URL:
        raise SystemExit("the attribution overhead needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL)")
    # Every request asks for a customer of its own (uncached) with events; about a third of the synthetic
    # customers have none at 8 events per customer (activity is Zipf-distributed), so twice as many.
    customers = max(items // 2, 2 * 2 * rounds * (WARMUP_PER_PHASE + requests))
    spec = ShopSpec(n_customers=customers, n_products=items, n_events=max(12 * items, 8 * customers), seed=22)
    serving._remove_stale_bench_tenants()
    shop = None
    out: dict = {"attribution_shop_items": items, "attribution_shop_customers": customers, "attribution_rounds": rounds,
                 "attribution_clients": CLIENTS}
    try:
        _log(f"loading and training a shop of {items:,} products")
        shop = serving.load_shop_tenant(spec)
        experiment = _experiment(shop.tenant_id)
        asked = serving._customers_with_history(shop.tenant_id, 10 ** 9, seed=22)
        base = {"RECSVC_RATE_LIMIT_PER_MINUTE": "1000000000", "DJANGO_DEBUG": "0"}
        with _load.gunicorn(env={**base, "RECSVC_RECORD_ANSWERS": "1"}) as on, \
                _load.gunicorn(env={**base, "RECSVC_RECORD_ANSWERS": "0"}) as off:
            out["attribution_server"] = on.description + ", two servers side by side (on and off)"
            out |= _measure({"on": on, "off": off}, experiment, shop, asked, requests, rounds)
        _set_running(experiment, True)
        out |= {f"attribution_{k}": v for k, v in _hot_path_calls(shop.tenant_id, asked[:500]).items()}
    finally:
        if shop is not None:
            serving._delete_tenant(shop.tenant_id)
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000, help="products in the synthetic shop")
    parser.add_argument("--requests", type=int, default=800, help="timed requests per phase")
    parser.add_argument("--rounds", type=int, default=6, help="phases of each state")
    args = parser.parse_args()
    print(json.dumps(figures(items=args.items, requests=args.requests, rounds=args.rounds)))
