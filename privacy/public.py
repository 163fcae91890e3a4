"""What serving and training may use of privacy: the latest released aggregate of a kind, for a shop that
opted in (import-linter keeps them to this module)."""

from __future__ import annotations

from privacy.models import Release
from privacy.optin import settings_for


def latest_release(tenant_id: int, kind: str) -> dict[str, float]:
    """Key -> released value of the newest release of `kind`; empty unless the shop opted in."""
    if not settings_for(tenant_id).opted_in:
        return {}
    row = Release.objects.filter(kind=kind).order_by("-released_at", "-pk").first()
    return dict(row.values) if row else {}
