"""Bits every trainer shares: device choice, seeding, progress reporting."""

from __future__ import annotations

import functools
import inspect
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from training.models.two_tower import BatchShare

ProgressFn = Callable[[dict], None]
F = TypeVar("F", bound=Callable[..., Any])


def pick_device(device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


class Progress:
    """Throttled progress reports: the Celery task stores them and the dashboard draws the loss
    curve, so a handful per epoch is plenty."""

    def __init__(self, fn: ProgressFn | None, stage: str, total_steps: int, every: int = 10) -> None:
        self.fn = fn
        self.stage = stage
        self.total = max(total_steps, 1)
        self.every = max(every, 1)
        self.started = time.perf_counter()

    def __call__(self, epoch: int, step: int, loss: float, force: bool = False, **extra: float) -> None:
        if self.fn is None or not (force or step % self.every == 0):
            return
        self.fn(
            {
                "stage": self.stage,
                "epoch": epoch,
                "step": step,
                "loss": float(loss),
                "percent": round(100.0 * min(step, self.total) / self.total, 2),
                "elapsed": round(time.perf_counter() - self.started, 3),
                **extra,
            }
        )


class Parallel(Protocol):
    """What a trainer asks of the processes it trains with when it is one of several (torchrun): the
    implementation is training/distributed/parallel.py. Alone, the trainers use the identity below."""

    def wrap(self, model: torch.nn.Module, *, lr: float) -> torch.nn.Module: ...

    def fused_optimizers(self, wrapped: torch.nn.Module) -> list[torch.optim.Optimizer]: ...

    def local(self, rows: np.ndarray) -> np.ndarray: ...

    def full_state(self, module: torch.nn.Module) -> dict[str, torch.Tensor]: ...

    def share(self, rows: int) -> BatchShare: ...

    def gather(self, tensor: torch.Tensor, share: BatchShare) -> torch.Tensor: ...


_PARALLEL: ContextVar[Parallel | None] = ContextVar("training_parallel", default=None)


@contextmanager
def training_in_parallel(parallel: Parallel) -> Iterator[None]:
    """The trainers called inside train as one process of `parallel` (same code, same arguments)."""
    token = _PARALLEL.set(parallel)
    try:
        yield
    finally:
        _PARALLEL.reset(token)


def wrap_for_training(model: torch.nn.Module, *, lr: float) -> torch.nn.Module:
    """The module to call for training steps: `model` itself alone, under torchrun TorchRec's
    DistributedModelParallel around it (sharded tables, data-parallel dense part)."""
    parallel = _PARALLEL.get()
    return model if parallel is None else parallel.wrap(model, lr=lr)


def across_processes() -> Parallel | None:
    """The processes this one shares each batch with (under torchrun), for a loss that couples the rows of
    a batch (the retrieval softmax's in-batch negatives); None alone."""
    return _PARALLEL.get()


def fused_optimizers(wrapped: torch.nn.Module) -> list[torch.optim.Optimizer]:
    """Optimizers applied inside the backward pass of sharded tables (none alone): step them with the
    others so learning-rate schedules reach them."""
    parallel = _PARALLEL.get()
    return [] if parallel is None else parallel.fused_optimizers(wrapped)


def full_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s state on the CPU, with every sharded table gathered whole."""
    parallel = _PARALLEL.get()
    if parallel is not None:
        return parallel.full_state(module)
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def batches(n: int, batch_size: int, rng: np.random.Generator, shuffle: bool = True) -> list[np.ndarray]:
    """Minibatches of `n` rows. Under torchrun every process draws the same order and keeps its share of
    each batch, so the processes together take the one-process batches (gradients are averaged)."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    out = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    parallel = _PARALLEL.get()
    return out if parallel is None else [parallel.local(b) for b in out]


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first `warmup` share of steps, then cosine decay towards zero.

    Written out rather than OneCycleLR, which fails when a tiny data set gives an empty warm-up.
    """
    total = max(int(total_steps), 1)
    ramp = max(int(total * warmup), 1)

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        progress = min((step - ramp) / max(total - ramp, 1), 1.0)
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` intra-op threads, then restore the previous setting (None: leave it alone).

    Measured on the 2-core CPU machine while other processes were busy: one MovieLens epoch of the
    two-tower model took 3 s with one thread and 25 s with two, because idle-spinning OpenMP
    threads fight the neighbours for the same cores. Small embedding models gain little from
    intra-op threads anyway; scale out with more worker processes instead.
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(int(n), 1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def uses_torch_threads(fn: F) -> F:
    """Run a trainer under its keyword-only `num_threads` argument (see `torch_threads`)."""
    default = inspect.signature(fn).parameters["num_threads"].default

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch_threads(kwargs.get("num_threads", default)):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
