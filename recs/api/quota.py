"""Plan quotas on API endpoints, as DRF permissions (tenants.billing.quota decides).

    class EventViewSet(...):
        permission_classes = [HasTenantScope, EventsQuota]            # refuses writes past the quota

    class _RecommendViewSet(...):                                    # recs/api/recommend_views.py
        permission_classes = [HasTenantScope, RecommendationsQuota]  # refuses every method past the quota
        # ...and after answering: usage.record_soon(tenant_id, usage.RECOMMENDATIONS)

A free shop past its quota gets 429 (quota_exceeded, Retry-After: until the month resets); a shop whose
payment failed past the grace period gets 402 (payment_required) once past the free quotas. Both are
problem documents naming the meter, the limit, the usage and the plan. Paid shops are never refused here
(overage is billed). The check costs one Redis read, only for shops with a hard limit.
"""

from __future__ import annotations

from rest_framework import permissions

from core.problems import PaymentRequired, QuotaExceeded
from tenants import admission as admissions
from tenants.admission import Admission
from tenants.billing import quota
from tenants.billing.plans import Meter
from tenants.models import ApiKey


def quota_decision(key: ApiKey, admission: Admission | None, meter: Meter) -> quota.QuotaDecision:
    """The quota's decision for a request made with `key`. The usage was read when the request was
    admitted (tenants.admission), in the same round trip as the key and the rate limit; without that (no
    Redis pipeline) check() reads it itself."""
    if admission is not None and admission.degraded:
        used = None
    elif admission is not None and admission.usage is not None:
        used = admission.usage.get(meter.value, 0)
    else:
        used = quota.READ_LIVE
    return quota.check(key.tenant, meter, used=used)


class WithinQuota(permissions.BasePermission):
    meter: Meter
    # Which methods consume the meter; reads of stored data (GET /v1/events) never count.
    methods: frozenset[str] = frozenset({"POST", "PUT", "PATCH"})

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if request.method not in self.methods or not isinstance(key, ApiKey):
            return True  # HasTenantScope, listed first, refuses requests without a key
        decision = quota_decision(key, admissions.of(request), self.meter)
        if decision.allowed:
            return True
        problem = PaymentRequired if decision.status == quota.PAYMENT_REQUIRED else QuotaExceeded
        raise problem(decision.detail, extra=decision.fields, wait=decision.retry_after)


class EventsQuota(WithinQuota):
    meter = Meter.EVENTS


class RecommendationsQuota(WithinQuota):
    meter = Meter.RECOMMENDATIONS
    methods = frozenset({"GET", "POST"})
