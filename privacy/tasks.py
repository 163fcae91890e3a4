"""Celery tasks of privacy: the monthly aggregate releases and shared cold-start model (beat: config/settings.py)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from privacy import schedule, shared_release


def _moment(at: str | None) -> datetime:
    moment = datetime.fromisoformat(at) if at else timezone.now()
    if timezone.is_naive(moment):
        raise ValueError("`at` needs a time zone")
    return moment


# Each kind is its own transaction and is skipped once released in the window: a run stopped by the time limit
# keeps what it finished, and a redelivered message releases and charges nothing twice. Its work is one scan of
# the month's events of every opted-in shop per kind (not measured at scale; the limit is generous).
@shared_task(name="privacy.tasks.release_aggregates", acks_late=True, soft_time_limit=3600, time_limit=3600 + 300)
def release_aggregates(at: str | None = None) -> dict:
    """Release each cross-shop aggregate for the month of `at` (ISO 8601; default now), once per month."""
    outcomes = schedule.release_window(_moment(at))
    return {o.kind: {"status": o.status, "release_id": o.release_id, "n_shops": o.n_shops,
                     "refused": o.refused_shops} for o in outcomes}


# All or nothing in one transaction: a run killed midway charged nothing and a redelivered message trains
# afresh. Its work grows with customers x epochs (docs/privacy.md, "Cost"): hours, not the default minutes.
@shared_task(name="privacy.tasks.train_shared_model", acks_late=True, soft_time_limit=6 * 3600,
             time_limit=6 * 3600 + 600)
def train_shared_model(at: str | None = None) -> dict:
    """Train and release the shared model over the month of `at` (ISO 8601; default now) up to it; the ledger
    refuses shops that cannot pay."""
    outcome = shared_release.train_shared_model(_moment(at))
    return {"model_id": outcome.model.pk if outcome.model else None, "n_shops": len(outcome.contributors),
            "refused": len(outcome.refused)}
