"""Starting a training run on request (API, dashboard, schedule): one run at a time per tenant.

A run is a queued version row plus the message of the `training` queue's task (`lifecycle.TRAIN_TASK`),
sent by name once the row is committed: the tasks module imports the modules that start and re-send runs
(this one through the schedule, the reaper), never the other way round.

Two runs of one tenant would race to activate, double the worker time the tenant costs, and the
second one would train on almost the same data. The check here gives the caller a clear answer;
the partial unique index `one_run_in_flight_per_kind` is the guard that holds under concurrency.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from training.hyperparameters import clean_hyperparameters
from training.registry import lifecycle
from training.registry.models import IN_FLIGHT, ModelVersion


class RunInProgress(Exception):
    def __init__(self, version: ModelVersion | None):
        self.version = version
        which = f"version {version.pk} is {version.status}" if version else "another run has just started"
        super().__init__(f"{which}: a tenant trains one run at a time; wait until it finishes")


def in_flight(tenant_id: int, kind: str = ModelVersion.Kind.RECOMMENDER) -> ModelVersion | None:
    """The tenant's queued, training or validating version, if any."""
    return ModelVersion.objects.for_tenant(tenant_id).filter(kind=kind, status__in=IN_FLIGHT).order_by("-pk").first()


def request_run(tenant_id: int, *, trigger: str, hyperparameters: dict | None = None) -> ModelVersion:
    """Queue a run (the worker picks it up once the caller's transaction commits) or raise RunInProgress.

    Hyper-parameters are validated here as well as at the edge (InvalidHyperparameters), so no caller
    can queue a run the trainers would reject.
    """
    params = clean_hyperparameters(hyperparameters)
    return _one_run(tenant_id, lambda: start_training(tenant_id, trigger=trigger, hyperparameters=params))


def claim_new_run(tenant_id: int, *, trigger: str = "cli", hyperparameters: dict | None = None) -> ModelVersion:
    """A run its caller trains itself (the cluster's multi-node training Job): created already claimed, status
    training with a fresh heartbeat, and no message to the training queue, so no Celery worker takes it too.
    The caller keeps the heartbeat going (`reaper.heartbeat`), or the reaper fails the run as lost. Raises
    RunInProgress like request_run."""
    params = clean_hyperparameters(hyperparameters)
    now = timezone.now()
    return _one_run(tenant_id, lambda: ModelVersion.objects.create(
        tenant_id=tenant_id, trigger=trigger, hyperparameters=params, status=ModelVersion.Status.TRAINING,
        started_at=now, heartbeat_at=now,
    ))


def _one_run(tenant_id: int, create) -> ModelVersion:
    current = in_flight(tenant_id)
    if current is not None:
        raise RunInProgress(current)
    try:
        with transaction.atomic():  # a savepoint: a lost race leaves the caller's transaction usable
            return create()
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != "one_run_in_flight_per_kind":
            raise
        raise RunInProgress(in_flight(tenant_id)) from None


def start_training(tenant_id: int, *, trigger: str = "api", hyperparameters: dict | None = None) -> ModelVersion:
    """Queue a run without the one-run check (request_run makes it); the worker starts once the version row
    is committed."""
    version = ModelVersion.objects.create(
        tenant_id=tenant_id, trigger=trigger, hyperparameters=hyperparameters or {}
    )
    transaction.on_commit(lambda: lifecycle.send_task_by_name(lifecycle.TRAIN_TASK, tenant_id, version.pk))
    return version
