"""Celery tasks of the `training` queue: thin, id-taking, idempotent. Plus two beat tasks (queue `default`):
the reaper of runs whose worker was lost and the per-tenant retraining schedule."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from tenants.context import tenant_context
from training import schedule
from training.distributed.launch import train_distributed
from training.jobs import run_training, training_processes
from training.registry import lifecycle, reaper
from training.registry.models import ModelVersion


@shared_task(
    name=lifecycle.TRAIN_TASK, acks_late=True, autoretry_for=(OperationalError,),
    retry_backoff=True, max_retries=3,
    soft_time_limit=6 * 3600, time_limit=6 * 3600 + 600,  # a run takes hours; the default limits minutes
)
def train_model_version(tenant_id: int, version_id: int) -> str:
    """Train a queued version. A redelivered message (its worker was killed) takes the run over only if the
    run's heartbeat went stale; a run that ended (ready, active, failed, archived) is never trained again:
    a failed run stays failed with its reason, and a new run is a new version."""
    with tenant_context(tenant_id):
        if not reaper.claim(tenant_id, version_id):
            return "skipped"
        version = ModelVersion.objects.for_tenant(tenant_id).get(pk=version_id)
        try:
            with reaper.heartbeat(tenant_id, version_id):
                # A large shop (or one named by a setting) trains on several processes under torchrun.
                processes = training_processes(tenant_id)
                if processes > 1:
                    return train_distributed(version, processes).status
                return run_training(version).status
        except OperationalError:
            reaper.release(tenant_id, version_id)  # back to queued, so that the retry can claim it
            raise


@shared_task(name="training.tasks.reap_lost_runs")
def reap_lost_runs() -> list[int]:
    return reaper.reap_lost_runs()


@shared_task(name="training.tasks.retrain_due_tenants")
def retrain_due_tenants() -> dict[str, int]:
    return schedule.retrain_due_tenants()
