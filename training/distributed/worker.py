"""The program torchrun starts on every process of a distributed run:
`python -m training.distributed.worker TENANT_ID VERSION_ID` (training/distributed/launch.py builds the command:
the Celery task has claimed the version and keeps its heartbeat), or `TENANT_ID new` (a run across several
nodes that no Celery task started, deploy/k8s's training Job): rank 0 then starts the run itself, claimed
(`training.runs.claim_new_run`), and keeps its heartbeat while it loads and trains.

Rank 0 loads the shop's data once and hands it to the others (over the run's own process group, so every
process trains on the same rows even while events arrive), then runs `training.jobs.run_training`, the
one-process run, with the trainers sharded (`training_in_parallel`): it alone writes the version, its
progress and its artifacts, the sharding plans included (`sharding_plan.json`). The other ranks run the same
training calls on the same data (`train_served_models`) and write nothing.
"""

from __future__ import annotations

import argparse
import contextlib
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


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.distributed.worker", description=__doc__.splitlines()[0])
    parser.add_argument("tenant_id", type=int, help="the shop's id")
    parser.add_argument("version", help="the claimed version's id, or `new`: rank 0 starts and claims a run")
    parser.add_argument("--hyperparameters", type=json.loads, default=None,
                        help="with `new`: the run's hyper-parameters as JSON (default: the shop's defaults)")
    args = parser.parse_args(argv)
    if args.version != "new" and not args.version.isdigit():
        parser.error(f"VERSION is a version id or `new`, not {args.version!r}")
    if args.hyperparameters is not None and args.version != "new":
        parser.error("--hyperparameters is for a `new` run (a claimed version has its own)")
    return args


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    tenant_id = args.tenant_id
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
    from training.registry import reaper
    from training.registry.models import ModelVersion
    from training.runs import RunInProgress, claim_new_run
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
    with tenant_context(tenant_id), contextlib.ExitStack() as alive:
        version_id: int | None = None if args.version == "new" else int(args.version)
        dataset = None
        if rank == 0:
            try:
                if version_id is None:
                    version_id = claim_new_run(tenant_id, hyperparameters=args.hyperparameters).pk
                    # From here until the run ends, loading included: a run without beats is reaped as lost.
                    alive.enter_context(reaper.heartbeat(tenant_id, version_id))
                    print(f"version {version_id}", flush=True)
                dataset = load_tenant_dataset(tenant_id)
            except RunInProgress as exc:
                print(f"not started: {exc}", file=sys.stderr, flush=True)
                version_id = None
        # Pickled between the processes of this one run (torchrun's group), never to or from the outside.
        shared: list[Any] = [version_id, dataset]
        dist.broadcast_object_list(shared, src=0, device=device if cuda else None)
        version_id, dataset = shared
        if version_id is None:
            dist.destroy_process_group()
            return 1
        version = ModelVersion.objects.for_tenant(tenant_id).get(pk=version_id)
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
                    pass  # rank 0 fails the run with the reason; this rank still destroys its group below
                else:
                    train_served_models(dataset, version.hyperparameters or {}, _Silent(), _no_evaluation)
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
