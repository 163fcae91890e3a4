"""Data subject requests: export everything held about a customer, erase a customer, erase a whole shop.

Each action writes an AuditLog row (who, what, when, with counts: never the personal data itself).
What is held about a customer: the customer row and its attribute history, their events, the purchase
events of the orders the request names (guest checkouts included), and earlier exports about them.
Erasure also drops their cached recommendations (recs/answer_keys.py); embeddings derived from
them disappear with the next training run, which no longer sees their events.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from recs.attribution import erase
from recs.integrations.orders import guest_customer_id, order_event_prefix
from recs.models import (
    AuditLog,
    Customer,
    CustomerVersion,
    DataExport,
    Event,
    ImportJob,
    IntegrationConnection,
    Product,
    ProductVersion,
    WebhookDelivery,
)
from serving import answer_keys, catalog_changes

log = logging.getLogger(__name__)
EXPORT_FORMAT = "recsvc.customer-export.v1"


def _subject_ids(platform: str, subject: str | None, order_ids: list[str]) -> list[str]:
    ids = [subject] if subject else []
    return ids + [guest_customer_id(platform, order_id) for order_id in order_ids]


def _orders_q(platform: str, order_ids: list[str]) -> Q:
    q = Q()
    for order_id in order_ids:
        q |= Q(event_id__startswith=order_event_prefix(platform, order_id))
    return q


def _events_of(tenant_id: int, customer_pks: list[int], platform: str, order_ids: list[str]):
    q = Q(customer_id__in=customer_pks) | _orders_q(platform, order_ids)
    return Event.objects.for_tenant(tenant_id).filter(q)


def export_customer_data(
    tenant_id: int, *, platform: str, subject: str | None, order_ids: list[str], request_id: str = "",
    connection: IntegrationConnection | None = None,
) -> DataExport:
    """Copy everything held about the customer (and the named orders) into a DataExport, and log it."""
    customers = list(
        Customer.objects.for_tenant(tenant_id).filter(external_id__in=_subject_ids(platform, subject, order_ids))
    )
    pks = [c.pk for c in customers]
    history: dict[int, list[dict]] = {}
    for version in CustomerVersion.objects.for_tenant(tenant_id).filter(customer_id__in=pks).order_by("valid_from"):
        history.setdefault(version.customer_id, []).append(
            {
                "valid_from": version.valid_from, "valid_to": version.valid_to,
                "attributes": (version.snapshot or {}).get("attributes", {}),
            }
        )
    events = list(
        _events_of(tenant_id, pks, platform, order_ids)
        .order_by("ts", "pk")
        .values(
            "event_type", "customer__external_id", "product__external_id", "product__title", "ts", "value",
            "quantity", "price", "session_id", "recommendation_id", "event_id", "received_at",
        )
    )
    answers = erase.answers_shown_to(tenant_id, [c.external_id for c in customers], erase.sessions_of(tenant_id, pks))
    content = {
        "format": EXPORT_FORMAT,
        "generated_at": timezone.now(),
        "subject": subject,
        "request_id": request_id,
        "orders_requested": order_ids,
        "customers": [
            {
                "id": c.external_id, "attributes": c.attributes, "is_placeholder": c.is_placeholder,
                "created_at": c.created_at, "updated_at": c.updated_at, "source_updated_at": c.source_updated_at,
                "attribute_history": history.get(c.pk, []),
            }
            for c in customers
        ],
        "events": [
            {
                "type": e["event_type"], "customer_id": e["customer__external_id"],
                "product_id": e["product__external_id"], "product_title": e["product__title"], "timestamp": e["ts"],
                "value": e["value"], "quantity": e["quantity"], "price": e["price"], "session_id": e["session_id"],
                "recommendation_id": e["recommendation_id"], "event_id": e["event_id"], "received_at": e["received_at"],
            }
            for e in events
        ],
        "recommendations_shown": [
            {"recommendation_id": a["recommendation_id"], "served_at": a["served_at"], "endpoint": a["endpoint"],
             "customer_id": a["customer_external_id"], "session_id": a["session_id"], "product_ids": a["items"]}
            for a in answers
        ],
    }
    # Plain JSON (datetimes and decimals as strings): the export is handed on as it is stored.
    content = json.loads(json.dumps(content, cls=DjangoJSONEncoder))
    export = DataExport.objects.create(
        tenant_id=tenant_id, connection=connection, subject=subject or "", request_id=request_id, content=content
    )
    AuditLog.objects.create(
        tenant_id=tenant_id, action=AuditLog.Action.DATA_EXPORTED, subject=subject or "",
        details={
            "export_id": export.pk, "request_id": request_id, "customers": len(customers), "events": len(events),
            "orders": order_ids[:100],
        },
    )
    return export


def erase_customer(
    tenant_id: int, *, platform: str, subject: str | None, order_ids: list[str], action: str, source: str
) -> AuditLog:
    """Erase the customer, their attribute history, events and exports, the named orders' events (guest
    checkouts included), the answers served to them and their cached recommendations. Idempotent: a
    second run erases nothing more."""
    ids = _subject_ids(platform, subject, order_ids)
    pks = list(Customer.objects.for_tenant(tenant_id).filter(external_id__in=ids).values_list("pk", flat=True))
    answers = erase.forget_customers(tenant_id, ids, erase.sessions_of(tenant_id, pks))
    events = _events_of(tenant_id, pks, platform, order_ids).delete()[0]
    versions = CustomerVersion.objects.for_tenant(tenant_id).filter(customer_id__in=pks).delete()[0]
    customers = Customer.objects.for_tenant(tenant_id).filter(pk__in=pks).delete()[0]
    exports = DataExport.objects.for_tenant(tenant_id).filter(subject__in=ids).delete()[0]
    cache_keys = answer_keys.forget_customers(tenant_id, ids)
    return AuditLog.objects.create(
        tenant_id=tenant_id, action=action, subject=subject or "",
        details={
            "source": source, "customers": customers, "events": events, "attribute_versions": versions,
            "exports": exports, "served_answers": answers, "cache_keys": cache_keys, "orders": order_ids[:100],
        },
    )


def _remove_import_files(tenant_id: int) -> int:
    root = Path(settings.RECSVC_IMPORT_DIR).resolve()
    removed = 0
    for file_path in ImportJob.objects.for_tenant(tenant_id).values_list("file_path", flat=True):
        path = Path(file_path).resolve()
        if root in path.parents and path.is_file():  # never a file outside the import folder
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def redact_shop(tenant_id: int, *, source: str, keep_delivery_pk: int | None = None) -> AuditLog:
    """Erase all of the shop's store data: events, customers, products, their history, exports, uploaded
    import files and the recorded webhook bodies. Connections, event types and the audit log stay (they
    are configuration and the record of this erasure, not store data)."""
    counts = {
        "events": Event.objects.for_tenant(tenant_id).delete()[0],
        "served_answers": erase.forget_shop(tenant_id),
        "customer_versions": CustomerVersion.objects.for_tenant(tenant_id).delete()[0],
        "product_versions": ProductVersion.objects.for_tenant(tenant_id).delete()[0],
        "customers": Customer.objects.for_tenant(tenant_id).delete()[0],
        "products": Product.objects.for_tenant(tenant_id).delete()[0],
        "exports": DataExport.objects.for_tenant(tenant_id).delete()[0],
        "import_files": _remove_import_files(tenant_id),
        "imports": ImportJob.objects.for_tenant(tenant_id).delete()[0],
        "deliveries": WebhookDelivery.objects.for_tenant(tenant_id).exclude(pk=keep_delivery_pk).delete()[0],
        "cache_keys": answer_keys.forget_tenant(tenant_id),
    }
    transaction.on_commit(lambda: catalog_changes.publish_changes(tenant_id, None))
    log.warning("shop data of tenant %s erased (%s): %s", tenant_id, source, counts)
    return AuditLog.objects.create(
        tenant_id=tenant_id, action=AuditLog.Action.SHOP_REDACTED, subject=f"tenant:{tenant_id}",
        details={"source": source, **counts},
    )
