"""Start a distributed run: `torchrun --nproc-per-node N -m training.distributed.worker TENANT VERSION`, wait for
it, and fail the run if a process died before rank 0 could record an outcome.

The Celery training task calls `train_distributed` in place of `training.jobs.run_training`, under the same
claim and heartbeat (training/tasks.py). torchrun stops the whole group when one process exits non-zero
(no restarts), so a worker killed mid-run ends the run: the version is marked failed with the exit codes,
its artifacts are discarded, and the active version keeps serving (nothing is activated before the end).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from urllib.parse import urlsplit

from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone

from training.registry import storage
from training.registry.models import ModelVersion

log = logging.getLogger(__name__)
RUNNING = (ModelVersion.Status.QUEUED, ModelVersion.Status.TRAINING, ModelVersion.Status.VALIDATING)


def torchrun_command(tenant_id: int, version_id: int, processes: int) -> list[str]:
    """One node, `processes` processes; a cluster runs the same worker under its own torchrun rendezvous
    (--nnodes, --rdzv-endpoint)."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
        "--max-restarts=0", "-m", "training.distributed.worker", str(tenant_id), str(version_id),
    ]


def _environment() -> dict[str, str]:
    """The processes train as this process is configured: its database (a test database included), artifact
    folders, sharding settings, and whether tasks run in process."""
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if settings.DATABASE_URL and connection.vendor == "postgresql":
        name = connection.settings_dict["NAME"]
        env["DATABASE_URL"] = urlsplit(settings.DATABASE_URL)._replace(path=f"/{name}").geturl()
    for name in ("RECSVC_ARTIFACT_DIR", "RECSVC_ARTIFACT_CACHE_DIR", "RECSVC_MIN_TRAINING_EVENTS",
                 "RECSVC_SHARD_TABLE_MIN_BYTES", "RECSVC_TRAINING_PROCESS_MEMORY_BYTES"):
        env[name] = str(getattr(settings, name))
    env["RECSVC_SHARDING_TYPES"] = ",".join(settings.RECSVC_SHARDING_TYPES)
    env["CELERY_TASK_ALWAYS_EAGER"] = "1" if current_app.conf.task_always_eager else "0"
    return env


def train_distributed(version: ModelVersion, processes: int, *, timeout_s: float | None = None) -> ModelVersion:
    """Train `version` on `processes` processes; returns it refreshed. A lost process fails the run."""
    command = torchrun_command(version.tenant_id, version.pk, processes)
    # Rows the processes will read must be visible to them: nothing of this run may wait in a transaction.
    if connection.in_atomic_block:
        raise RuntimeError("a distributed run cannot start inside a transaction: its processes would not see it")
    completed = subprocess.run(command, env=_environment(), timeout=timeout_s, capture_output=True, text=True)
    version.refresh_from_db()
    if completed.returncode != 0:
        log.error("distributed training of version %s exited %s: %s", version.pk, completed.returncode,
                  completed.stderr[-4000:])
    if completed.returncode != 0 and version.status in RUNNING:
        version.status = ModelVersion.Status.FAILED
        version.status_reason = f"a training process was lost (torchrun exited {completed.returncode})"
        version.finished_at = timezone.now()
        version.save(update_fields=["status", "status_reason", "finished_at"])
        storage.discard(version.tenant_id, version.pk)
    return version
