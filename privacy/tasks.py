"""Celery tasks of privacy: the monthly shared cold-start model (beat: config/settings.py)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from privacy import shared_release


# All or nothing in one transaction: a run killed midway charged nothing and a redelivered message trains
# afresh. Its work grows with customers x epochs (docs/privacy.md, "Cost"): hours, not the default minutes.
@shared_task(name="privacy.tasks.train_shared_model", acks_late=True, soft_time_limit=6 * 3600,
             time_limit=6 * 3600 + 600)
def train_shared_model(at: str | None = None) -> dict:
    """Train and release the shared model over the month of `at` (ISO 8601; default now) up to it; the ledger
    refuses shops that cannot pay."""
    moment = datetime.fromisoformat(at) if at else timezone.now()
    if timezone.is_naive(moment):
        raise ValueError("`at` needs a time zone")
    outcome = shared_release.train_shared_model(moment)
    return {"model_id": outcome.model.pk if outcome.model else None, "n_shops": len(outcome.contributors),
            "refused": len(outcome.refused)}
