"""Which variant a unit (customer, else session) sees: deterministic, sticky, and free of database reads.

Two independent hashes (SHA-256 of salt and unit id, first 8 bytes as a number in [0, 1)):

1. The shop's layer: hash("layer:<shop>", unit) -> one of SLOTS slots. Each running or paused experiment
   owns a disjoint range of slots ([slot_start, slot_end), reserved at its first start), so a unit is in at
   most one experiment of the shop: concurrent experiments never share a unit (mutual exclusion). A unit in
   no experiment's range gets the shop's default serving.
2. Inside the experiment: hash(experiment salt, unit) -> u. u < holdout_share: the holdout (default
   serving, labelled "<id>:holdout", out of the analysis); else the rest of [0, 1) is cut by the variants'
   cumulative weights.

The same unit and salt always give the same answer, in every process, with no state: sticky. The
recorded exposure is the answer's `variant`: "<experiment id>:<variant name>".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SLOTS = 1000
HOLDOUT = "holdout"


def unit_hash(salt: str, unit: str) -> float:
    """A uniform number in [0, 1) from salt and unit."""
    digest = hashlib.sha256(f"{salt}\x00{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def unit_of(customer_id: str | None, session_id: str | None) -> str | None:
    """The randomisation unit, spelled as recs.attribution.stats groups served answers."""
    if customer_id:
        return f"c:{customer_id}"
    if session_id:
        return f"s:{session_id}"
    return None


def layer_slot(tenant_id: int, unit: str) -> int:
    return int(unit_hash(f"layer:{int(tenant_id)}", unit) * SLOTS)


@dataclass(frozen=True)
class RunningVariant:
    name: str
    weight: float
    config: dict


@dataclass(frozen=True)
class RunningExperiment:
    """What the hot path needs of a running experiment (loaded once per generation, experiments.running)."""

    id: int
    salt: str
    slot_start: int
    slot_end: int
    holdout_share: float
    variants: tuple[RunningVariant, ...]

    def covers(self, slot: int) -> bool:
        return self.slot_start <= slot < self.slot_end

    def choose(self, unit: str) -> RunningVariant | None:
        """The unit's variant; None: the holdout."""
        u = unit_hash(self.salt, unit)
        if u < self.holdout_share:
            return None
        # Rescale the rest of [0, 1) so the variants split it by weight.
        point = (u - self.holdout_share) / (1 - self.holdout_share) * sum(v.weight for v in self.variants)
        upper = 0.0
        for variant in self.variants:
            upper += variant.weight
            if point < upper:
                return variant
        return self.variants[-1]  # rounding at the very top


@dataclass(frozen=True)
class Assignment:
    experiment_id: int
    variant: str  # a variant's name, or HOLDOUT
    config: dict  # the variant's serving configuration ({} for the holdout: the shop's default)

    @property
    def label(self) -> str:
        """The served answer's `variant` field."""
        return f"{self.experiment_id}:{self.variant}"


def assign(tenant_id: int, running: tuple[RunningExperiment, ...], customer_id: str | None,
           session_id: str | None) -> Assignment | None:
    """The unit's assignment among the shop's running experiments, or None (no unit, or in none)."""
    unit = unit_of(customer_id, session_id)
    if unit is None or not running:
        return None
    slot = layer_slot(tenant_id, unit)
    for experiment in running:
        if experiment.covers(slot):
            variant = experiment.choose(unit)
            if variant is None:
                return Assignment(experiment.id, HOLDOUT, {})
            return Assignment(experiment.id, variant.name, variant.config)
    return None


def label(experiment_id: int, variant: str) -> str:
    return f"{experiment_id}:{variant}"
