"""The model registry's rules: versions move queued -> training -> validating -> ready -> active, or
failed. Activation is atomic and guarded; rollback is activating an earlier ready version.

Serving never imports the trainers: it asks `active_version()` and loads the artifacts it points to.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from training.registry.models import ModelVersion

log = logging.getLogger(__name__)
KEY_METRIC = "ndcg@10"
# The serving task that builds a version's FAISS index (and, with activate=True, then activates it;
# once the version is active it also queues the batch precompute). Named, never imported: training
# does not import serving (serving/tasks.py defines it; the `serving.tasks.*` route puts it on `serving`).
BUILD_INDEX_TASK = "serving.tasks.build_index"
# The training task that takes a queued version through training (training/tasks.py registers it under this
# name). Named too: the runs and the reaper that queue it are imported by the tasks module.
TRAIN_TASK = "training.tasks.train_model_version"


def send_task_by_name(name: str, *args) -> None:
    """Queue a task by its registered name (of another package, or of a tasks module that imports the caller),
    after the current transaction commits.

    With eager tasks (the embedded default, the test suite) the task runs here and now, in this
    transaction, like a `.delay()` would; its module is found by Celery's autodiscovery, which a web or
    CLI process only runs on demand."""
    app = current_app
    if app.conf.task_always_eager:
        if name not in app.tasks:
            app.loader.import_default_modules()  # runs the autodiscovery a worker runs at start
        app.signature(name, args=args).apply_async()
        return
    transaction.on_commit(lambda: app.signature(name, args=args).apply_async())


class ActivationRefused(Exception):
    pass


def active_version_cache_key(tenant_id: int) -> str:
    """Where serving caches the active version id (briefly); activation deletes it once committed. Under
    the tenant's hash tag, beside the other keys an answer's lookup reads (serving.cache)."""
    return f"recs:{{{int(tenant_id)}}}:active-version"


def active_version(tenant_id: int, kind: str = ModelVersion.Kind.RECOMMENDER) -> ModelVersion | None:
    return ModelVersion.objects.for_tenant(tenant_id).filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()


def check_activation(candidate: ModelVersion, current: ModelVersion | None) -> str | None:
    """Why `candidate` may not replace `current`, or None if it may.

    The reason names no version by its id: it is stored on the candidate (status_reason) and shown by the
    API, which addresses versions by id, and by the dashboard, which numbers them per shop ("Model 2")."""
    if candidate.status not in (ModelVersion.Status.READY, ModelVersion.Status.ACTIVE):
        return f"this version is {candidate.status}, not ready"
    score = candidate.metrics.get(KEY_METRIC)
    if not isinstance(score, (int, float)) or score != score:
        return f"this version has no valid {KEY_METRIC}"
    if current is None or current.pk == candidate.pk:
        return None
    baseline = current.metrics.get(KEY_METRIC)
    tolerance = settings.RECSVC_ACTIVATION_TOLERANCE
    if isinstance(baseline, (int, float)) and score < baseline * (1 - tolerance):
        return (
            f"{KEY_METRIC} {score:.4f} regresses more than {tolerance:.0%} against the active version's "
            f"{baseline:.4f}"
        )
    return None


def activate(version: ModelVersion, *, force: bool = False) -> ModelVersion:
    """Make `version` the tenant's active one, in one transaction (never two active, never none
    in between). Without `force` a regression beyond the tolerance is refused with the reason stored."""
    with transaction.atomic():
        versions = ModelVersion.objects.for_tenant(version.tenant_id).select_for_update()
        candidate = versions.get(pk=version.pk)
        current = versions.filter(kind=candidate.kind, status=ModelVersion.Status.ACTIVE).first()
        reason = check_activation(candidate, current)
        refused = reason is not None and not (
            force and candidate.status == ModelVersion.Status.READY and "regresses" in reason
        )
        if not refused:
            if current is not None and current.pk != candidate.pk:
                current.status = ModelVersion.Status.READY
                current.save(update_fields=["status"])
            candidate.status = ModelVersion.Status.ACTIVE
            candidate.status_reason = "activated" + (" (forced)" if reason else "")
            candidate.activated_at = timezone.now()
            candidate.save(update_fields=["status", "status_reason", "activated_at"])
            # Serving processes pick the new version up on their next request (cache ops never raise).
            transaction.on_commit(lambda: cache.delete(active_version_cache_key(candidate.tenant_id)))
            # Make sure its index exists (a no-op when validation built it, as for every trained
            # version) and precompute the answers of the tenant's active customers.
            transaction.on_commit(lambda: _after_activation(candidate.tenant_id, candidate.pk))
    if refused:
        # Recorded after the transaction so the reason survives the refusal.
        ModelVersion.objects.for_tenant(version.tenant_id).filter(pk=version.pk).update(
            status_reason=f"not activated: {reason}"
        )
        raise ActivationRefused(reason)
    return candidate


def _after_activation(tenant_id: int, version_id: int) -> None:
    try:
        send_task_by_name(BUILD_INDEX_TASK, tenant_id, version_id)
    except Exception:  # the activation has committed: a broker hiccup must not turn it into an error
        log.exception("could not queue the index build of version %s (tenant %s)", version_id, tenant_id)


def rollback(tenant_id: int, version_id: int) -> ModelVersion:
    """Re-activate an earlier ready version (an explicit operator decision: no regression guard).

    Only backwards: going forward to a newer version is an activation, which keeps its guard."""
    version = ModelVersion.objects.for_tenant(tenant_id).get(pk=version_id)
    current = active_version(tenant_id, version.kind)
    if current is not None and version.pk > current.pk:
        raise ActivationRefused(
            "this version is newer than the active version: a rollback goes back to an earlier one; "
            "activate this one instead"
        )
    return activate(version, force=True)
