"""Served answers: what each recommendation response showed, so feedback can be attributed to it.

One row per served answer (recs/attribution/: recorded on the hot path into a Redis stream, stored here in
batches by a worker). Feedback events carry the answer's `recommendation_id` (recs_event has a partial index
on it); an event joins its answer when both belong to the same shop and its product is one of the items.
"""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant
from tenants.scoping import TenantOwnedModel


class ServedAnswer(TenantOwnedModel):
    """Append-only, written by the batch store only. Like the events table, the tenant reference carries no
    database constraint (no lock on the tenant row per batch); deleting a tenant cascades through the ORM."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False,
                               db_constraint=False)
    recommendation_id = models.UUIDField()
    served_at = models.DateTimeField()
    endpoint = models.CharField(max_length=16)  # recommendations, similar, popular (recs.models.rules.ENDPOINTS)
    variant = models.CharField(max_length=64)
    model_version = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=32, blank=True, default="")
    # The randomisation unit: the shop's customer id, else the session id, else the answer itself.
    customer_external_id = models.CharField(max_length=128, blank=True, default="")
    session_id = models.CharField(max_length=128, blank=True, default="")
    # The shop's product ids in the order shown (position = index + 1), and the probability with which the
    # policy showed each there (1.0 for a deterministic ranker; a bandit's own, for off-policy evaluation).
    items = models.JSONField(default=list)
    propensities = models.JSONField(default=list)

    class Meta(TenantOwnedModel.Meta):
        constraints = [
            # A batch redelivered after a crash (stored, not yet acknowledged) stores nothing twice.
            models.UniqueConstraint(fields=["tenant", "recommendation_id"], name="uniq_served_answer"),
        ]
        indexes = [models.Index(fields=["tenant", "served_at"], name="served_answer_tenant_ts_idx")]
