"""Interactions: the largest table.

Keys are chosen for the two hot reads: all events of a tenant in time order (training) and a
customer's events newest first (serving). docs/architecture.md says how it grows.
"""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant
from tenants.scoping import TenantOwnedModel

# Default weights of the built-in types; a tenant may override them or add custom types (EventType).
BUILTIN_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 4.0,
    "purchase": 8.0,
    "rating": 1.0,  # multiplied by the rating value
    "impression": 0.0,  # an exposure, not a preference: used as a negative by the ranker
}


class EventType(TenantOwnedModel):
    """A tenant's custom event type, or its override of a built-in type's weight."""

    name = models.CharField(max_length=32)
    weight = models.FloatField()

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_event_type")]


class Event(TenantOwnedModel):
    """One interaction. The references carry no database constraint (`db_constraint=False`): a foreign-key
    check locks the tenant, customer and product rows of every inserted event (FOR KEY SHARE), which
    slows bulk loads and makes concurrent batches of one shop share a lock on its tenant row. Integrity
    is kept by the only writer instead: ingestion resolves both ids inside the
    tenant in the statement that inserts (recs/ingest/store.py), deletes cascade through the ORM
    (customers are erased with their events, products are only soft-deleted), and a time-partitioned or
    distributed (Citus) events table is free of cross-table constraints this way. Lookups by customer
    use (tenant, customer, ts), so the single-column index a foreign key gets by default is dropped too.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False,
                               db_constraint=False)
    event_type = models.CharField(max_length=32)
    customer = models.ForeignKey("recs.Customer", on_delete=models.CASCADE, related_name="+", db_index=False,
                                 db_constraint=False)
    product = models.ForeignKey("recs.Product", on_delete=models.CASCADE, related_name="+", db_index=False,
                                db_constraint=False)
    ts = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    quantity = models.IntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    session_id = models.CharField(max_length=128, blank=True, default="")
    recommendation_id = models.UUIDField(null=True, blank=True)
    # The shop's own id: a retry with the same id never stores twice. NULLs do not collide.
    event_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantOwnedModel.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "event_id"], name="uniq_event_id")]
        indexes = [
            models.Index(fields=["tenant", "ts"], name="event_tenant_ts_idx"),
            models.Index(fields=["tenant", "customer", "-ts"], name="event_customer_recent_idx"),
            # The funnel reads a session's newest events on every request that carries a session id
            # (anonymous visitors); most events have no session, so the index covers only those that do.
            models.Index(
                fields=["tenant", "session_id", "-ts"], name="event_session_recent_idx",
                condition=~models.Q(session_id=""),
            ),
            # Attribution joins feedback to served answers by recommendation_id (recs/attribution/stats.py);
            # only events sent back with one are indexed.
            models.Index(
                fields=["tenant", "recommendation_id"], name="event_recommendation_idx",
                condition=models.Q(recommendation_id__isnull=False),
            ),
        ]
