"""Served answers name the customer (or the session) they were shown to: they are part of what a data
subject request exports and an erasure deletes."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from recs.models import Event, ServedAnswer


def sessions_of(tenant_id: int, customer_pks: Iterable[int]) -> list[str]:
    """The session ids of these customers' events (read before the events are erased)."""
    sessions = Event.objects.for_tenant(tenant_id).filter(customer_id__in=list(customer_pks)).exclude(session_id="")
    return list(sessions.values_list("session_id", flat=True).distinct())


def _shown_to(external_ids: Iterable[str], session_ids: Iterable[str]) -> Q:
    return Q(customer_external_id__in=list(external_ids)) | Q(session_id__in=list(session_ids))


def answers_shown_to(tenant_id: int, external_ids: Iterable[str], session_ids: Iterable[str] = ()) -> list[dict]:
    """The answers served to these customers or in their sessions, oldest first (for an export)."""
    answers = ServedAnswer.objects.for_tenant(tenant_id).filter(_shown_to(external_ids, session_ids))
    return list(answers.order_by("served_at", "pk").values(
        "recommendation_id", "served_at", "endpoint", "customer_external_id", "session_id", "items",
    ))


def forget_customers(tenant_id: int, external_ids: Iterable[str], session_ids: Iterable[str] = ()) -> int:
    """Delete the answers served to these customers or in their sessions; returns how many."""
    return ServedAnswer.objects.for_tenant(tenant_id).filter(_shown_to(external_ids, session_ids)).delete()[0]


def forget_shop(tenant_id: int) -> int:
    return ServedAnswer.objects.for_tenant(tenant_id).delete()[0]
