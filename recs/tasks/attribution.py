"""The beat task that stores served answers from the Redis stream (recs/attribution/store.py), every
RECSVC_ANSWER_STORE_INTERVAL_S. Runs that overlap share the stream through its consumer group."""

from __future__ import annotations

from celery import shared_task

from recs.attribution import store


@shared_task(name="recs.tasks.attribution.store_served_answers", soft_time_limit=store.STORE_TIME_LIMIT_S,
             time_limit=store.STORE_TIME_LIMIT_S + 10)
def store_served_answers() -> dict[str, int]:
    run = store.drain()
    return {"read": run.read, "stored": run.stored, "malformed": run.malformed, "failed": run.failed}
