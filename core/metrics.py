"""Prometheus metrics (prometheus-client): what each process counts, what is read at scrape time, and the
`/metrics` view.

Counted in the process that serves (request latency by endpoint, answers by reason, answer-cache lookups).
Under gunicorn's several processes each keeps its own counts: with `PROMETHEUS_MULTIPROC_DIR` set (an empty
folder, the same for every worker of the host, emptied at each start) prometheus-client writes them to files
there and the view sums every process's. Read at scrape time from the shared stores (queue lengths from the
broker; training durations and model versions from the database, config/metrics.py): the same figures on
every replica, so aggregate them with max(), not sum().

`/metrics` is for the cluster's Prometheus, not for the public: with `RECSVC_METRICS_TOKEN` set it needs
`Authorization: Bearer <token>`; without, it answers only requests that reached gunicorn directly (no
`X-Forwarded-For`: the proxy of deploy/nginx always adds one), and 404 to the rest.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

REQUEST_LATENCY = Histogram(
    "recsvc_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by route (the URL pattern), method and status class.",
    ["endpoint", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ANSWERS = Counter(
    "recsvc_answers_total",
    "Recommendation answers served (2xx), by route and the answer's reason (model, popular fallback...).",
    ["endpoint", "reason"],
)
ANSWER_CACHE_LOOKUPS = Counter(
    "recsvc_answer_cache_lookups_total", "Answer-cache lookups, by result (hit or miss).", ["result"]
)


def count_answer_lookup(hit: bool) -> None:
    """One answer-cache lookup: the hit rate is hits over all lookups."""
    ANSWER_CACHE_LOOKUPS.labels("hit" if hit else "miss").inc()


def _endpoint(request: HttpRequest) -> str:
    # The URL pattern, never the path: paths carry ids, and each label value is a time series.
    # Regex routes (DRF's routers, re_path) carry anchors, also inside an include(): drop them.
    match = getattr(request, "resolver_match", None)
    return match.route.replace("^", "").replace("$", "") if match is not None and match.route else "unmatched"


class MetricsMiddleware:
    """Times every request and counts the answers of the recommendation endpoints. First in MIDDLEWARE,
    so redirects and refusals by the other middleware are timed too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        endpoint = _endpoint(request)
        REQUEST_LATENCY.labels(endpoint, request.method, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        data = getattr(response, "data", None)  # DRF's Response keeps what it rendered
        if 200 <= response.status_code < 300 and isinstance(data, dict) and isinstance(data.get("reason"), str):
            ANSWERS.labels(endpoint, data["reason"]).inc()
        return response


class QueueLengths:
    """Messages waiting in each Celery queue (the broker's Redis lists), read at scrape time."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        import redis

        family = GaugeMetricFamily("recsvc_queue_length", "Messages waiting in a Celery queue.", labels=["queue"])
        broker = settings.CELERY_BROKER_URL
        if broker.startswith(("redis://", "rediss://")):
            queues = sorted({settings.CELERY_TASK_DEFAULT_QUEUE}
                            | {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()})
            client = redis.Redis.from_url(broker, socket_timeout=1.0, socket_connect_timeout=1.0)
            try:
                with client.pipeline(transaction=False) as pipe:
                    for queue in queues:
                        pipe.llen(queue)
                    lengths = pipe.execute()
            except redis.RedisError:
                lengths = []  # a scrape never fails for the broker: the series are absent instead
            finally:
                client.close()
            for queue, length in zip(queues, lengths, strict=False):  # no lengths when Redis failed
                family.add_metric([queue], float(length))
        yield family


def _scrape_collectors() -> list[Any]:
    return [import_string(path)() for path in settings.RECSVC_METRICS_COLLECTORS]


def _allowed(request: HttpRequest) -> bool:
    token = settings.RECSVC_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    return "HTTP_X_FORWARDED_FOR" not in request.META


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of this host's processes plus the scrape-time collectors."""
    if not _allowed(request):
        raise Http404  # not 401/403: the public is not told the page exists
    scraped = CollectorRegistry(auto_describe=False)
    for collector in _scrape_collectors():
        scraped.register(collector)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
        body = generate_latest(processes)
    else:
        body = generate_latest(REGISTRY)
    return HttpResponse(body + generate_latest(scraped), content_type=CONTENT_TYPE_LATEST)
