"""Celery tasks of the `serving` queue (the `serving.tasks.*` route): thin, id-taking, idempotent.

This module imports the modules whose work the tasks do, never the other way round: they queue a task by
its name (`prepare.PRECOMPUTE_TASK`, `online_features.BUILD_SNAPSHOT_TASK`), as training queues
`build_index` (it never imports serving): see `training.registry.lifecycle`.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from serving import online_features, prepare
from tenants.context import tenant_context

log = logging.getLogger(__name__)


@shared_task(name="serving.tasks.build_index", acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3, soft_time_limit=3600, time_limit=3660)
def build_index(tenant_id: int, version_id: int, activate: bool = False) -> str:
    """Build the version's FAISS index and record its parameters; then activate it (`activate`), or
    queue the precompute of answers when it is the active version."""
    with tenant_context(tenant_id):
        return prepare.prepare_version(tenant_id, version_id, activate=activate)


@shared_task(name=prepare.PRECOMPUTE_TASK, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3, soft_time_limit=3600, time_limit=3660)
def precompute_recommendations(tenant_id: int, version_id: int | None = None) -> dict:
    """Warm the answer cache for the tenant's recently active customers (after activation, and nightly)."""
    with tenant_context(tenant_id):
        return prepare.precompute_active_customers(tenant_id, version_id)


@shared_task(name="serving.tasks.precompute_all_tenants")
def precompute_all_tenants() -> int:
    """Celery beat, nightly: one precompute task per tenant with an active version."""
    tenant_ids = prepare.tenants_with_active_version()
    for tenant_id in tenant_ids:
        precompute_recommendations.delay(tenant_id)
    log.info("queued the nightly precompute of %d tenants", len(tenant_ids))
    return len(tenant_ids)


@shared_task(name=online_features.BUILD_SNAPSHOT_TASK, acks_late=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=3, soft_time_limit=3600, time_limit=3660)
def build_online_features(tenant_id: int, version_id: int) -> int | None:
    """Rebuild the version's item-feature snapshot (serving/online_features.py); idempotent: the newest
    snapshot wins. Returns its as_of (None: the version has no artifacts)."""
    with tenant_context(tenant_id):
        snapshot = online_features.build_snapshot(tenant_id, version_id)
    return None if snapshot is None else snapshot.as_of


@shared_task(name="serving.tasks.refresh_online_features")
def refresh_online_features() -> int:
    """Celery beat, every RECSVC_ONLINE_FEATURES_REFRESH_S: one snapshot build per active version."""
    pairs = online_features.active_versions()
    for tenant_id, version_id in pairs:
        build_online_features.delay(tenant_id, version_id)
    return len(pairs)
