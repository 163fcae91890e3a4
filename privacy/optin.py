"""Joining and leaving the cross-shop aggregates.

Leaving stops the shop's contributions from the next release on; what was released while it took part
stays released (a published noisy aggregate cannot be called back), and its ledger stays readable.
"""

from __future__ import annotations

from datetime import datetime

from privacy.models import PrivacySettings


def settings_for(tenant_id: int) -> PrivacySettings:
    """The shop's settings row (not opted in when it has none yet; not saved then)."""
    return PrivacySettings.objects.for_tenant(tenant_id).first() or PrivacySettings(tenant_id=tenant_id)


def set_opted_in(tenant_id: int, opted_in: bool, *, at: datetime) -> PrivacySettings:
    row = settings_for(tenant_id)
    if row.opted_in != opted_in:
        row.opted_in = opted_in
        if opted_in:
            row.opted_in_at = at
        else:
            row.opted_out_at = at
    row.save()
    return row
