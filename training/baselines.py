"""Baselines the served pipeline has to beat: most-popular and implicit-feedback ALS.

ALS gets a fair chance: a grid over factors, regularisation, confidence scale and iterations tuned
on the validation split carved out of train (never on test), then refit on all of train.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from training.data import Interactions, validation_split
from training.evaluation import ScoreFn, evaluate_scores


def popularity_scorer(train: Interactions) -> ScoreFn:
    counts = torch.from_numpy(train.item_counts().astype(np.float32))
    return lambda customers: counts.expand(len(customers), -1)


def _confidence_matrix(train: Interactions, alpha: float) -> sp.csr_matrix:
    """Customer x item confidence 1 + alpha x (sum of event weights), as Hu et al. (2008)
    define it; `implicit` adds the 1 itself, so the matrix holds alpha x weight."""
    m = sp.csr_matrix(
        (alpha * train.weight.astype(np.float32), (train.customer, train.item)),
        shape=(train.n_customers, train.n_items),
    )
    m.sum_duplicates()
    return m


@dataclass
class ALSModel:
    customer_factors: np.ndarray
    item_factors: np.ndarray
    params: dict[str, Any]
    train_seconds: float
    grid: list[dict[str, Any]] = field(default_factory=list)

    def scorer(self) -> ScoreFn:
        u = torch.from_numpy(self.customer_factors)
        v = torch.from_numpy(self.item_factors)
        return lambda customers: u[torch.from_numpy(customers)] @ v.T


def fit_als(
    train: Interactions,
    *,
    factors: int = 64,
    regularization: float = 0.05,
    alpha: float = 1.0,
    iterations: int = 15,
    seed: int = 0,
    num_threads: int = 0,
) -> ALSModel:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    # implicit parallelises itself; a multi-threaded BLAS underneath only oversubscribes the cores.
    # Its warning about that (raised when the model is built) looks at every loaded BLAS, so the
    # limit is set and the warning silenced here.
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is configured to use", category=RuntimeWarning)
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=1.0,
            iterations=iterations,
            random_state=seed,
            num_threads=num_threads,
            calculate_training_loss=False,
        )
        model.fit(_confidence_matrix(train, alpha), show_progress=False)
    return ALSModel(
        customer_factors=np.ascontiguousarray(model.user_factors, dtype=np.float32),
        item_factors=np.ascontiguousarray(model.item_factors, dtype=np.float32),
        params={"factors": factors, "regularization": regularization, "alpha": alpha, "iterations": iterations},
        train_seconds=time.perf_counter() - started,
    )


# Centred on the region where a first, coarser grid peaked on MovieLens validation (few factors,
# strong regularisation, low confidence scale), with a step beyond it on every side.
DEFAULT_ALS_GRID: dict[str, list] = {
    "factors": [16, 32, 64, 128],
    "regularization": [0.1, 1.0, 10.0],
    "alpha": [0.25, 1.0, 4.0],
    "iterations": [15, 30],
}


def tune_als(
    train: Interactions,
    grid: dict[str, list] | None = None,
    *,
    validation_fraction: float = 0.2,
    seed: int = 0,
) -> ALSModel:
    """Grid search on the validation split (by NDCG@10), then refit the winner on all of train."""
    grid = grid or DEFAULT_ALS_GRID
    inner, val = validation_split(train, validation_fraction)
    results = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, values, strict=True))
        model = fit_als(inner, seed=seed, **params)
        metrics = evaluate_scores(model.scorer(), inner, val)
        results.append({**params, "val_ndcg@10": metrics["ndcg@10"]})
    best = max(results, key=lambda r: r["val_ndcg@10"])
    params = {k: best[k] for k in keys}
    final = fit_als(train, seed=seed, **params)
    final.grid = results
    return final
