"""Bits every trainer shares: device choice, seeding, progress reporting."""

from __future__ import annotations

import functools
import inspect
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch

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


def batches(n: int, batch_size: int, rng: np.random.Generator, shuffle: bool = True) -> list[np.ndarray]:
    order = rng.permutation(n) if shuffle else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


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
