"""The sharding plan of a model's embedding tables: TorchRec's EmbeddingShardingPlanner under explicit
per-process memory constraints, and the plan as JSON recorded with the model version.

Tables smaller than `shard_min_bytes` stay data-parallel (replicated, trained by the trainer's own optimizer,
the same arithmetic as one process); larger ones are split across the processes. On CPU the bag sharder
offers table-wise, column-wise and table-column-wise for them; row-wise needs CUDA (../shared/STACK.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchrec.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
from torchrec.distributed.types import ShardingPlan, ShardingType
from torchrec.modules.embedding_modules import EmbeddingBagCollection

CPU_MODEL_PARALLEL = (
    ShardingType.TABLE_WISE.value, ShardingType.COLUMN_WISE.value, ShardingType.TABLE_COLUMN_WISE.value,
)
CUDA_MODEL_PARALLEL = (*CPU_MODEL_PARALLEL, ShardingType.ROW_WISE.value, ShardingType.TABLE_ROW_WISE.value)


@dataclass(frozen=True)
class Table:
    name: str
    rows: int
    dim: int

    @property
    def bytes(self) -> int:
        return self.rows * self.dim * 4


def tables_of(model: nn.Module) -> list[Table]:
    """Every embedding table of `model`'s EmbeddingBagCollections."""
    return [
        Table(cfg.name, cfg.num_embeddings, cfg.embedding_dim)
        for module in model.modules() if isinstance(module, EmbeddingBagCollection)
        for cfg in module.embedding_bag_configs()
    ]  # fmt: skip


def model_parallel_types(device: torch.device, allowed: tuple[str, ...] = ()) -> list[str]:
    """The sharding types offered for a large table on `device`, narrowed to `allowed` when given."""
    offered = CUDA_MODEL_PARALLEL if device.type == "cuda" else CPU_MODEL_PARALLEL
    if not allowed:
        return list(offered)
    refused = [t for t in allowed if t not in offered]
    if refused:
        raise ValueError(f"sharding types {refused} are not available on {device.type} (offered: {list(offered)})")
    return list(allowed)


def constraints_for(
    tables: list[Table], device: torch.device, shard_min_bytes: int, allowed: tuple[str, ...] = ()
) -> dict[str, ParameterConstraints]:
    parallel = model_parallel_types(device, allowed)
    return {
        t.name: ParameterConstraints(
            sharding_types=parallel if t.bytes >= shard_min_bytes else [ShardingType.DATA_PARALLEL.value]
        )
        for t in tables
    }


def plan(
    model: nn.Module,
    sharders: list,
    *,
    world_size: int,
    device: torch.device,
    memory_bytes: int,
    shard_min_bytes: int,
    allowed: tuple[str, ...] = (),
    group: Any = None,
) -> ShardingPlan:
    """The planner's plan for `model` on `world_size` processes of `memory_bytes` each (DDR on CPU, HBM on
    a GPU). With `group` every process receives rank 0's plan (collective_plan), so all agree."""
    topology = Topology(
        world_size=world_size, compute_device=device.type, hbm_cap=memory_bytes if device.type == "cuda" else None,
        ddr_cap=memory_bytes,
    )
    planner = EmbeddingShardingPlanner(
        topology=topology, constraints=constraints_for(tables_of(model), device, shard_min_bytes, allowed)
    )
    if group is None:
        return planner.plan(model, sharders)
    return planner.collective_plan(model, sharders, group)


def describe(sharding_plan: ShardingPlan) -> dict[str, dict[str, Any]]:
    """The plan as JSON: per table, its sharding type, compute kernel and shards (offsets, sizes, rank)."""
    out: dict[str, dict[str, Any]] = {}
    for module_path, module_plan in sharding_plan.plan.items():
        for table, spec in module_plan.items():  # type: ignore[union-attr]
            shards = []
            if spec.sharding_spec is not None:
                for shard in spec.sharding_spec.shards:  # type: ignore[union-attr]
                    shards.append({
                        "offsets": list(shard.shard_offsets), "sizes": list(shard.shard_sizes),
                        "placement": str(shard.placement),
                    })  # fmt: skip
            out[f"{module_path}.{table}" if module_path else table] = {
                "sharding_type": spec.sharding_type, "compute_kernel": spec.compute_kernel, "ranks": spec.ranks,
                "shards": shards,
            }  # fmt: skip
    return out
