"""The hyper-parameters a tenant may set for a training run: a whitelist with types and ranges.

Anything else is an error rather than silently ignored: a typo (`epoch` for `epochs`) must not train
a default model the shop believes it configured. Ranges keep one run within what a worker can do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    kind: type  # int or float
    lo: float
    hi: float
    help: str = ""

    def describe(self) -> str:
        return f"{'an integer' if self.kind is int else 'a number'} from {self.lo:g} to {self.hi:g}"


RETRIEVAL: dict[str, Param] = {
    "dim": Param(int, 4, 512, "embedding size of both towers"),
    "hidden": Param(int, 8, 2048, "hidden layer width of the towers"),
    "epochs": Param(int, 1, 100),
    "batch_size": Param(int, 16, 65536),
    "lr": Param(float, 1e-6, 1.0, "learning rate"),
    "weight_decay": Param(float, 0.0, 1.0),
    "temperature": Param(float, 0.01, 10.0, "softmax temperature of the in-batch loss"),
    "sampled_negatives": Param(int, 0, 65536, "items drawn uniformly per batch as extra negatives"),
    "history_len": Param(int, 1, 1000, "recent interactions the customer tower sees"),
    "recency_decay": Param(float, 0.0, 1.0, "weight decay per older history item"),
    "future_window": Param(int, 1, 100, "how many events ahead the customer embedding learns to predict (1: the next)"),
}
RANKER: dict[str, Param] = {
    "embedding_dim": Param(int, 2, 256),
    "epochs": Param(int, 1, 100),
    "batch_size": Param(int, 16, 65536),
    "lr": Param(float, 1e-6, 1.0, "learning rate"),
    "weight_decay": Param(float, 0.0, 1.0),
}
TOP_LEVEL: dict[str, Param] = {
    "num_candidates": Param(int, 10, 5000, "retrieval candidates the ranker scores"),
    "seed": Param(int, 0, 2**31 - 1),
}
SECTIONS: dict[str, dict[str, Param]] = {"retrieval": RETRIEVAL, "ranker": RANKER}


class InvalidHyperparameters(ValueError):
    """`errors` maps a dotted path (`retrieval.dim`) to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def _value(raw: Any, param: Param) -> tuple[Any, str | None]:
    # bool is an int in Python; `true` is never a meaningful epoch count.
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None, f"Must be {param.describe()}."
    if param.kind is int:
        if isinstance(raw, float) and not raw.is_integer():
            return None, f"Must be {param.describe()}."
        value: Any = int(raw)
    else:
        value = float(raw)
        if not math.isfinite(value):
            return None, f"Must be {param.describe()}."
    if not param.lo <= value <= param.hi:
        return None, f"Must be {param.describe()}."
    return value, None


def _clean_flat(raw: dict, spec: dict[str, Param], prefix: str, errors: dict[str, list[str]]) -> dict:
    cleaned = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        param = spec.get(key) if isinstance(key, str) else None
        if param is None:
            errors[path] = [f"Unknown hyper-parameter. Allowed here: {', '.join(sorted(spec))}."]
            continue
        cleaned[key], message = _value(value, param)
        if message:
            errors[path] = [message]
    return cleaned


def clean_hyperparameters(raw: Any) -> dict:
    """The validated hyper-parameters (`{"retrieval": {...}, "ranker": {...}, "num_candidates": n, "seed": n}`,
    every part optional); raises InvalidHyperparameters naming each bad key."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidHyperparameters({"": ["Must be an object."]})
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    top = {k: v for k, v in raw.items() if k not in SECTIONS}
    cleaned.update(_clean_flat(top, TOP_LEVEL, "", errors))
    for section, spec in SECTIONS.items():
        if section not in raw:
            continue
        if not isinstance(raw[section], dict):
            errors[section] = ["Must be an object."]
            continue
        cleaned[section] = _clean_flat(raw[section], spec, f"{section}.", errors)
    if errors:
        raise InvalidHyperparameters(errors)
    return cleaned


def allowed() -> dict[str, Any]:
    """The whitelist, for documentation: `{"retrieval": {"dim": "an integer from 4 to 512"}, ...}`."""
    described = {name: p.describe() for name, p in TOP_LEVEL.items()}
    for section, spec in SECTIONS.items():
        described[section] = {name: p.describe() for name, p in spec.items()}
    return described
