"""WooCommerce topics: payloads are the REST API (wc/v3) representation of the resource, as in the
WooCommerce REST API documentation; `*.deleted` payloads carry only the id.

Variations are collapsed into their parent product, whose `price` WooCommerce already reports as the
lowest variation price; a variation's own delivery (type "variation") is recorded and ignored. Stock is
the product's `stock_quantity` when it manages stock, else untracked. An order becomes purchase events
once it is paid (status processing or completed), so order.created for an unpaid order stores nothing
and the later order.updated does; the event ids make every further order.updated a no-op.

Customers: only what recommendations use is kept (role, country, whether they have paid). Names,
emails, phones and addresses are never stored. customer.deleted erases the customer and their events.
"""

from __future__ import annotations

from typing import Any

from recs.ingest.catalog import upsert_customers, upsert_products
from recs.integrations import compliance, mapping
from recs.integrations.base import Delivery, Handler, Ignored
from recs.integrations.orders import OrderLine, guest_customer_id, record_purchases
from recs.models import AuditLog, Product

PLATFORM = "woocommerce"
PAID_STATUSES = frozenset({"processing", "completed"})


def _names(values: Any, *, max_items: int, max_length: int) -> list[str]:
    names = [v.get("name") for v in values if isinstance(v, dict)] if isinstance(values, list) else []
    return mapping.string_list(names, max_items=max_items, max_length=max_length)


def product_item(payload: dict) -> dict:
    product_id = mapping.external_id(payload.get("id"))
    if product_id is None:
        raise Ignored("the payload names no product id")
    if payload.get("type") == "variation":
        raise Ignored("a variation: collapsed into its parent product")
    stock = mapping.integer(payload.get("stock_quantity")) if payload.get("manage_stock") is True else None
    brands = _names(payload.get("brands"), max_items=1, max_length=200)  # WooCommerce 9.6+ core brands
    return {
        "external_id": product_id,
        "title": mapping.text(payload.get("name"), 500) or f"Product {product_id}",
        "description": mapping.plain_text(payload.get("description") or payload.get("short_description"), 20_000),
        # WooCommerce lists a product's categories without their hierarchy: the first one is its path.
        "category_path": _names(payload.get("categories"), max_items=1, max_length=100),
        "brand": brands[0] if brands else "",
        "price": mapping.price(payload.get("price")),
        "stock": min(max(stock, 0), 2**31 - 1) if stock is not None else None,
        "available": payload.get("status", "publish") == "publish" and payload.get("stock_status") != "outofstock",
        "tags": _names(payload.get("tags"), max_items=50, max_length=64),
        "attributes": mapping.compact({
            "sku": mapping.text(payload.get("sku"), 128),
            "type": mapping.text(payload.get("type"), 32),
            "slug": mapping.text(payload.get("slug"), 200),
        }),
        "updated_at": mapping.timestamp(payload.get("date_modified_gmt")),
    }


def upsert_product(delivery: Delivery, payload: dict) -> dict:
    """product.created, product.updated and product.restored (a full payload: restoring undeletes)."""
    item = product_item(payload)
    result = upsert_products(delivery.tenant_id, [item])
    return {"product": item["external_id"], **result.as_dict()}


def delete_product(delivery: Delivery, payload: dict) -> dict:
    product_id = mapping.external_id(payload.get("id"))
    if product_id is None:
        raise Ignored("the payload names no product id")
    if not Product.objects.for_tenant(delivery.tenant_id).filter(external_id=product_id).exists():
        raise Ignored("no such product")
    result = upsert_products(delivery.tenant_id, [{"external_id": product_id, "deleted": True}], partial=True)
    return {"product": product_id, **result.as_dict()}


def upsert_customer(delivery: Delivery, payload: dict) -> dict:
    customer_id = mapping.external_id(payload.get("id"))
    if customer_id is None:
        raise Ignored("the payload names no customer id")
    billing = payload.get("billing") if isinstance(payload.get("billing"), dict) else {}
    paying = payload.get("is_paying_customer")
    item = {
        "external_id": customer_id,
        "attributes": mapping.compact({
            "role": mapping.text(payload.get("role"), 32),
            "country": mapping.text(billing.get("country"), 2),
            "paying_customer": paying if isinstance(paying, bool) else None,
        }),
        "updated_at": mapping.timestamp(payload.get("date_modified_gmt")),
    }
    result = upsert_customers(delivery.tenant_id, [item])
    return {"customer": customer_id, **result.as_dict()}


def delete_customer(delivery: Delivery, payload: dict) -> dict:
    customer_id = mapping.external_id(payload.get("id"))
    if customer_id is None:
        raise Ignored("the payload names no customer id")
    audit = compliance.erase_customer(
        delivery.tenant_id, platform=PLATFORM, subject=customer_id, order_ids=[],
        action=AuditLog.Action.CUSTOMER_DELETED, source="woocommerce customer.deleted",
    )
    return {"audit": audit.pk, **audit.details}


def _unit_price(raw: dict, quantity: int):
    price = mapping.price(raw.get("price"))
    if price is None:
        total = mapping.price(raw.get("total"))
        price = mapping.price(total / quantity) if total is not None else None
    return price


def record_order(delivery: Delivery, payload: dict) -> dict:
    order_id = mapping.external_id(payload.get("id"))
    if order_id is None:
        raise Ignored("the payload names no order id")
    status = payload.get("status")
    if status not in PAID_STATUSES:
        raise Ignored(f"order status '{mapping.text(status, 32)}' is not a purchase (yet)")
    customer_id = mapping.external_id(payload.get("customer_id")) or guest_customer_id(PLATFORM, order_id)
    at = mapping.timestamp(payload.get("date_paid_gmt")) or mapping.timestamp(payload.get("date_created_gmt"))
    lines, skipped = [], 0
    for raw in payload.get("line_items") or []:
        raw = raw if isinstance(raw, dict) else {}
        line_id, product_id = mapping.external_id(raw.get("id")), mapping.external_id(raw.get("product_id"))
        quantity = mapping.integer(raw.get("quantity"))
        if line_id is None or product_id is None or quantity is None or quantity < 1:
            skipped += 1  # a deleted product (product_id 0) or a malformed line
            continue
        quantity = min(quantity, 1_000_000)
        lines.append(OrderLine(
            line_id=line_id, product_id=product_id, quantity=quantity, title=mapping.text(raw.get("name"), 500),
            brand="", price=_unit_price(raw, quantity),
        ))
    outcome = record_purchases(
        delivery.tenant_id, platform=PLATFORM, order_id=order_id, customer_id=customer_id, at=at, lines=lines
    )
    return {"order": order_id, "lines_skipped": skipped, **outcome}


COMPLIANCE_TOPICS: frozenset[str] = frozenset()

HANDLERS: dict[str, Handler] = {
    "product.created": upsert_product,
    "product.updated": upsert_product,
    "product.restored": upsert_product,
    "product.deleted": delete_product,
    "customer.created": upsert_customer,
    "customer.updated": upsert_customer,
    "customer.deleted": delete_customer,
    "order.created": record_order,
    "order.updated": record_order,
}
