"""Celery task of the `ingest` queue for webhook deliveries: thin, id-taking, idempotent."""

from __future__ import annotations

from celery import shared_task

from recs.integrations.processing import process_delivery
from tenants.context import tenant_context


@shared_task(name="recs.tasks.ingest.process_webhook_delivery", acks_late=True)
def process_webhook_delivery(tenant_id: int, delivery_pk: int) -> str:
    """Named under recs.tasks.ingest.* so the `ingest` route (settings.CELERY_TASK_ROUTES) applies."""
    with tenant_context(tenant_id):
        return process_delivery(tenant_id, delivery_pk)


def enqueue_delivery(tenant_id: int, delivery_pk: int) -> None:
    process_webhook_delivery.delay(tenant_id, delivery_pk)
