"""The program torchrun starts on every process of a distributed run:
`python -m training.distributed.worker TENANT_ID VERSION_ID` (training/distributed/launch.py builds the command).

Rank 0 loads the shop's data once and hands it to the others (over the run's own process group, so every
process trains on the same rows even while events arrive), then runs `training.jobs.run_training`, the
one-process run, with the trainers sharded (`training_in_parallel`): it alone writes the version, its
progress and its artifacts, the sharding plans included (`sharding_plan.json`). The other ranks run the same
training calls on the same data (`train_served_models`) and write nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

PLAN_FILE = "sharding_plan.json"


class _Silent:
    """The progress recorder of ranks other than 0: they report nothing."""

    def set_stage(self, stage: str, steps: int = 1) -> None:
        pass

    def step(self, name: str) -> None:
        pass

    def __call__(self, event: dict[str, Any], force: bool = False) -> None:
        pass


def _no_evaluation(*args: Any) -> dict[str, float]:
    return {}


def record_plan(folder: Path, plans: list[dict[str, Any]], world_size: int, backend: str) -> dict[str, Any]:
    """Write the run's sharding plans beside its artifacts; the metrics it adds to the version."""
    (folder / PLAN_FILE).write_text(json.dumps({"world_size": world_size, "backend": backend, "models": plans},
                                               indent=2, sort_keys=True))
    return {"training_processes": world_size}


def main(argv: list[str]) -> int:
    tenant_id, version_id = (int(a) for a in argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import torch
    import torch.distributed as dist
    from django.conf import settings

    from tenants.context import tenant_context
    from training.datasets import load_tenant_dataset
    from training.distributed.parallel import ShardedTraining
    from training.jobs import NotEnoughData, enough_events, run_training, train_served_models
    from training.registry.models import ModelVersion
    from training.trainers.common import training_in_parallel

    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    rank = dist.get_rank()
    parallel = ShardedTraining(
        device=device, memory_bytes=settings.RECSVC_TRAINING_PROCESS_MEMORY_BYTES,
        shard_min_bytes=settings.RECSVC_SHARD_TABLE_MIN_BYTES, sharding_types=tuple(settings.RECSVC_SHARDING_TYPES),
    )
    status = 0
    with tenant_context(tenant_id):
        version = ModelVersion.objects.for_tenant(tenant_id).get(pk=version_id)
        shared: list[Any] = [load_tenant_dataset(tenant_id) if rank == 0 else None]
        # Pickled between the processes of this one run (torchrun's group), never to or from the outside.
        dist.broadcast_object_list(shared, src=0, device=device if cuda else None)
        dataset = shared[0]
        with training_in_parallel(parallel):
            if rank == 0:
                done = run_training(
                    version, dataset=dataset,
                    record=lambda folder: record_plan(folder, parallel.plans, dist.get_world_size(), backend),
                )
                status = 1 if done.status == ModelVersion.Status.FAILED else 0
            else:
                try:
                    enough_events(len(dataset.interactions))
                except NotEnoughData:
                    return 0  # rank 0 fails the run with the reason
                train_served_models(dataset, version.hyperparameters or {}, _Silent(), _no_evaluation)
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
