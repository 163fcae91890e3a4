"""The scheduled cross-shop releases: each aggregate once per budget window, across the opted-in shops.

`release_window(at)` releases, in order, product_popularity, category_popularity, product_trend and co_purchase
(after product_popularity: its domain is that release's largest keys) for the window of `at`, through
`privacy.releases.release` (bounding, trimmed mean, OpenDP Laplace, the ledger). A kind already released in the
window is skipped, so a second run in the same window (a redelivered message, a manual run) releases nothing
new and charges nothing. Each kind is one transaction under a PostgreSQL advisory lock on (kind, window): two
runs at once cannot both release it, and a run stopped midway keeps the kinds it finished. A shop out of budget
is left out of a release and its refusal recorded by `release` itself; the noise never depends on budgets.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from privacy import ledger
from privacy.models import Release
from privacy.params import ReleaseParams
from privacy.releases import ReleaseRefused, release

# co_purchase last: it needs this window's product_popularity release for its domain.
SCHEDULED_KINDS = ("product_popularity", "category_popularity", "product_trend", "co_purchase")


@dataclass(frozen=True)
class KindOutcome:
    kind: str
    status: str  # "released", "already released" (this window), or "refused" (nothing released)
    release_id: int | None = None
    n_shops: int = 0
    refused_shops: int = 0  # shops left out (each refusal is in that shop's ledger)
    reason: str = ""


def _lock(kind: str, window: str) -> None:
    """Hold a transaction-level advisory lock on (kind, window) until the caller's transaction ends."""
    key = zlib.crc32(f"privacy-release:{kind}:{window}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def release_kind_once(kind: str, at: datetime, *, params: ReleaseParams | None = None) -> KindOutcome:
    """Release `kind` for the window of `at` unless this window already has one."""
    window = ledger.window_of(at)
    with transaction.atomic():
        _lock(kind, window)
        done = Release.objects.filter(kind=kind, window=window).order_by("-released_at", "-pk").first()
        if done is not None:
            return KindOutcome(kind, "already released", release_id=done.pk, n_shops=done.n_shops)
        try:
            outcome = release(kind, at, params=params)
        except ReleaseRefused as refused:
            return KindOutcome(kind, "refused", reason=str(refused))
    if outcome.release is None:
        return KindOutcome(kind, "refused", refused_shops=len(outcome.refused),
                           reason="fewer shops than the minimum could pay for it")
    return KindOutcome(kind, "released", release_id=outcome.release.pk, n_shops=outcome.release.n_shops,
                       refused_shops=len(outcome.refused))


def release_window(at: datetime, *, params: ReleaseParams | None = None) -> list[KindOutcome]:
    """Release every scheduled aggregate for the window of `at` (each at most once per window)."""
    return [release_kind_once(kind, at, params=params) for kind in SCHEDULED_KINDS]
