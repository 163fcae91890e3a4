"""Which event types a tenant accepts, and their weights (built-ins plus the tenant's own)."""

from __future__ import annotations

from django.core.cache import cache

from recs.models import BUILTIN_EVENT_WEIGHTS, EventType


def _cache_key(tenant_id: int) -> str:
    return f"event-weights:{tenant_id}"


def event_weights(tenant_id: int) -> dict[str, float]:
    weights = cache.get(_cache_key(tenant_id))
    if weights is None:
        weights = dict(BUILTIN_EVENT_WEIGHTS)
        weights.update(EventType.objects.for_tenant(tenant_id).values_list("name", "weight"))
        cache.set(_cache_key(tenant_id), weights, 300)
    return weights


def set_event_type(tenant_id: int, name: str, weight: float) -> EventType:
    event_type, _ = EventType.objects.for_tenant(tenant_id).update_or_create(
        name=name, defaults={"weight": weight, "tenant_id": tenant_id}
    )
    cache.delete(_cache_key(tenant_id))
    return event_type


def delete_event_type(event_type: EventType) -> None:
    event_type.delete()
    cache.delete(_cache_key(event_type.tenant_id))
