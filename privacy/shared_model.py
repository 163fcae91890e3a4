"""The shared cold-start model: a product's content (title tokens, brand, category path) -> an item embedding,
trained across the opted-in shops with Opacus DP-SGD (docs/privacy.md, "The shared cold-start model").

The privacy unit is the end customer of a shop. Each customer is one example: the content of at most
`max_items` products they interacted with (their most recent, chosen from their own events alone). An
example's loss asks the mean content of the customer's other products to point at one of them rather than at
`negatives` products drawn from the catalogs. Steps take Poisson samples of customers (rate `sample_rate`);
Opacus clips each customer's whole gradient to `max_grad_norm` and adds Gaussian noise to the sum, and its
PRV accountant gives the noise multiplier for the target (epsilon, delta) and certifies what was spent. So
adding or removing one customer (with all their products) is what the guarantee covers.

Nothing here touches the database: `privacy.shared_release` collects the shops' data and keeps the ledger.
The model holds one table of hashed content tokens (`n_buckets` x `dim`); no token text, product or count
of any shop is stored with it.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from opacus import GradSampleModule
from opacus.accountants import PRVAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DPOptimizer
from torch import nn

ACCOUNTANT = "opacus DP-SGD, PRV accountant"


class ContentEncoder(nn.Module):
    """Hashed content tokens -> item embedding: the mean of the tokens' rows (nn.EmbeddingBag, 1-D input
    plus offsets: the form Opacus computes per-sample gradients for)."""

    def __init__(self, n_buckets: int, dim: int) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(n_buckets, dim, mode="mean")
        nn.init.normal_(self.bag.weight, std=0.1)

    def forward(self, tokens: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.bag(tokens, offsets)


def token_ids(tokens: Sequence[str], n_buckets: int) -> list[int]:
    """Content tokens -> rows of the table (crc32: the same in every process and every shop)."""
    return sorted({zlib.crc32(t.encode()) % n_buckets for t in tokens})


@dataclass(frozen=True)
class SharedParams:
    epsilon: float  # the DP-SGD run's target, charged to every contributing shop
    delta: float
    n_buckets: int = 1 << 12
    dim: int = 16
    max_items: int = 20  # products one customer contributes (their most recent)
    sample_rate: float = 0.05  # Poisson rate per customer and step
    epochs: int = 8  # steps = epochs / sample_rate
    max_grad_norm: float = 1.0
    negatives: int = 3
    temperature: float = 0.2
    lr: float = 0.05
    physical_batch: int = 256  # rows per backward pass (memory: rows x n_buckets x dim floats)
    min_shops: int = 3

    @property
    def steps(self) -> int:
        return max(1, round(self.epochs / self.sample_rate))


@dataclass(frozen=True)
class Baskets:
    """The training data, already hashed: `item_tokens[i]` are catalog item i's token ids (the catalogs of the
    contributing shops, one after the other); `customers[c]` the item indices customer c contributes."""

    item_tokens: list[list[int]]
    customers: list[np.ndarray]

    def usable(self) -> Baskets:
        """Customers with at least two products (one to predict, one to predict it from)."""
        return Baskets(self.item_tokens, [c for c in self.customers if len(c) >= 2])


@dataclass
class FitResult:
    weights: np.ndarray  # n_buckets x dim, float32
    epsilon: float  # what the accountant certifies (inf without DP)
    delta: float
    noise_multiplier: float
    steps: int
    losses: list[float] = field(default_factory=list)


def _bags(token_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [len(t) for t in token_lists]
    offsets = torch.tensor([0, *np.cumsum(lengths)[:-1].tolist()], dtype=torch.long) if lengths else torch.zeros(0)
    flat = torch.tensor([t for tokens in token_lists for t in tokens], dtype=torch.long)
    return flat, offsets.long()


def row_losses(model: nn.Module, data: Baskets, rows: list[int], params: SharedParams,
               rng: np.random.Generator) -> torch.Tensor:
    """One loss per customer of `rows` (Opacus clips the gradient of each one's term)."""
    context, target = [], []
    for c in rows:
        items = data.customers[c]
        pick = int(rng.integers(len(items)))
        # The distinct tokens of the other products: Opacus's EmbeddingBag per-sample gradient adds a repeated
        # index of one bag once only (tests/privacy/test_shared_model.py checks the gradients are exact).
        # Row 0 stands in for an empty bag.
        context.append(sorted({t for i in np.delete(items, pick) for t in data.item_tokens[i]}) or [0])
        target.append(data.item_tokens[items[pick]] or [0])
    u = F.normalize(model(*_bags(context)), dim=-1)
    scores = [(u * F.normalize(model(*_bags(target)), dim=-1)).sum(-1)]
    n_items = len(data.item_tokens)
    for _ in range(params.negatives):
        drawn = rng.integers(n_items, size=len(rows))
        scores.append((u * F.normalize(model(*_bags([data.item_tokens[i] or [0] for i in drawn])), dim=-1)).sum(-1))
    logits = torch.stack(scores, dim=1) / params.temperature
    return F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long), reduction="none")


def fit(data: Baskets, params: SharedParams, *, private: bool = True, seed: int = 0) -> FitResult:
    """Train the encoder on `data`. `private=False` trains without clipping or noise: only the benchmark's
    reference (epsilon infinity) does that; nothing non-private is ever stored or shared."""
    data = data.usable()
    n = len(data.customers)
    if n == 0:
        raise ValueError("no customer with two products: nothing to learn from")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ContentEncoder(params.n_buckets, params.dim)
    steps = params.steps
    noise = 0.0
    if private:
        accountant = PRVAccountant()
        noise = get_noise_multiplier(target_epsilon=params.epsilon, target_delta=params.delta,
                                     sample_rate=params.sample_rate, steps=steps, accountant="prv")
        module: nn.Module = GradSampleModule(model, loss_reduction="sum")
        # Adam after the noise: post-processing of the privatised gradient, and indifferent to its scale.
        optimizer = DPOptimizer(
            torch.optim.Adam(module.parameters(), lr=params.lr), noise_multiplier=noise,
            max_grad_norm=params.max_grad_norm, expected_batch_size=max(1, round(n * params.sample_rate)),
            loss_reduction="sum",
        )
        optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=params.sample_rate))
    else:
        module = model
        optimizer = torch.optim.Adam(module.parameters(), lr=params.lr)
    losses = []
    for _ in range(steps):
        # Poisson sampling: each customer independently, as the accountant assumes.
        chosen = np.flatnonzero(rng.random(n) < params.sample_rate).tolist()
        losses.append(_step(module, optimizer, data, chosen, params, rng, private))
    weights = model.bag.weight.detach().cpu().numpy().astype(np.float32)
    spent = accountant.get_epsilon(delta=params.delta) if private else math.inf
    return FitResult(weights=weights, epsilon=float(spent), delta=params.delta if private else 0.0,
                     noise_multiplier=float(noise), steps=steps, losses=losses)


def _step(module: nn.Module, optimizer: torch.optim.Optimizer, data: Baskets, chosen: list[int],
          params: SharedParams, rng: np.random.Generator, private: bool) -> float:
    """One logical step over the sampled customers, in physical batches: DP-SGD clips per customer in each
    and adds the noise once, on the last (Opacus's skip-step accumulation)."""
    chunks = [chosen[i:i + params.physical_batch] for i in range(0, len(chosen), params.physical_batch)]
    total = 0.0
    if not chunks:
        if private:  # an empty sample still takes its noisy step: the accountant counted it
            for p in module.parameters():
                p.grad_sample = torch.zeros((0, *p.shape))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return total
    for i, rows in enumerate(chunks):
        loss = row_losses(module, data, rows, params, rng).sum()
        loss.backward()
        total += float(loss.detach())
        if private:
            optimizer.signal_skip_step(do_skip=i < len(chunks) - 1)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    if not private:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return total / len(chosen)


def embed(weights: np.ndarray, token_lists: list[list[int]]) -> np.ndarray:
    """Unit item embeddings of products given as token-id lists (the model's forward in NumPy: a mean of rows)."""
    out = np.zeros((len(token_lists), weights.shape[1]), dtype=np.float32)
    for i, tokens in enumerate(token_lists):
        out[i] = weights[tokens or [0]].mean(axis=0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def to_bytes(weights: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(weights, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(bytes(blob)), allow_pickle=False)
