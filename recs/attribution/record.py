"""Recording a served answer on the hot path: one XADD to the bounded served-answers stream.

Never a database write per answer (recs/attribution/store.py stores the stream in batches). The stream is
capped at about RECSVC_ANSWER_STREAM_MAXLEN entries (MAXLEN ~): while no worker stores it, the oldest
answers beyond that are dropped. With Redis unreachable the answer is served unrecorded and counted
(`unrecorded()`, the Prometheus counter `recsvc_answers_unrecorded_total`, a warning in the log at most once
a minute); after a failure the process does not try again for BACKOFF_SECONDS, so an outage costs each
request at most one connection timeout per interval, not one each. The embedded default (no Redis) stores
each answer at once: its demo has no worker.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from prometheus_client import Counter

from core.redis_client import raw_redis
from recs.attribution.store import store_answers
from recs.attribution.stream import decode, encode, stream_key

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 5.0
WARN_EVERY_SECONDS = 60.0

_lock = threading.Lock()
_unrecorded = 0
_retry_at = 0.0
_warned_at = -WARN_EVERY_SECONDS
UNRECORDED = Counter("recsvc_answers_unrecorded_total",
                     "Answers served without being recorded for attribution (Redis unreachable).")


def unrecorded() -> int:
    """Answers this process served without recording them (Redis unreachable), since it started."""
    return _unrecorded


def _missed(error: BaseException | None) -> None:
    global _unrecorded, _retry_at, _warned_at
    now = time.monotonic()
    with _lock:
        _unrecorded += 1
        UNRECORDED.inc()
        if error is not None:
            _retry_at = now + BACKOFF_SECONDS
        warn = now - _warned_at >= WARN_EVERY_SECONDS
        if warn:
            _warned_at = now
    if warn:
        log.warning("served answers not recorded: %s in this process so far", _unrecorded,
                    exc_info=error)


def record_answer(tenant_id: int, endpoint: str, answer: dict, *, customer_id: str | None = None,
                  session_id: str | None = None, propensities: list[float] | None = None) -> None:
    """Record a stamped answer as served (call once it is the response). `propensities`: the probability
    with which the policy showed each item at its position (None: a deterministic ranker, 1.0 each).
    Never raises."""
    if not settings.RECSVC_RECORD_ANSWERS:
        return
    fields = encode(tenant_id, endpoint, answer, customer_id, session_id, propensities)
    client = raw_redis()
    if client is None:
        _store_now(fields)
        return
    if time.monotonic() < _retry_at:
        _missed(None)
        return
    try:
        client.xadd(stream_key(), fields, maxlen=settings.RECSVC_ANSWER_STREAM_MAXLEN, approximate=True)
    except Exception as error:
        _missed(error)


def _store_now(fields: dict) -> None:
    entry_id = f"{int(time.time() * 1000)}-0"  # the stream's clock: served now
    try:
        store_answers([decode(entry_id, {name: str(value) for name, value in fields.items()})])
    except Exception as error:
        _missed(error)


@receiver(setting_changed)
def _caches_changed(*, setting: str, **kwargs: Any) -> None:
    """Another Redis (tests swap CACHES): its predecessor's failure says nothing about it."""
    global _retry_at
    if setting == "CACHES":
        _retry_at = 0.0
