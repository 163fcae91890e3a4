"""An order becomes one purchase event per line item, at the order's time, through the ordinary event
ingestion. Event ids are derived from the order and line item ids, so a redelivered or re-sent order
(Shopify orders/create then orders/paid, WooCommerce order.updated many times) never stores twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from recs.ingest.catalog import upsert_products
from recs.ingest.events import ingest_events
from recs.models import Product


@dataclass(frozen=True)
class OrderLine:
    line_id: str
    product_id: str
    title: str
    brand: str
    price: Decimal | None
    quantity: int


def order_event_prefix(platform: str, order_id: str) -> str:
    """Every purchase event of one order has an event_id starting with this (erasure finds them by it)."""
    return f"{platform}:order:{order_id}:"


def guest_customer_id(platform: str, order_id: str) -> str:
    """A guest checkout has no customer id: its purchases belong to a customer standing for that order."""
    return f"{platform}-guest-order-{order_id}"


def record_purchases(
    tenant_id: int, *, platform: str, order_id: str, customer_id: str, at: dt.datetime | None, lines: list[OrderLine]
) -> dict:
    if not lines:
        return {"events_stored": 0, "events_duplicate": 0, "products_created": 0, "rejected": []}
    wanted = {line.product_id for line in lines}
    products = Product.objects.for_tenant(tenant_id).filter(external_id__in=wanted)
    known = set(products.values_list("external_id", flat=True))
    # An order can arrive before its products (deliveries are not ordered): rather than lose the purchase,
    # the product is created from what the line says. It carries no `updated_at`, so the product's own
    # webhook replaces it whole when it comes.
    missing: dict[str, dict] = {}
    for line in lines:
        if line.product_id not in known and line.product_id not in missing:
            missing[line.product_id] = {
                "external_id": line.product_id, "title": line.title or f"Product {line.product_id}",
                "brand": line.brand, "price": line.price, "attributes": {"created_from": "order_line"},
            }
    if missing:
        upsert_products(tenant_id, list(missing.values()))
    prefix = order_event_prefix(platform, order_id)
    rows = [
        {
            "type": "purchase", "customer_id": customer_id, "product_id": line.product_id,
            "timestamp": at, "event_id": f"{prefix}{line.line_id}", "quantity": line.quantity,
            "price": float(line.price) if line.price is not None else None,
        }
        for line in lines
    ]
    result = ingest_events(tenant_id, rows)
    return {
        "events_stored": result.stored, "events_duplicate": result.duplicates, "products_created": len(missing),
        "rejected": [error.as_dict() for error in result.row_errors],
    }
