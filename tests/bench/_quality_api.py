"""`quality.py --through-api`: MovieLens as a shop would send it, trained and answered by the production stack.

The split is the protocol's (docs/training.md, `training.data.temporal_split`): per customer the last 20% of
ratings by time are held back. Only the rest is sent, over HTTP: the catalog through `/v1/products/bulk`,
every kept rating as a `rating` event through `/v1/events/bulk` (10,000 a request), into a fresh tenant of a
scratch database (created and migrated as the owner role, served as the runtime role, dropped at the end)
on PostgreSQL and Redis. gunicorn as deployed serves it; a real Celery worker (all queues, `-P solo`) runs
the training that `POST /v1/training/runs` queues and the index build that activates it. Then
`GET /v1/recommendations?customer_id=...&k=100` per evaluated customer, scored as received: a returned id
is mapped back to its item and nothing is removed from the list (a product the customer already rated
stays in it, counted as a miss and in `consumed_in_top10`).

Timestamps: MovieLens ratings end in 2016. They are shifted, all by one offset, so that the last sent
rating is a minute before now: the shop is served as a live shop. Serving computes features as of now
(trailing 1/7/30-day item counts, days since an item's last event), the ranker learned them as of each
example's time, so an unshifted shop would be a shop that went quiet years ago, every recent window empty.
Shifting is one offset and changes nothing else; making the features "as of the shop's newest event"
instead would be wrong for a real shop that did go quiet (its items really are stale).

The served version's own artifacts are then run by training's inference over the shop's data as a run loads
it (`offline_answers`): asked at the moment the API was asked, its top 100 must be the served answers
(`served_offline_overlap100`, 1.0 when serving is the evaluated pipeline); asked just after each customer's
own last event, the protocol's query time, it shows what the moment costs a back-filled shop.

Tuned ALS and most-popular are fitted offline on the same train arrays and scored with the same function
(`training.evaluation`), with the customer's train items excluded: for a shop whose events are all ratings
that is exactly what the funnel's consumed filter removes. The cold-start figures are offline too (the
training functions on the same arrays, see `cold_start`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np

from tests.bench import _load

SHIFT_MARGIN_S = 60
EVENTS_PER_REQUEST = 10_000
TRAIN_TIMEOUT_S = 1200
COLD_FRACTION = 0.10
QUEUES = "default,ingest,webhooks,training,serving"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the environment: keys, a scratch database, the worker ------------------------------------------------


def prepare_environment(database: str | None, scratch: Path) -> tuple[str, str]:
    """Set the variables every process of the run (this one, gunicorn, the worker) reads; returns the
    (owner URL, runtime URL) of the scratch database, which `scratch_database` creates."""
    base = urlsplit(os.environ.get("DATABASE_URL", _load.LOCAL_DATABASE_URL))
    name = database or f"recsvc_quality_{uuid.uuid4().hex[:10]}"
    host = base.hostname or "127.0.0.1"
    port = base.port or 5432
    owner = f"postgres://recsvc_owner@{host}:{port}/{name}"
    runtime = f"postgres://{base.username or 'recsvc'}@{host}:{port}/{name}"
    # Throw-away keys made for this run (as `make test` does): the service refuses to start without its own.
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(48))
    if "RECSVC_FIELD_ENCRYPTION_KEY" not in os.environ:
        from cryptography.fernet import Fernet

        os.environ["RECSVC_FIELD_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    os.environ.setdefault("REDIS_URL", _load.LOCAL_REDIS_URL)
    os.environ["DATABASE_URL"] = runtime
    os.environ["RECSVC_HTTPS_ONLY"] = "0"  # plain HTTP on loopback, no proxy in front
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    for name_ in ("RECSVC_ARTIFACT_DIR", "RECSVC_ARTIFACT_CACHE_DIR", "RECSVC_IMPORT_DIR"):
        os.environ[name_] = str(scratch / name_.removeprefix("RECSVC_").lower())
    return owner, runtime


@contextlib.contextmanager
def scratch_database(owner_url: str) -> Iterator[None]:
    """A database owned by recsvc_owner, migrated by it (docs/deployment.md), dropped afterwards."""
    import psycopg

    parts = urlsplit(owner_url)
    name = parts.path.lstrip("/")
    admin = dict(host=parts.hostname, port=parts.port, user=parts.username, dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=_load.REPO,
            env={**os.environ, "DATABASE_URL": owner_url}, capture_output=True, text=True, timeout=600,
        )
        if done.returncode:
            raise RuntimeError(f"migrating {name} failed:\n{done.stderr[-3000:]}")
        log(f"scratch database {name} migrated in {time.perf_counter() - started:.0f} s")
        yield
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(**admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def celery_worker(log_path: Path) -> Iterator[subprocess.Popen]:
    """One worker on every queue, one task at a time (as tests/celery_worker.py starts it)."""
    from config.celery import app

    nodename = f"recsvc-quality-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUES, "-P", "solo", "--concurrency",
             "1", "-n", nodename, "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel",
             "INFO"],
            cwd=_load.REPO, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not any(nodename in reply for reply in app.control.ping(destination=[nodename], timeout=1.0)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start; see {log_path}")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the client ------------------------------------------------------------------------------------------


class Api:
    """JSON over one kept-alive connection, authenticated with the shop's key."""

    def __init__(self, address: tuple[str, int], key: str) -> None:
        self.conn = _load.HttpConnection(address, timeout=300)
        self.auth = {"Authorization": f"Bearer {key}"}

    def call(self, method: str, path: str, body: object = None, expect: tuple[int, ...] = (200,)) -> dict:
        payload = b"" if body is None else json.dumps(body).encode()
        headers = {**self.auth, **({"Content-Type": "application/json"} if body is not None else {})}
        status, raw = self.conn.send(_load.build_request(method, path, body=payload, headers=headers))
        if status not in expect:
            raise RuntimeError(f"{method} {path}: {status} {raw[:600]!r}")
        return json.loads(raw) if raw else {}


# --- the run ---------------------------------------------------------------------------------------------


@dataclass
class Shop:
    tenant_id: int
    key: str


def new_shop() -> Shop:
    """A fresh tenant on a paid plan (the free plan's monthly event quota is below MovieLens) with an admin
    key; the dashboard's sign-up makes the same two rows."""
    from tenants.api_keys import create_api_key
    from tenants.models import Tenant

    tenant = Tenant.objects.create(name="Quality bench: MovieLens", slug=f"bench-quality-{uuid.uuid4().hex[:8]}",
                                   plan=Tenant.Plan.SCALE)
    _, key = create_api_key(tenant, name="quality bench", scopes=["admin"])
    return Shop(tenant.pk, key)


def send_catalog(api: Api, frame) -> float:
    from demo.load import movielens_catalog

    products, _ = movielens_catalog(frame)
    started = time.perf_counter()
    for lo in range(0, len(products), EVENTS_PER_REQUEST):
        batch = [{"id": p["external_id"], **{k: v for k, v in p.items() if k != "external_id"}}
                 for p in products[lo : lo + EVENTS_PER_REQUEST]]
        answer = api.call("POST", "/v1/products/bulk", {"items": batch})
        if answer.get("rejected"):
            raise RuntimeError(f"products rejected: {answer['errors'][:3]}")
    return time.perf_counter() - started


def send_ratings(api: Api, ml, train, shift_s: int) -> float:
    """Every train rating as a `rating` event, timestamps shifted by `shift_s`."""
    started = time.perf_counter()
    order = np.argsort(train.ts, kind="stable")
    for lo in range(0, len(order), EVENTS_PER_REQUEST):
        rows = order[lo : lo + EVENTS_PER_REQUEST]
        events = []
        for c, i, ts, w in zip(train.customer[rows].tolist(), train.item[rows].tolist(), train.ts[rows].tolist(),
                               train.weight[rows].tolist(), strict=True):
            user, movie = int(ml.user_ids[c]), int(ml.movie_ids[i])
            when = dt.datetime.fromtimestamp(ts + shift_s, dt.UTC).isoformat()
            events.append({"type": "rating", "customer_id": f"user-{user}", "product_id": f"movie-{movie}",
                           "timestamp": when, "value": w, "event_id": f"ml-{user}-{movie}-{ts}"})
        answer = api.call("POST", "/v1/events/bulk", {"events": events})
        if answer.get("rejected") or answer.get("stored") != len(events):
            raise RuntimeError(f"events not all stored: {answer}")
    return time.perf_counter() - started


def train_through_api(api: Api, seed: int = 0) -> tuple[dict, float]:
    """POST /v1/training/runs (the default hyper-parameters, `seed` for its random draws), then follow the run
    until its version is active."""
    started = time.perf_counter()
    body = {"hyperparameters": {"seed": seed}} if seed else {}
    run = api.call("POST", "/v1/training/runs", body, expect=(202,))
    last = ""
    while True:
        run = api.call("GET", f"/v1/training/runs/{run['id']}")
        progress = run.get("progress") or {}
        line = f"run {run['id']}: {run['status']} {progress.get('phase', '')} {progress.get('percent', 0):.0f}%"
        if line != last:
            log(line)
            last = line
        if run["status"] == "active":
            return run, time.perf_counter() - started
        if run["status"] == "failed" or (run["status"] == "ready" and "queued" not in run["status_reason"]):
            raise RuntimeError(f"run {run['id']} ended {run['status']}: {run['status_reason']}")
        if time.perf_counter() - started > TRAIN_TIMEOUT_S:
            raise TimeoutError(f"run {run['id']} not active after {TRAIN_TIMEOUT_S} s")
        time.sleep(2)


def ask(api: Api, ml, customers: np.ndarray, k: int = 100) -> tuple[np.ndarray, list[float]]:
    """GET /v1/recommendations per customer; rows of item indices as received, -1 past the answer's end."""
    index = {f"movie-{m}": i for i, m in enumerate(ml.movie_ids.tolist())}
    topk = np.full((len(customers), k), -1, dtype=np.int64)
    latencies = []
    for row, c in enumerate(customers.tolist()):
        started = time.perf_counter()
        answer = api.call("GET", f"/v1/recommendations?customer_id={quote(f'user-{int(ml.user_ids[c])}')}&k={k}")
        latencies.append((time.perf_counter() - started) * 1000)
        ids = [index.get(item["id"], -1) for item in answer["items"]]
        topk[row, : len(ids)] = ids
    return topk, latencies


def served_figures(topk: np.ndarray, customers: np.ndarray, train, test) -> dict[str, float]:
    from training.evaluation import SeenIndex, ranking_metrics, relevant_sets

    _, rel = relevant_sets(train, test)
    metrics = ranking_metrics(topk, customers, rel, train.n_items)
    top10 = topk[:, :10]
    consumed = SeenIndex(train).contains(customers[:, None], np.maximum(top10, 0)) & (top10 >= 0)
    return {**metrics, "consumed_in_top10": float(consumed.sum(1).mean()),
            "short_answers": int((topk[:, -1] < 0).sum())}


def run(args) -> dict:
    """The whole --through-api run; returns the figures (printed by quality.py)."""
    import torch

    from demo.movielens import load_movielens
    from training.baselines import fit_als, popularity_scorer, tune_als
    from training.cli_eval import ALS_VALIDATED_PARAMS
    from training.data import temporal_split
    from training.evaluation import evaluate_scores, relevant_sets
    from training.movielens import movielens_arrays

    torch.set_num_threads(1)
    frame = load_movielens()
    ml = movielens_arrays(frame)
    train, test = temporal_split(ml.interactions)
    customers, _ = relevant_sets(train, test)
    shift_s = int(time.time()) - SHIFT_MARGIN_S - int(train.ts.max())
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="recsvc-quality-") as tmp:
        owner, _ = prepare_environment(args.database, Path(tmp))
        with scratch_database(owner):
            _load.bootstrap_django(migrate=False)
            from tenants.context import tenant_context

            shop = new_shop()
            with celery_worker(Path(tmp) / "worker.log"), _load.gunicorn() as server:
                api = Api(server.address, shop.key)
                figures["catalog_s"] = send_catalog(api, frame)
                figures["events_s"] = send_ratings(api, ml, train, shift_s)
                log(f"sent {ml.interactions.n_items} products in {figures['catalog_s']:.0f} s and {len(train)} "
                    f"ratings in {figures['events_s']:.0f} s; training through the API")
                run_, figures["train_s"] = train_through_api(api, args.seed)
                log(f"version {run_['id']} active after {figures['train_s']:.0f} s; asking for {len(customers)} "
                    "customers' recommendations")
                topk, latencies = ask(api, ml, customers)
                asked_at = int(time.time())
            with tenant_context(shop.tenant_id):
                from training.registry.models import ModelVersion

                version = ModelVersion.objects.for_tenant(shop.tenant_id).get(pk=run_["id"])
                figures["run_metrics"] = version.metrics
                log("scoring the served version's artifacts offline")
                offline = offline_answers(shop.tenant_id, version, ml, customers, asked_at)
    served = served_figures(topk, customers, train, test)
    figures["offline_now"] = served_figures(offline["now"], customers, train, test)
    figures["offline_own_time"] = served_figures(offline["own_time"], customers, train, test)
    figures["served_offline_overlap100"] = float(np.mean(
        [len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(topk, offline["now"], strict=True)]))
    figures["served"] = served
    figures["latency_ms_p50"] = float(np.median(latencies))
    figures["shift_days"] = shift_s / 86400
    log("fitting the offline baselines on the same split")
    started = time.perf_counter()
    als = fit_als(train, **ALS_VALIDATED_PARAMS) if args.quick else tune_als(train)
    figures["als_params"], figures["als_fit_s"] = als.params, time.perf_counter() - started
    figures["als"] = evaluate_scores(als.scorer(), train, test)
    figures["popular"] = evaluate_scores(popularity_scorer(train), train, test)
    log("cold start (offline)")
    figures["cold"] = cold_start(ml, train, test, seed=args.seed)
    return figures


def offline_answers(tenant_id: int, version, ml, customers: np.ndarray, asked_at: int) -> dict[str, np.ndarray]:
    """The served version's artifacts run by training's own inference (`training.inference`) over the shop's
    data as a training run loads it: each customer's top 100 (MovieLens item indices) asked at `asked_at`, the
    moment the API was asked (what serving must reproduce), and at the protocol's query time, just after the
    customer's own last event. For a back-filled shop the two differ by the features that depend on the
    moment (item activity in trailing windows, recency): MovieLens customers rated their held-out films
    right after their train ones, years before now."""
    from recs.models import Customer, Product
    from training.datasets import load_tenant_dataset
    from training.features import FeatureContext
    from training.inference import TrainedPipeline, recommend
    from training.registry.storage import local_path

    pipeline = TrainedPipeline.load(local_path(version.artifact_uri))
    data = load_tenant_dataset(tenant_id)
    customer_ids = dict(Customer.objects.for_tenant(tenant_id).values_list("pk", "external_id"))
    product_ids = dict(Product.objects.for_tenant(tenant_id).values_list("pk", "external_id"))
    user_row = {f"user-{u}": i for i, u in enumerate(ml.user_ids.tolist())}
    movie_row = {f"movie-{m}": i for i, m in enumerate(ml.movie_ids.tolist())}
    data_row = {user_row[customer_ids[int(pk)]]: i for i, pk in enumerate(data.customer_pks.tolist())}
    ml_item = np.array([movie_row[product_ids[int(pk)]] for pk in data.product_pks.tolist()])
    rows = np.array([data_row[int(c)] for c in customers])
    retrieval = pipeline.retrieval
    context = FeatureContext(data.interactions, data.items, retrieval.item_embeddings, retrieval.history_len,
                             data.item_versions)
    answers = {}
    for name, at in (("now", asked_at), ("own_time", None)):
        top, _ = recommend(pipeline, data.interactions, data.items, rows, k=100, context=context,
                           item_versions=data.item_versions, at=at)
        answers[name] = ml_item[top]
    return answers


def cold_start(ml, train, test, *, seed: int = 0, fraction: float = COLD_FRACTION) -> dict:
    """Hold `fraction` of the catalog out of every training event (their catalog rows stay), train the
    two-tower on the rest, and score Recall@100 of those products among the customers' held-out
    interactions with them, over the whole catalog (train items excluded): their embeddings from the item
    tower's content features, from random unit vectors, and the catalog ranked by popularity (ties, such as
    every cold product's zero, broken at random)."""
    import torch

    from training.data import HistoryIndex
    from training.evaluation import SeenIndex, cold_item_relevant_sets, ranking_metrics, topk_from_scores
    from training.pipeline import DEFAULT_RETRIEVAL
    from training.trainers.two_tower import train_two_tower

    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(train.n_items, round(fraction * train.n_items), replace=False))
    is_cold = np.zeros(train.n_items, dtype=bool)
    is_cold[cold] = True
    warm_train = train.take(np.flatnonzero(~is_cold[train.item]))
    customers, rel = cold_item_relevant_sets(train, test, cold)
    seen = SeenIndex(train)
    started = time.perf_counter()
    model = train_two_tower(warm_train, ml.items, **DEFAULT_RETRIEVAL, seed=seed)
    train_s = time.perf_counter() - started
    queries = torch.from_numpy(model.embed_known_customers(HistoryIndex(warm_train), customers))

    def recall(item_matrix: np.ndarray) -> float:
        matrix = torch.from_numpy(np.ascontiguousarray(item_matrix, dtype=np.float32))
        lookup = {int(c): r for r, c in enumerate(customers)}
        rows = lambda part: torch.from_numpy(np.array([lookup[int(c)] for c in part]))  # noqa: E731
        topk, _ = topk_from_scores(lambda part: queries[rows(part)] @ matrix.T, customers, 100, exclude=seen)
        return ranking_metrics(topk, customers, rel, train.n_items)["recall@100"]

    content = model.item_embeddings
    random = content.copy()
    noise = rng.standard_normal((len(cold), content.shape[1])).astype(np.float32)
    random[cold] = noise / np.linalg.norm(noise, axis=1, keepdims=True)
    counts = warm_train.item_counts().astype(np.float32) + rng.random(train.n_items, dtype=np.float32) * 0.5
    popular = torch.from_numpy(counts)
    pop_topk, _ = topk_from_scores(lambda part: popular.expand(len(part), -1), customers, 100, exclude=seen)
    return {
        "recall100": recall(content),
        "random_recall100": recall(random),
        "popular_recall100": ranking_metrics(pop_topk, customers, rel, train.n_items)["recall@100"],
        "cold_items": len(cold),
        "customers": len(customers),
        "held_out_interactions": int((rel.start[customers + 1] - rel.start[customers]).sum()),
        "warm_train_events": len(warm_train),
        "train_s": train_s,
    }
