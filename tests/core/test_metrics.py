"""/metrics: Prometheus's text format with request latency by route, answers by reason, queue lengths, model
versions and training durations; closed to requests through the proxy and, with a token, to anyone without
it; under gunicorn's several processes (PROMETHEUS_MULTIPROC_DIR) the counts of every worker."""

from __future__ import annotations

import http.client
import socket
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.bench import _load
from tests.celery_worker import url_of_test_database
from training.registry.models import ModelVersion


def _samples(body: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_metrics_count_requests_by_route_and_answers_by_reason(recommend_api, tenant, all_tenants):
    before = _samples(Client().get("/metrics").content)
    for _ in range(3):
        answer = recommend_api.get("/v1/recommendations", {"customer_id": "c-1"})
        assert answer.status_code == 200
    reason = answer.json()["reason"]
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    after = _samples(response.content)
    labels = {"endpoint": "v1/recommendations", "method": "GET", "status": "2xx"}
    assert _value(after, "recsvc_http_request_duration_seconds_count", **labels) - _value(
        before, "recsvc_http_request_duration_seconds_count", **labels) == 3
    assert _value(after, "recsvc_answers_total", endpoint="v1/recommendations", reason=reason) - _value(
        before, "recsvc_answers_total", endpoint="v1/recommendations", reason=reason) == 3
    # Paths carry ids: the label is the route, so /v1/products/<id> is one series whatever the id.
    assert not any("c-1" in str(key) for key in after)


@pytest.mark.django_db
def test_metrics_count_answer_cache_hits_and_misses(recommend_api, tenant, all_tenants, settings):
    settings.RECSVC_RECS_CACHE_SECONDS = 60
    name = "recsvc_answer_cache_lookups_total"
    before = _samples(Client().get("/metrics").content)
    for _ in range(3):  # computed and stored once, then served from the cache twice
        assert recommend_api.get("/v1/recommendations", {"customer_id": "c-cached"}).status_code == 200
    # An explained answer is never cached: no lookup to count.
    assert recommend_api.get("/v1/recommendations", {"customer_id": "c-cached", "explain": "true"}).status_code == 200
    after = _samples(Client().get("/metrics").content)
    assert _value(after, name, result="miss") - _value(before, name, result="miss") == 1
    assert _value(after, name, result="hit") - _value(before, name, result="hit") == 2


@pytest.mark.django_db
def test_metrics_read_queue_lengths_model_versions_and_training_durations(tenant, all_tenants):
    now = timezone.now()
    ModelVersion.objects.create(tenant=tenant, status=ModelVersion.Status.ACTIVE,
                                started_at=now - timedelta(seconds=400), finished_at=now)
    ModelVersion.objects.create(tenant=tenant, status=ModelVersion.Status.FAILED,
                                started_at=now - timedelta(seconds=30), finished_at=now)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    waiting = broker.llen("ingest")
    broker.rpush("ingest", b"not-a-task: counted only")
    try:
        samples = _samples(Client().get("/metrics").content)
    finally:
        broker.lrem("ingest", 1, b"not-a-task: counted only")
    assert _value(samples, "recsvc_queue_length", queue="ingest") == waiting + 1
    assert {"default", "ingest", "webhooks", "training", "serving"} <= {
        dict(labels)["queue"] for name, labels in samples if name == "recsvc_queue_length"}
    assert _value(samples, "recsvc_model_versions", status="active") == 1
    assert _value(samples, "recsvc_model_versions", status="failed") == 1
    assert _value(samples, "recsvc_training_duration_seconds_count", outcome="succeeded") == 1
    assert _value(samples, "recsvc_training_duration_seconds_sum", outcome="succeeded") == pytest.approx(400)
    assert _value(samples, "recsvc_training_duration_seconds_bucket", outcome="succeeded", le="300.0") == 0
    assert _value(samples, "recsvc_training_duration_seconds_bucket", outcome="succeeded", le="900.0") == 1
    assert _value(samples, "recsvc_training_duration_seconds_bucket", outcome="failed", le="60.0") == 1


@pytest.mark.django_db
def test_metrics_are_not_served_through_the_proxy_nor_without_the_token(settings):
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 404
    settings.RECSVC_METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


def test_metrics_sum_every_gunicorn_worker_in_multiprocess_mode(django_db_setup, django_db_blocker, tmp_path):
    from django.db import connection

    with django_db_blocker.unblock():
        database = connection.settings_dict["NAME"]
    env = {"DATABASE_URL": url_of_test_database(database), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with _load.gunicorn(workers=2, env=env) as web:
        # A request cut short ties up the worker that took it (a sync worker reads until the blank line),
        # so the next ones go to the other worker; then the first is finished.
        stalled = socket.create_connection(("127.0.0.1", web.port))
        stalled.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        time.sleep(0.5)
        for _ in range(20):
            assert _get(web.port, "/healthz")[0] == 200
        stalled.sendall(b"Connection: close\r\n\r\n")
        assert stalled.recv(100).startswith(b"HTTP/1.1 200")
        stalled.close()
        status, body = _get(web.port, "/metrics")
    assert status == 200
    samples = _samples(body)
    count = _value(samples, "recsvc_http_request_duration_seconds_count", endpoint="healthz", method="GET",
                   status="2xx")
    assert count >= 21  # the start-up probes of _load.gunicorn add a few
    # Both workers wrote their counts (one file each), and the view summed them.
    assert len(list(tmp_path.glob("histogram_*.db"))) == 2


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "localhost"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
