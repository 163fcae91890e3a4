"""A trainer's process under torchrun: the `training.trainers.common.Parallel` the trainers ask for.

Every process runs the same trainer code on the same data with the same seed, so they draw the same batch
order; each keeps its share of every batch. The model goes into TorchRec's DistributedModelParallel with the
planner's plan (training/distributed/planning.py): large tables are sharded and trained by an optimizer
fused into the backward pass (FBGEMM's; on CPU it offers Adagrad and SGD, not Adam, so sharded tables use
Adagrad there and Adam on a GPU), small tables and the dense layers are data-parallel (gradients averaged,
the trainer's own Adam). The trained state is gathered whole on every process, so what follows (candidate
generation, evaluation, the artifacts) is the one-process code on the one-process format.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
from torchrec.distributed.model_parallel import DistributedModelParallel
from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward

from training.distributed import planning
from training.models.two_tower import BatchShare

# FBGEMM's Adagrad takes steps that shrink as squared gradients accumulate; it needs a larger rate than
# Adam's to move a table as far. A starting point, not tuned here.
ADAGRAD_LR_SCALE = 10.0


@torch.no_grad()
def load_full_state(module: nn.Module, full: dict[str, torch.Tensor]) -> None:
    """Copy whole (unsharded) tensors into `module`'s state in place: a sharded table takes the rows and
    columns of its local shards (the offsets in each shard's ShardedTensor metadata), the rest whole."""
    for key, value in module.state_dict().items():
        source = full[key]
        if isinstance(value, ShardedTensor):
            for shard in value.local_shards():
                spans = tuple(
                    slice(offset, offset + size)
                    for offset, size in zip(shard.metadata.shard_offsets, shard.metadata.shard_sizes, strict=True)
                )
                shard.tensor.copy_(source[spans])
        else:
            value.copy_(source)


class ShardedTraining:
    """One process of a torchrun group (the process group is initialised by the caller)."""

    def __init__(
        self,
        *,
        device: torch.device,
        memory_bytes: int,
        shard_min_bytes: int,
        sharding_types: tuple[str, ...] = (),
    ) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = device
        self.memory_bytes, self.shard_min_bytes = memory_bytes, shard_min_bytes
        self.sharding_types = sharding_types
        self.plans: list[dict[str, Any]] = []

    def _fused_optimizer(self, lr: float) -> tuple[type[torch.optim.Optimizer], dict[str, float]]:
        if self.device.type == "cuda":
            return torch.optim.Adam, {"lr": lr}
        return torch.optim.Adagrad, {"lr": lr * ADAGRAD_LR_SCALE}

    def wrap(self, model: nn.Module, *, lr: float) -> nn.Module:
        large = {f"{t.name}.weight" for t in planning.tables_of(model) if t.bytes >= self.shard_min_bytes}
        params = [p for name, p in model.named_parameters() if name.rsplit("embedding_bags.", 1)[-1] in large]
        if params:
            optimizer, kwargs = self._fused_optimizer(lr)
            apply_optimizer_in_backward(optimizer, params, kwargs)
        sharders = [EmbeddingBagCollectionSharder()]
        sharding_plan = planning.plan(
            model, sharders, world_size=self.world_size, device=self.device, memory_bytes=self.memory_bytes,
            shard_min_bytes=self.shard_min_bytes, allowed=self.sharding_types, group=dist.GroupMember.WORLD,
        )
        self.plans.append({"model": type(model).__name__, "tables": planning.describe(sharding_plan)})
        # Sharding builds new embedding kernels with fresh random rows (and draws them from the run's torch
        # generator): the model would lose its starting values (the seed's draws, a warm start) and every
        # later random draw (id dropout) would differ from one process's. Keep both.
        start = {key: value.detach().clone() for key, value in model.state_dict().items()}
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            wrapped = DistributedModelParallel(model, device=self.device, plan=sharding_plan, sharders=sharders)
        load_full_state(wrapped.module, start)
        return wrapped

    def fused_optimizers(self, wrapped: nn.Module) -> list[torch.optim.Optimizer]:
        fused = getattr(wrapped, "fused_optimizer", None)
        return [fused] if fused is not None and fused.param_groups else []

    def local(self, rows: np.ndarray) -> np.ndarray:
        # A batch smaller than the group goes whole to every process: no process meets an empty batch (for
        # the retrieval loss the pool then holds each positive once per process; the copies are masked as
        # accidental hits).
        if len(rows) < self.world_size:
            return rows
        return np.array_split(rows, self.world_size)[self.rank]

    def share(self, rows: int) -> BatchShare:
        """Every process's row count of the current batch (one small all_gather)."""
        counts = [torch.zeros(1, dtype=torch.long, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(counts, torch.tensor([rows], dtype=torch.long, device=self.device))
        return BatchShare(tuple(int(c) for c in counts), self.rank)

    def gather(self, tensor: torch.Tensor, share: BatchShare) -> torch.Tensor:
        """Every process's rows of `tensor`, in rank order. Gradients flow back to the process that owns the
        rows (torch.distributed.nn's all_gather: its backward sums what every process sends back). The
        collective takes equal shapes: the last batch of an epoch may split one row unevenly, so rows are
        padded to the largest share and the padding dropped."""
        longest = max(share.sizes)
        if len(tensor) < longest:
            tensor = torch.cat([tensor, tensor.new_zeros((longest - len(tensor), *tensor.shape[1:]))])
        if tensor.requires_grad:
            parts = list(dist_nn.all_gather(tensor))
        else:
            parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
            dist.all_gather(parts, tensor.contiguous())
        return torch.cat([part[:size] for part, size in zip(parts, share.sizes, strict=True)])

    def full_state(self, module: nn.Module) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for key, value in module.state_dict().items():
            if isinstance(value, ShardedTensor):
                whole = torch.empty(value.size(), dtype=value.dtype)
                value.gather(dst=0, out=whole if self.rank == 0 else None)
                dist.broadcast(whole, src=0)
                out[key] = whole
            else:
                out[key] = value.detach().cpu().clone()
        return out
