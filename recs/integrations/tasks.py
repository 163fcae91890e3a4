"""Celery task of the `webhooks` queue (the `recs.integrations.tasks.*` route) for platform webhook
deliveries: thin, id-taking, idempotent. A queue of their own: one shop's file import never delays
another shop's deliveries."""

from __future__ import annotations

from celery import shared_task

from recs.integrations.processing import process_delivery
from tenants.context import tenant_context


@shared_task(name="recs.integrations.tasks.process_webhook_delivery", acks_late=True)
def process_webhook_delivery(tenant_id: int, delivery_pk: int) -> str:
    with tenant_context(tenant_id):
        return process_delivery(tenant_id, delivery_pk)


# The name deliveries were queued under (on `ingest`) before they had a queue of their own: messages sent
# before an upgrade are still processed. Nothing sends it any more; remove it a release later.
@shared_task(name="recs.tasks.ingest.process_webhook_delivery", acks_late=True)
def process_webhook_delivery_queued_before_upgrade(tenant_id: int, delivery_pk: int) -> str:
    return process_webhook_delivery(tenant_id, delivery_pk)


def enqueue_delivery(tenant_id: int, delivery_pk: int) -> None:
    process_webhook_delivery.delay(tenant_id, delivery_pk)
