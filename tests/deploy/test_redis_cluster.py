"""Redis Cluster (RECSVC_REDIS_CLUSTER): the service's Redis paths against a real three-master cluster the
test starts on loopback (redis-server --cluster-enabled yes, joined by redis-cli --cluster create), through
django-redis with core/redis_cluster.py's connection factory: admission (key cache, rate limit, usage
counters in one pipeline), cached answers and generations, events invalidating them, the answer stream. A
shop's keys share one slot (the `{T}` hash tag), different shops spread over the masters. A master lost:
requests still answer (uncached, unrecorded and counted, unlimited), as with a single Redis down, and
cache and recording come back when the node returns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from django.core.cache import cache
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from redis.cluster import RedisCluster

from core.redis_client import raw_redis
from core.redis_cluster import ClusterConnectionFactory
from recs.attribution import record
from recs.attribution.stream import stream_key
from tests.deploy.servers import own_redis_cluster
from tests.factories import ProductFactory

pytestmark = [
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
    pytest.mark.django_db,
]


@pytest.fixture(scope="module")
def cluster_ports():
    with own_redis_cluster() as ports:
        yield ports


@pytest.fixture
def on_cluster(settings, cluster_ports):
    """Django's cache, and so the raw client, on the cluster: the settings RECSVC_REDIS_CLUSTER=1 makes."""
    cache_settings = {**settings.CACHES["default"]}
    cache_settings["LOCATION"] = f"redis://127.0.0.1:{cluster_ports[0]}/0"
    cache_settings["OPTIONS"] = {**cache_settings["OPTIONS"],
                                 "CONNECTION_FACTORY": "core.redis_cluster.ClusterConnectionFactory"}
    settings.CACHES = {"default": cache_settings}
    client = raw_redis()
    assert isinstance(client, RedisCluster)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.flushall(target_nodes=RedisCluster.PRIMARIES)


def _keys(client: RedisCluster) -> list[str]:
    return [k.decode() for k in client.scan_iter(match="*", target_nodes=RedisCluster.PRIMARIES)]


def test_the_service_runs_on_the_cluster_with_a_shops_keys_in_one_slot(
    on_cluster, recommend_api, ingest_api, outsider_api, tenant, other_tenant, all_tenants
):
    ProductFactory(tenant=tenant, external_id="p-1")
    for _ in range(2):
        assert recommend_api.get("/v1/recommendations", {"customer_id": "c-1"}).status_code == 200
        assert outsider_api.get("/v1/recommendations", {"customer_id": "c-9"}).status_code == 200
    cache.set("plain-key", 1)
    assert cache.get("plain-key") == 1 and cache.get_many(["plain-key", "absent"]) == {"plain-key": 1}
    answered = ingest_api.post("/v1/events", {"customer_id": "c-1", "product_id": "p-1", "type": "click"},
                               format="json")
    assert answered.status_code in (200, 201, 202), answered.content
    assert recommend_api.get("/v1/recommendations", {"customer_id": "c-1"}).status_code == 200

    keys = _keys(on_cluster)
    for shop in (tenant, other_tenant):
        tagged = [k for k in keys if f"{{{shop.id}}}" in k]
        assert len(tagged) >= 2, keys
        assert len({on_cluster.keyslot(k) for k in tagged}) == 1, tagged
    # The keys live on more than one master (16,384 slots split three ways).
    nodes = {on_cluster.get_node_from_key(k).port for k in keys}
    assert len(nodes) >= 2, keys


def test_the_rate_limit_counts_on_the_cluster(on_cluster, recommend_api, settings):
    settings.RECSVC_RATE_LIMIT_PER_MINUTE = 3
    statuses = [recommend_api.get("/v1/recommendations", {"customer_id": "c-1"}).status_code for _ in range(5)]
    counters = [k for k in _keys(on_cluster) if k.startswith("rl:key:")]
    assert sum(int(on_cluster.get(k)) for k in counters) == 5
    assert statuses[:3] == [200, 200, 200]
    # Past the limit: 429, unless a one-minute window ended between the requests (two counters then).
    assert statuses[3:] == [429, 429] or len(counters) == 2


def _hits() -> float:
    samples = {(x.name, x.labels.get("result")): x.value
               for f in text_string_to_metric_families(Client().get("/metrics").content.decode()) for x in f.samples}
    return samples.get(("recsvc_answer_cache_lookups_total", "hit"), 0.0)


def test_a_lost_master_degrades_serving_to_uncached_unrecorded_answers_and_it_recovers(settings, recommend_api):
    # Its own cluster: losing a master breaks the module's one for the tests after it.
    with own_redis_cluster() as cluster:
        url = f"redis://127.0.0.1:{cluster[0]}/0"
        cache_settings = {**settings.CACHES["default"]}
        cache_settings["LOCATION"] = url
        cache_settings["OPTIONS"] = {**cache_settings["OPTIONS"],
                                     "CONNECTION_FACTORY": "core.redis_cluster.ClusterConnectionFactory"}
        settings.CACHES = {"default": cache_settings}
        settings.RECSVC_RECS_CACHE_SECONDS = 60
        client = raw_redis()
        stream = stream_key()

        def ask() -> None:
            assert recommend_api.get("/v1/recommendations", {"customer_id": "c-1"}).status_code == 200

        ask(), ask()
        recorded, hits = client.xlen(stream), _hits()
        assert recorded >= 2 and hits >= 1

        # The master holding the served-answers stream is lost: once the others notice (node timeout 2 s)
        # the cluster refuses every command (CLUSTERDOWN), on every node.
        lost = client.get_node_from_key(stream).port
        cluster.stop(lost)
        survivors = [port for port in cluster if port != lost]
        deadline = time.monotonic() + 30
        while any(cluster.state(port) != "fail" for port in survivors):
            assert time.monotonic() < deadline, "the cluster never noticed the lost master"
            time.sleep(0.2)
        unrecorded = record.unrecorded()
        for _ in range(3):
            ask()  # answered, uncached and unrecorded
        assert record.unrecorded() == unrecorded + 3
        assert _hits() == hits

        # The node comes back with its slots: answers are cached and recorded again, without a restart.
        cluster.start(lost)
        deadline = time.monotonic() + 30
        while any(cluster.state(port) != "ok" for port in cluster):
            assert time.monotonic() < deadline, "the cluster never recovered"
            time.sleep(0.2)
        deadline = time.monotonic() + 30  # recording retries after its 5 s back-off
        while client.xlen(stream) <= recorded:
            assert time.monotonic() < deadline, "answers are never recorded again"
            ask()
            time.sleep(0.5)
        hits = _hits()
        ask(), ask()
        assert _hits() > hits, "answers are cached again"
        ClusterConnectionFactory.forget(url)


def _settings_with(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); from django.conf import settings; " \
           "print(settings.CACHES['default']['OPTIONS'].get('CONNECTION_FACTORY'), settings.CELERY_BROKER_URL)"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)


def test_the_setting_selects_the_cluster_client_and_wants_a_broker_of_its_own():
    env = {"RECSVC_REDIS_CLUSTER": "1", "REDIS_URL": "redis://127.0.0.1:7000/0"}
    refused = _settings_with({**env, "CELERY_BROKER_URL": ""})
    assert refused.returncode != 0 and "CELERY_BROKER_URL" in refused.stderr
    chosen = _settings_with({**env, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/1"})
    assert chosen.stdout.split() == ["core.redis_cluster.ClusterConnectionFactory", "redis://127.0.0.1:6379/1"]
