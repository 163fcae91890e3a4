"""Celery tasks of the `training` queue: thin, id-taking, idempotent."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from tenants.context import tenant_context
from training.jobs import run_training
from training.registry.models import ModelVersion

_DONE = {ModelVersion.Status.READY, ModelVersion.Status.ACTIVE, ModelVersion.Status.ARCHIVED}


@shared_task(
    name="training.tasks.train_model_version", acks_late=True, autoretry_for=(OperationalError,),
    retry_backoff=True, max_retries=3,
)
def train_model_version(tenant_id: int, version_id: int) -> str:
    with tenant_context(tenant_id):
        version = ModelVersion.objects.for_tenant(tenant_id).filter(pk=version_id).first()
        if version is None or version.status in _DONE:
            return "skipped"
        return run_training(version).status
