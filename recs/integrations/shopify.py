"""Shopify topics: payloads (REST webhook format, as in Shopify's webhook reference samples) mapped into
the catalog, customers and purchase events.

Variants are collapsed into their product: recommendations, events (an order line names its
`product_id`) and rules work per product. The product's price is its lowest variant price, its stock
the sum over the variants whose inventory Shopify tracks (None: none is tracked, stock unlimited); each
variant's id, title, SKU, price, inventory item and quantity are kept in `attributes["variants"]`.

Inventory levels (inventory_levels/update) are per variant and location: a level is recorded on its
variant, and a variant's stock is the sum of its recorded levels, or its `inventory_quantity` from the
last product payload when none was recorded. A product payload newer than a recorded level supersedes
it (its `inventory_quantity` already counts every location), so the two topics converge.

Customers: only what recommendations use is kept (tags, account state, currency, country). Names,
emails, phones and addresses are never stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from recs.ingest.catalog import upsert_customers, upsert_products
from recs.integrations import compliance, mapping
from recs.integrations.base import Delivery, Handler, Ignored
from recs.integrations.connections import DISABLED_BY_UNINSTALL, disable_connection
from recs.integrations.orders import OrderLine, guest_customer_id, record_purchases
from recs.models import AuditLog, Product

PLATFORM = "shopify"
MAX_VARIANTS = 250


def _tags(value: Any) -> list[str]:
    """Shopify sends tags as one comma-separated string."""
    parts = value.split(",") if isinstance(value, str) else []
    return mapping.string_list(parts, max_items=50, max_length=64)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _variant(raw: dict, product_updated: dt.datetime | None) -> dict:
    management = raw.get("inventory_management", "absent")
    quantity = mapping.integer(raw.get("inventory_quantity"))
    # Before API 2024-04 `inventory_management: "shopify"` marks tracked stock; later versions drop the
    # field, and a variant that still reports a quantity is taken as tracked.
    tracked = management == "shopify" or (management == "absent" and quantity is not None)
    price = mapping.price(raw.get("price"))
    return mapping.compact({
        "id": mapping.external_id(raw.get("id")),
        "title": mapping.text(raw.get("title"), 200),
        "sku": mapping.text(raw.get("sku"), 128),
        "price": str(price) if price is not None else None,
        "inventory_item_id": mapping.external_id(raw.get("inventory_item_id")),
        "inventory_quantity": quantity,
        "tracked": tracked,
        "updated_at": _iso(mapping.timestamp(raw.get("updated_at")) or product_updated),
    })


def _variant_stock(variant: dict) -> int:
    levels = variant.get("levels") or {}
    if levels:
        return sum(max(0, level["available"]) for level in levels.values())
    quantity = variant.get("inventory_quantity")
    return max(0, quantity) if isinstance(quantity, int) else 0


def _stock(variants: list[dict]) -> int | None:
    tracked = [v for v in variants if v.get("tracked")]
    if not tracked:
        return None
    return min(sum(_variant_stock(v) for v in tracked), 2**31 - 1)


def _carry_levels(variants: list[dict], current: Product | None) -> None:
    """Keep the recorded location levels that are newer than the payload's view of their variant."""
    if current is None:
        return
    old = {
        v.get("inventory_item_id"): v.get("levels") or {}
        for v in (current.attributes or {}).get("variants") or []
        if isinstance(v, dict)
    }
    for variant in variants:
        levels = old.get(variant.get("inventory_item_id")) or {}
        seen = mapping.timestamp(variant.get("updated_at"))
        kept = {loc: lvl for loc, lvl in levels.items() if seen and (mapping.timestamp(lvl.get("at")) or seen) > seen}
        if kept:
            variant["levels"] = kept


def product_item(payload: dict) -> dict:
    product_id = mapping.external_id(payload.get("id"))
    if product_id is None:
        raise Ignored("the payload names no product id")
    updated = mapping.timestamp(payload.get("updated_at"))
    variants = [_variant(v, updated) for v in (payload.get("variants") or [])[:MAX_VARIANTS] if isinstance(v, dict)]
    prices = [mapping.price(v.get("price")) for v in variants]
    prices = [p for p in prices if p is not None]
    product_type = mapping.text(payload.get("product_type"), 100)
    status = payload.get("status")
    return {
        "external_id": product_id,
        "title": mapping.text(payload.get("title"), 500) or f"Product {product_id}",
        "description": mapping.plain_text(payload.get("body_html"), 20_000),
        "category_path": [product_type] if product_type else [],
        "brand": mapping.text(payload.get("vendor"), 200),
        "price": min(prices) if prices else None,
        "tags": _tags(payload.get("tags")),
        # Draft and archived products are not for sale (older API versions send no status).
        "available": status in (None, "active"),
        "attributes": mapping.compact({"handle": mapping.text(payload.get("handle"), 255), "variants": variants}),
        "updated_at": updated,
    }


def upsert_product(delivery: Delivery, payload: dict) -> dict:
    item = product_item(payload)
    tenant_id = delivery.tenant_id
    with transaction.atomic():
        current = (
            Product.objects.for_tenant(tenant_id).select_for_update().filter(external_id=item["external_id"]).first()
        )
        variants = item["attributes"].get("variants", [])
        _carry_levels(variants, current)
        item["stock"] = _stock(variants)
        result = upsert_products(tenant_id, [item])
    return {"product": item["external_id"], **result.as_dict()}


def delete_product(delivery: Delivery, payload: dict) -> dict:
    product_id = mapping.external_id(payload.get("id"))
    if product_id is None:
        raise Ignored("the payload names no product id")
    if not Product.objects.for_tenant(delivery.tenant_id).filter(external_id=product_id).exists():
        raise Ignored("no such product")
    item: dict[str, Any] = {"external_id": product_id, "deleted": True}
    if delivery.triggered_at:
        # Shopify's own clock, like the products' updated_at: an update older than the deletion that
        # arrives after it is stale and cannot bring the product back.
        item["updated_at"] = delivery.triggered_at
    result = upsert_products(delivery.tenant_id, [item], partial=True)
    return {"product": product_id, **result.as_dict()}


def _product_with_inventory_item(tenant_id: int, item_id: str) -> Product | None:
    products = Product.objects.for_tenant(tenant_id).select_for_update()
    if db_connection.features.supports_json_field_contains:
        return products.filter(attributes__variants__contains=[{"inventory_item_id": item_id}]).first()
    for product in products.filter(attributes__has_key="variants"):  # the embedded SQLite demo only
        if any(v.get("inventory_item_id") == item_id for v in product.attributes["variants"]):
            return product
    return None


def update_inventory_level(delivery: Delivery, payload: dict) -> dict:
    item_id = mapping.external_id(payload.get("inventory_item_id"))
    location_id = mapping.external_id(payload.get("location_id"))
    if item_id is None or location_id is None:
        raise Ignored("the payload names no inventory item or location")
    available = mapping.integer(payload.get("available"))
    at = mapping.timestamp(payload.get("updated_at")) or delivery.triggered_at or timezone.now()
    tenant_id = delivery.tenant_id
    with transaction.atomic():
        product = _product_with_inventory_item(tenant_id, item_id)
        if product is None:
            raise Ignored("no product has this inventory item")
        attributes = dict(product.attributes)
        variants = [dict(v) for v in attributes["variants"]]
        variant = next(v for v in variants if v.get("inventory_item_id") == item_id)
        levels = dict(variant.get("levels") or {})
        recorded = mapping.timestamp((levels.get(location_id) or {}).get("at"))
        seen = mapping.timestamp(variant.get("updated_at"))
        if (recorded and recorded >= at) or (seen and seen >= at):
            return {"product": product.external_id, "stale": True}
        if available is None:
            levels.pop(location_id, None)  # the item is no longer stocked at that location
        else:
            levels[location_id] = {"available": available, "at": at.isoformat()}
        variant["levels"] = levels
        if not levels:
            variant.pop("levels")
        attributes["variants"] = variants
        stock = _stock(variants)
        result = upsert_products(
            tenant_id, [{"external_id": product.external_id, "stock": stock, "attributes": attributes}], partial=True
        )
    return {"product": product.external_id, "stock": stock, **result.as_dict()}


def customer_item(payload: dict) -> dict:
    customer_id = mapping.external_id(payload.get("id"))
    if customer_id is None:
        raise Ignored("the payload names no customer id")
    address = payload.get("default_address") if isinstance(payload.get("default_address"), dict) else {}
    return {
        "external_id": customer_id,
        "attributes": mapping.compact({
            "tags": _tags(payload.get("tags")),
            "state": mapping.text(payload.get("state"), 32),
            "currency": mapping.text(payload.get("currency"), 3),
            "country": mapping.text(address.get("country_code"), 2),
        }),
        "updated_at": mapping.timestamp(payload.get("updated_at")),
    }


def upsert_customer(delivery: Delivery, payload: dict) -> dict:
    item = customer_item(payload)
    result = upsert_customers(delivery.tenant_id, [item])
    return {"customer": item["external_id"], **result.as_dict()}


def record_order(delivery: Delivery, payload: dict) -> dict:
    """orders/create and orders/paid: the same event ids, so whichever comes second stores nothing."""
    order_id = mapping.external_id(payload.get("id"))
    if order_id is None:
        raise Ignored("the payload names no order id")
    if payload.get("cancelled_at"):
        raise Ignored("a cancelled order is not a purchase")
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    customer_id = mapping.external_id(customer.get("id")) or guest_customer_id(PLATFORM, order_id)
    at = (
        mapping.timestamp(payload.get("processed_at")) or mapping.timestamp(payload.get("created_at"))
        or delivery.triggered_at
    )
    lines, skipped = [], 0
    for raw in payload.get("line_items") or []:
        raw = raw if isinstance(raw, dict) else {}
        line_id, product_id = mapping.external_id(raw.get("id")), mapping.external_id(raw.get("product_id"))
        quantity = mapping.integer(raw.get("quantity"))
        if line_id is None or product_id is None or quantity is None or quantity < 1:
            skipped += 1  # a custom line item (no product) or a malformed one
            continue
        lines.append(OrderLine(
            line_id=line_id, product_id=product_id, quantity=min(quantity, 1_000_000),
            title=mapping.text(raw.get("title") or raw.get("name"), 500), brand=mapping.text(raw.get("vendor"), 200),
            price=mapping.price(raw.get("price")),
        ))
    outcome = record_purchases(
        delivery.tenant_id, platform=PLATFORM, order_id=order_id, customer_id=customer_id, at=at, lines=lines
    )
    return {"order": order_id, "lines_skipped": skipped, **outcome}


def uninstall(delivery: Delivery, payload: dict) -> dict:
    """The merchant removed the app: stop taking catalog and order deliveries. The data stays until
    shop/redact (Shopify sends it 48 hours later), which a disabled connection still accepts."""
    disable_connection(delivery.connection, reason=DISABLED_BY_UNINSTALL)
    return {"connection": "disabled"}


def _check_shop(delivery: Delivery, payload: dict) -> None:
    """Already checked when the delivery was recorded (recs/integrations/schemas.py); checked again here
    for deliveries recorded before that check existed. A request naming no shop is not ours either."""
    domain = payload.get("shop_domain")
    if not isinstance(domain, str) or domain.strip().lower() != delivery.connection.shop_domain:
        raise Ignored("the request names another shop")


def _customer_and_orders(payload: dict, orders_key: str) -> tuple[str | None, list[str]]:
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    orders = [mapping.external_id(o) for o in payload.get(orders_key) or []] if isinstance(
        payload.get(orders_key), list
    ) else []
    return mapping.external_id(customer.get("id")), [o for o in orders if o]


def data_request(delivery: Delivery, payload: dict) -> dict:
    _check_shop(delivery, payload)
    subject, orders = _customer_and_orders(payload, "orders_requested")
    request = payload.get("data_request") if isinstance(payload.get("data_request"), dict) else {}
    export = compliance.export_customer_data(
        delivery.tenant_id, platform=PLATFORM, subject=subject, order_ids=orders,
        request_id=str(mapping.external_id(request.get("id")) or ""), connection=delivery.connection,
    )
    return {"export": export.pk, "events": len(export.content["events"])}


def redact_customer(delivery: Delivery, payload: dict) -> dict:
    _check_shop(delivery, payload)
    subject, orders = _customer_and_orders(payload, "orders_to_redact")
    if subject is None and not orders:
        raise Ignored("the request names no customer and no order")
    audit = compliance.erase_customer(
        delivery.tenant_id, platform=PLATFORM, subject=subject, order_ids=orders,
        action=AuditLog.Action.CUSTOMER_REDACTED, source="shopify customers/redact",
    )
    return {"audit": audit.pk, **audit.details}


def redact_shop(delivery: Delivery, payload: dict) -> dict:
    _check_shop(delivery, payload)
    audit = compliance.redact_shop(
        delivery.tenant_id, source="shopify shop/redact", keep_delivery_pk=delivery.delivery_pk
    )
    return {"audit": audit.pk, **audit.details}


COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})

HANDLERS: dict[str, Handler] = {
    "products/create": upsert_product,
    "products/update": upsert_product,
    "products/delete": delete_product,
    "inventory_levels/update": update_inventory_level,
    "customers/create": upsert_customer,
    "customers/update": upsert_customer,
    "orders/create": record_order,
    "orders/paid": record_order,
    "app/uninstalled": uninstall,
    "customers/data_request": data_request,
    "customers/redact": redact_customer,
    "shop/redact": redact_shop,
}
