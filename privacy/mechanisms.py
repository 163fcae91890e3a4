"""The noise: OpenDP's Laplace mechanism on a vector of floats under the L1 distance.

Nothing here draws noise by hand. OpenDP samples the Laplace noise exactly (no floating-point attack on the
low bits) and its privacy map says what epsilon a measurement spends for a given input distance; the
charge recorded in the ledger is that map's answer, not our own arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import opendp.prelude as dp

dp.enable_features("contrib")

MECHANISM = "opendp.laplace (vector, L1)"


@dataclass(frozen=True)
class Calibrated:
    """A measurement with the scale chosen for a target epsilon, and what its privacy map certifies."""

    size: int
    sensitivity: float
    scale: float
    epsilon: float  # the map's answer at `sensitivity`
    delta: float
    measurement: dp.Measurement

    def __call__(self, values: np.ndarray) -> np.ndarray:
        vector = [float(v) for v in np.asarray(values, dtype=float).ravel()]
        if len(vector) != self.size:
            raise ValueError(f"expected {self.size} values, got {len(vector)}")
        return np.asarray(self.measurement(vector), dtype=float)


def laplace(*, size: int, sensitivity: float, epsilon: float) -> Calibrated:
    """A Laplace measurement over `size` values whose L1 distance between neighbours is at most
    `sensitivity`, spending at most `epsilon` (the smallest scale OpenDP certifies at that epsilon)."""
    if size < 1 or sensitivity <= 0 or epsilon <= 0:
        raise ValueError("size, sensitivity and epsilon must be positive")
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False), size=size), dp.l1_distance(T=float)
    # binary_search_param finds the smallest scale whose map stays within epsilon, so the float rounding
    # OpenDP's map accounts for is inside the claim.
    scale = dp.binary_search_param(
        lambda s: dp.m.make_laplace(*space, scale=s), d_in=float(sensitivity), d_out=float(epsilon)
    )
    measurement = dp.m.make_laplace(*space, scale=scale)
    certified = float(measurement.map(float(sensitivity)))
    if certified > epsilon:
        raise AssertionError(f"OpenDP certifies {certified}, more than the {epsilon} asked for")
    return Calibrated(size=size, sensitivity=float(sensitivity), scale=float(scale), epsilon=certified,
                      delta=0.0, measurement=measurement)
