"""Sample-ratio mismatch: do the variants hold the shares of units their weights promise?

A chi-square goodness-of-fit test of the units per variant against total x weight (scipy.stats.chisquare).
A mismatch means the assignment or the exposure logging is broken (a variant that crashes before logging,
bots filtered from one arm), and every comparison of the experiment is then suspect. The warning fires at
p < 0.001, as GrowthBook, Statsig and Eppo do: the check runs on every analysis, so it must rarely cry wolf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

SRM_P_THRESHOLD = 0.001


def srm_p_values(counts: ArrayLike, weights: ArrayLike) -> NDArray[np.float64]:
    """p-values for units per variant along the last axis (one row per experiment), weights summing to 1
    or not (they are normalised)."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    expected = counts.sum(axis=-1, keepdims=True) * (weights / weights.sum())
    return np.asarray(sps.chisquare(counts, expected, axis=-1).pvalue)


@dataclass(frozen=True)
class SampleRatioCheck:
    observed: dict[str, float]
    expected: dict[str, float]
    chi2: float
    p_value: float
    threshold: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.threshold


def sample_ratio_check(counts: Mapping[str, float], weights: Mapping[str, float],
                       threshold: float = SRM_P_THRESHOLD) -> SampleRatioCheck:
    """The check over the variants named in weights (a variant missing from counts has zero units)."""
    names = [name for name, weight in weights.items() if weight > 0]
    stray = [name for name in counts if name not in names and counts[name] > 0]
    if stray:
        # Units in a variant that should receive none: the assignment is broken, whatever the test says.
        raise ValueError(f"units in variants without traffic weight: {', '.join(sorted(stray))}")
    observed = np.array([float(counts.get(name, 0)) for name in names])
    share = np.array([float(weights[name]) for name in names])
    expected = observed.sum() * share / share.sum()
    if observed.sum() == 0:
        return SampleRatioCheck(dict(zip(names, observed.tolist(), strict=True)),
                                dict(zip(names, expected.tolist(), strict=True)), 0.0, 1.0, threshold)
    result = sps.chisquare(observed, expected)
    return SampleRatioCheck(dict(zip(names, observed.tolist(), strict=True)),
                            dict(zip(names, expected.tolist(), strict=True)),
                            float(result.statistic), float(result.pvalue), threshold)
