"""What each handled topic's payload must look like before a delivery is recorded.

The platforms sign the body only, so a signed body is authentic but its topic header is not: a
products/update body presented as shop/redact must not erase a shop. Each handled topic has a small
schema (msgspec structs, like the event API's) of what the platform always sends for it: Shopify's
webhook reference, the WooCommerce REST API (wc/v3) representation, and `{"id": ...}` alone for
deletions. A schema asks for the fields that make the payload that topic's resource, and refuses the
fields that mark another resource's payload. Destructive topics are closed (no field beyond the
documented ones: shop/redact, customers/redact, deletions), and Shopify's privacy and uninstall payloads
must name the connection's shop.

Fields the handlers read defensively (recs/integrations/mapping.py) are not re-checked here: a schema
decides which topic a body can be, not whether every field is well formed. Topics without a schema are
not handled: they are recorded as ignored and never processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from recs.models import IntegrationConnection

Platform = IntegrationConnection.Platform

# A platform id: a positive integer (possibly beyond 2**53) or its decimal string.
Id = Annotated[int, msgspec.Meta(ge=1)] | Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]{0,39}$")]
_Text = Annotated[str, msgspec.Meta(max_length=1000)]


class _IdOnly(msgspec.Struct, forbid_unknown_fields=True):
    """Shopify products/delete, WooCommerce *.deleted: the id and nothing else."""

    id: Id


class _ShopifyProduct(msgspec.Struct):
    id: Id
    title: str
    variants: list[dict[str, Any]]


class _ShopifyInventoryLevel(msgspec.Struct):
    inventory_item_id: Id
    location_id: Id
    available: int | None


class _ShopifyCustomer(msgspec.Struct):
    id: Id
    created_at: str


class _ShopifyOrder(msgspec.Struct):
    id: Id
    line_items: list[dict[str, Any]]


class _ShopifyShop(msgspec.Struct):
    """app/uninstalled: the shop object."""

    id: Id
    myshopify_domain: _Text
    name: str | None


class _Subject(msgspec.Struct):
    id: Id | None = None


class _DataRequestId(msgspec.Struct):
    id: Id


class _DataRequest(msgspec.Struct):
    shop_id: Id
    shop_domain: _Text
    customer: _Subject | None
    orders_requested: list[Id]
    data_request: _DataRequestId


class _CustomerRedact(msgspec.Struct, forbid_unknown_fields=True):
    shop_id: Id
    shop_domain: _Text
    customer: _Subject | None
    orders_to_redact: list[Id]


class _ShopRedact(msgspec.Struct, forbid_unknown_fields=True):
    shop_id: Id
    shop_domain: _Text


class _WooProduct(msgspec.Struct):
    id: Id
    name: str
    type: str
    status: str


class _WooCustomer(msgspec.Struct):
    id: Id
    role: str
    username: str


class _WooOrder(msgspec.Struct):
    id: Id
    status: str
    line_items: list[dict[str, Any]]


@dataclass(frozen=True)
class _Schema:
    struct: type[msgspec.Struct]
    # Fields that mark another resource's payload: a body carrying one is not this topic's.
    not_with: frozenset[str] = frozenset()
    # The field naming the shop, which must be the connection's (Shopify: the app's secret signs for
    # every shop that installed it).
    shop_field: str | None = None


# What marks each resource's payload (its list of variants, of order lines, a compliance request's
# shop id, the shop object's domain).
_SHOPIFY_MARKS = {"variants", "line_items", "shop_id", "myshopify_domain", "inventory_item_id"}
_WOO_MARKS = {"line_items", "username", "stock_status"}


def _shopify(struct: type[msgspec.Struct], *own: str, shop_field: str | None = None) -> _Schema:
    return _Schema(struct, frozenset(_SHOPIFY_MARKS - set(own)), shop_field)


def _woo(struct: type[msgspec.Struct], *own: str) -> _Schema:
    return _Schema(struct, frozenset(_WOO_MARKS - set(own)))


_SCHEMAS: dict[str, dict[str, _Schema]] = {
    Platform.SHOPIFY: {
        "products/create": _shopify(_ShopifyProduct, "variants"),
        "products/update": _shopify(_ShopifyProduct, "variants"),
        "products/delete": _Schema(_IdOnly),
        "inventory_levels/update": _shopify(_ShopifyInventoryLevel, "inventory_item_id"),
        "customers/create": _shopify(_ShopifyCustomer),
        "customers/update": _shopify(_ShopifyCustomer),
        "orders/create": _shopify(_ShopifyOrder, "line_items"),
        "orders/paid": _shopify(_ShopifyOrder, "line_items"),
        "app/uninstalled": _shopify(_ShopifyShop, "myshopify_domain", shop_field="myshopify_domain"),
        "customers/data_request": _shopify(_DataRequest, "shop_id", shop_field="shop_domain"),
        "customers/redact": _Schema(_CustomerRedact, shop_field="shop_domain"),
        "shop/redact": _Schema(_ShopRedact, shop_field="shop_domain"),
    },
    Platform.WOOCOMMERCE: {
        "product.created": _woo(_WooProduct, "stock_status"),
        "product.updated": _woo(_WooProduct, "stock_status"),
        "product.restored": _woo(_WooProduct, "stock_status"),
        "product.deleted": _Schema(_IdOnly),
        "customer.created": _woo(_WooCustomer, "username"),
        "customer.updated": _woo(_WooCustomer, "username"),
        "customer.deleted": _Schema(_IdOnly),
        "order.created": _woo(_WooOrder, "line_items"),
        "order.updated": _woo(_WooOrder, "line_items"),
    },
}


@dataclass(frozen=True)
class Refusal:
    """Why a signed payload is refused: 422 when it is not the topic's shape, 401 when it is for
    another shop."""

    status: int
    detail: str


def has_schema(platform: str, topic: str) -> bool:
    return topic in _SCHEMAS.get(platform, {})


def check_payload(connection: IntegrationConnection, topic: str, payload: dict[str, Any]) -> Refusal | None:
    """None when `payload` fits `topic` (or the topic is not handled), else why it is refused."""
    schema = _SCHEMAS.get(connection.platform, {}).get(topic)
    if schema is None:
        return None
    foreign = sorted(schema.not_with.intersection(payload))
    if foreign:
        return Refusal(422, f"A {topic} payload carries no '{foreign[0]}': this body is another topic's.")
    try:
        msgspec.convert(payload, schema.struct)
    except msgspec.ValidationError as exc:
        return Refusal(422, f"Not a {topic} payload: {exc}.")
    if schema.shop_field is not None:
        named = payload[schema.shop_field].strip().lower()
        if named != connection.shop_domain:
            return Refusal(401, f"The payload's {schema.shop_field} names another shop.")
    return None
