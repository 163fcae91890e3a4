"""The plans of settings.RECSVC_BILLING_PLANS as typed, validated values.

A plan has monthly included quotas per meter. The free plan is a hard limit; paid plans bill usage above
the included quota as overage through a metered Stripe price per meter, next to their flat price.
An inconsistent table (a missing meter, half the Stripe prices of a plan, one price on two plans) raises
ImproperlyConfigured at start-up (BillingConfig.ready).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

FREE = "free"


class Meter(StrEnum):
    RECOMMENDATIONS = "recommendations"
    EVENTS = "events"

    @property
    def label(self) -> str:
        return {"recommendations": "recommendation requests", "events": "ingested events"}[self.value]


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    price_label: str
    quotas: Mapping[str, int]
    overage: bool  # False: the quota is a hard limit
    stripe_price: str | None = None
    stripe_overage_prices: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_paid(self) -> bool:
        return self.overage

    @property
    def purchasable(self) -> bool:
        """Stripe prices are configured, so Checkout can sell this plan."""
        return self.is_paid and self.stripe_price is not None

    def quota(self, meter: str) -> int:
        return self.quotas[Meter(meter)]

    def checkout_line_items(self) -> list[dict]:
        """The flat price once, and each meter's metered overage price (metered prices take no quantity)."""
        if not self.purchasable:
            raise ValueError(f"plan {self.key!r} has no Stripe price")
        return [{"price": self.stripe_price, "quantity": 1}] + [
            {"price": self.stripe_overage_prices[meter]} for meter in Meter
        ]


_cache: tuple[object, dict[str, Plan]] | None = None


def _parse(raw: Mapping) -> dict[str, Plan]:
    from tenants.models import Tenant  # the plan column's choices are the plan keys

    if not isinstance(raw, Mapping) or set(raw) != set(Tenant.Plan.values):
        raise ImproperlyConfigured(f"RECSVC_BILLING_PLANS must define exactly the plans {sorted(Tenant.Plan.values)}")
    result: dict[str, Plan] = {}
    seen_prices: dict[str, str] = {}
    for key, spec in raw.items():
        where = f"RECSVC_BILLING_PLANS[{key!r}]"
        quotas = spec.get("quotas", {})
        if set(quotas) != set(Meter) or any(not isinstance(v, int) or v < 0 for v in quotas.values()):
            raise ImproperlyConfigured(f"{where}['quotas'] must give a whole number >= 0 for each of {list(Meter)}")
        overage = bool(spec.get("overage"))
        price = spec.get("stripe_price")
        overage_prices = dict(spec.get("stripe_overage_prices") or {})
        if key == FREE and (overage or price):
            raise ImproperlyConfigured(f"{where}: the free plan is a hard limit without a Stripe price")
        if overage:
            given = [p for p in [price, *overage_prices.values()] if p]
            if given and (not price or set(overage_prices) != set(Meter) or not all(overage_prices.values())):
                raise ImproperlyConfigured(
                    f"{where}: set the flat price and a metered overage price for each of {list(Meter)}, or none"
                )
            for p in given:
                if p in seen_prices:
                    raise ImproperlyConfigured(f"{where}: Stripe price {p} is also used by plan {seen_prices[p]!r}")
                seen_prices[p] = key
        result[key] = Plan(
            key=key,
            name=str(spec.get("name") or key.title()),
            price_label=str(spec.get("price_label") or ""),
            quotas=MappingProxyType({Meter(m): int(v) for m, v in quotas.items()}),
            overage=overage,
            stripe_price=price or None,
            stripe_overage_prices=MappingProxyType({Meter(m): p for m, p in overage_prices.items()}),
        )
    return result


def all_plans() -> dict[str, Plan]:
    """Every plan by key, in settings order (parsed once per settings object)."""
    global _cache
    raw = settings.RECSVC_BILLING_PLANS
    if _cache is None or _cache[0] is not raw:
        _cache = (raw, _parse(raw))
    return _cache[1]


def get(key: str) -> Plan:
    """The plan `key`; an unknown key (a plan removed from settings) falls back to the free plan."""
    table = all_plans()
    return table.get(key, table[FREE])


def free() -> Plan:
    return all_plans()[FREE]


def for_price(price_id: str) -> Plan | None:
    """The paid plan whose flat price is `price_id`."""
    return next((p for p in all_plans().values() if p.stripe_price and p.stripe_price == price_id), None)
