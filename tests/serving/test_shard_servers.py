"""ANN shard servers in their own processes on loopback (serving/shard_server.py), searched by the scatter-gather
client (serving/shard_client.py): exact slices answer as one exact index, a request not signed with the shared
secret is refused, a dead or silent shard leaves a partial answer that names it, and a recommendation request
is served through the shard servers (and reads its item embeddings through row shards above the budget)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import faiss
import numpy as np
import pytest

from recs.models import Customer, Event
from serving import index as item_index
from serving import registry_cache
from serving import shard_protocol as wire
from serving.funnel import Reason, recommend, similar_items
from serving.shard_client import ShardClient
from serving.shards import ITEM_ROWS_DIR, write_index_slices
from tests.celery_worker import REPO
from tests.serving.trained import forget_served_state, load_shop, train_active_version
from training.registry import storage

SECRET = "a-test-secret-of-at-least-32-characters"


class Servers:
    """Shard server processes serving slice i of n of the versions under `root`."""

    def __init__(self, root, shards: int) -> None:
        env = {**os.environ, "RECSVC_ANN_SHARD_SECRET": SECRET}
        self.processes, self.addresses = [], []
        for i in range(shards):
            process = subprocess.Popen(
                [sys.executable, "-m", "serving.shard_server", "--root", str(root), "--shard", str(i), "--of",
                 str(shards), "--port", "0"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
            self.processes.append(process)
            line = process.stdout.readline()  # "listening <port>" once bound
            assert line.startswith("listening"), line
            self.addresses.append(f"127.0.0.1:{int(line.split()[1])}")

    def kill(self, i: int) -> None:
        self.processes[i].kill()
        self.processes[i].wait(10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)


@pytest.fixture
def servers(tmp_path):
    started: list[Servers] = []

    def start(shards: int, root=tmp_path) -> Servers:
        started.append(Servers(root, shards))
        return started[-1]

    yield start
    for group in started:
        group.stop()


def _unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact_slices(items: np.ndarray, folder, shards: int) -> None:
    write_index_slices(items, folder, shards, lambda part: item_index.build_index(part, exact_max_items=len(part)))


def test_scatter_gather_over_exact_slices_equals_one_exact_index(tmp_path, servers):
    items, queries = _unit(2_000, 16, 0), _unit(20, 16, 1)
    _exact_slices(items, tmp_path / "shop" / "v1", 3)
    group = servers(3)
    client = ShardClient(group.addresses, SECRET.encode(), timeout_s=5)
    exact = faiss.IndexFlatIP(16)
    exact.add(items)

    for k in (10, 800):  # 800: deeper than one slice (667 items), so slices pad and the merge spans all three
        hits = client.search("shop/v1", queries, k)
        scores, ids = exact.search(queries, k)
        assert hits.missing == [] and hits.shards == 3
        assert np.array_equal(hits.ids, ids)
        assert np.allclose(hits.scores, scores, atol=1e-5)
    client.close()


def test_a_request_not_signed_with_the_secret_is_refused(tmp_path, servers):
    _exact_slices(_unit(100, 8, 0), tmp_path / "v", 1)
    group = servers(1)

    wrong = ShardClient(group.addresses, b"another-secret-of-at-least-32-chars", timeout_s=5)
    hits = wrong.search("v", _unit(1, 8, 1), 5)
    assert hits.ids.shape == (1, 0) and "not signed with our secret" in hits.missing[0]["error"]

    host, port = group.addresses[0].rsplit(":", 1)
    request = {"op": "search", "index": "v", "n": 1, "d": 8, "k": 5, "ts": time.time(), "nonce": "x"}
    payload = _unit(1, 8, 1).tobytes()
    signed = wire.encode(SECRET.encode(), request, payload)
    for frame in (signed[:-1] + bytes([signed[-1] ^ 1]),  # one bit of the MAC changed
                  wire.encode(b"", request, payload),  # signed with no secret
                  wire.encode(SECRET.encode(), {**request, "ts": time.time() - 3600}, payload)):  # replayed late
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(frame)
            answer, body = wire.read_frame(sock, SECRET.encode())
            assert answer["ok"] is False and answer["error"] in ("unauthenticated", "stale or future request "
                                                                 "(clocks differ?)") and len(body) == 0
            assert sock.recv(1) == b""  # and the connection is closed
    with socket.create_connection((host, int(port)), timeout=5) as sock:  # the signed one is answered
        sock.sendall(signed)
        answer, body = wire.read_frame(sock, SECRET.encode())
        assert answer["ok"] is True and len(body) == 5 * (4 + 8)


def test_a_dead_or_silent_shard_leaves_a_partial_answer_that_names_it(tmp_path, servers):
    items, queries = _unit(900, 16, 0), _unit(5, 16, 1)
    _exact_slices(items, tmp_path / "v", 2)
    group = servers(2)
    group.kill(1)
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    silent_address = f"127.0.0.1:{silent.getsockname()[1]}"

    client = ShardClient([*group.addresses, silent_address], SECRET.encode(), timeout_s=0.3)
    started = time.monotonic()
    hits = client.search("v", queries, 10)
    took = time.monotonic() - started

    assert [m["shard"] for m in hits.missing] == [*group.addresses[1:], silent_address] and hits.degraded
    # What the live shard holds (the first 450 items), exactly: the answer is partial, not wrong.
    live = faiss.IndexFlatIP(16)
    live.add(items[:450])
    assert np.array_equal(hits.ids, live.search(queries, 10)[1])
    assert took < 2  # the silent shard costs the timeout, not more
    assert [m["shard"] for m in client.ping()] == [m["shard"] for m in hits.missing]
    silent.close()
    client.close()


@pytest.fixture
def sharded_shop(tenant, settings, tmp_path, servers):
    """A tiny shop whose version is searched through two shard servers and whose item table is above the
    serving budget (300 x 16 float32 = 19 KB against 8 KB)."""
    settings.RECSVC_ARTIFACT_DIR = tmp_path
    group = servers(2, root=tmp_path)
    settings.RECSVC_ANN_SHARD_SERVERS = group.addresses
    settings.RECSVC_ANN_SHARD_SECRET = SECRET
    settings.RECSVC_ANN_SHARD_MIN_ITEMS = 0
    settings.RECSVC_SERVING_TABLE_BUDGET_BYTES = 8 * 1024
    load_shop(tenant)
    version = train_active_version(tenant)
    yield tenant, version, group
    forget_served_state()


@pytest.mark.django_db
def test_a_recommendation_is_served_through_the_shard_servers(sharded_shop, settings, recommend_api):
    tenant, version, group = sharded_shop
    customer_pk = Event.objects.for_tenant(tenant).values_list("customer_id", flat=True).order_by("customer_id")[0]
    external_id = Customer.objects.for_tenant(tenant).get(pk=customer_pk).external_id

    response = recommend_api.get("/v1/recommendations", {"customer_id": external_id, "k": 10, "explain": "true"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["reason"], body["model_version"], len(body["items"])) == ("personalized", version.pk, 10)
    assert body["explain"]["retrieval"]["shards"] == {"asked": 2, "missing": []}
    model = registry_cache.served_model(tenant.pk)
    assert model.index is None and model.shards is not None and model.item_table is not None
    assert (storage.local_path(version.artifact_uri) / ITEM_ROWS_DIR / "shards.json").is_file()

    sharded = recommend(tenant.pk, customer_pk, k=10)
    product = sharded.items[0].product_pk
    similar = similar_items(tenant.pk, product, k=8)
    assert (sharded.reason, sharded.model_version) == (Reason.PERSONALIZED, version.pk) and len(sharded.items) == 10
    assert sharded.explain["retrieval"]["shards"] == {"asked": 2, "missing": []}
    assert similar.explain["retrieval"]["shards"] == {"asked": 2, "missing": []}

    # The same version searched in process, with its table in memory: the same answers (exact slices).
    settings.RECSVC_ANN_SHARD_SERVERS = []
    settings.RECSVC_SERVING_TABLE_BUDGET_BYTES = 0
    forget_served_state()
    local = registry_cache.served_model(tenant.pk)
    assert local.index is not None and local.item_table is None
    assert [i.product_pk for i in recommend(tenant.pk, customer_pk, k=10).items] == [
        i.product_pk for i in sharded.items]
    assert [i.product_pk for i in similar_items(tenant.pk, product, k=8).items] == [i.product_pk for i in similar.items]

    # A shard down: the answer comes from the other one's items and says which shard was missing.
    settings.RECSVC_ANN_SHARD_SERVERS = group.addresses
    forget_served_state()
    group.kill(0)
    partial = recommend(tenant.pk, customer_pk, k=10)
    assert partial.reason == Reason.PERSONALIZED and len(partial.items) == 10
    assert [m["shard"] for m in partial.explain["retrieval"]["shards"]["missing"]] == group.addresses[:1]
    model_items = np.array([i.product_pk for i in partial.items if i.source == "model"])
    assert len(model_items) and (registry_cache.served_model(tenant.pk).item_indices(model_items) >= 150).all()
