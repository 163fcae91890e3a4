"""The statistical privacy audit of the release mechanism (OpenDP's Laplace at the calibrated scale).

Each audit runs the mechanism on two neighbouring inputs (one end customer more in a middle shop, the
worst case for the trimmed mean) and asserts that the empirical lower bound on epsilon, which holds with 95%
confidence, stays below the claimed epsilon. The control shows the audit has the power to catch a mechanism
that adds a quarter of the noise it should.
"""

from __future__ import annotations

import numpy as np
import pytest

from privacy.audit import audit
from privacy.bounding import Bounds, bounded_counts
from privacy.mechanisms import laplace
from privacy.params import ReleaseParams
from privacy.releases import aggregate
from privacy.robust import aggregate_sensitivity

TRIALS = 3000
PARAMS = ReleaseParams(epsilon=1.0, bounds=Bounds(max_keys=1, max_per_key=1), shop_cap=50.0, min_shops=3,
                       trim_fraction=0.1, max_keys_released=100)


def _neighbours() -> tuple[np.ndarray, np.ndarray, float]:
    """The robust means of five shops, with and without one more customer in the middle shop."""
    keys = ["gtin:1", "gtin:2", "gtin:3"]
    shops = [[(f"{s}-{c}", keys[c % 3]) for c in range(3 * s)] for s in range(5)]
    catalogs = [set(keys)] * 5
    _, near, trim = aggregate(catalogs, [bounded_counts(rows, PARAMS.bounds) for rows in shops], PARAMS)
    shops[2] = [("newcomer", "gtin:2"), *shops[2]]
    _, far, _ = aggregate(catalogs, [bounded_counts(rows, PARAMS.bounds) for rows in shops], PARAMS)
    sensitivity = aggregate_sensitivity(n_shops=5, trim=trim, l1_per_customer=PARAMS.bounds.l1_sensitivity)
    # The neighbour is a worst case: the bound is reached.
    assert np.abs(far - near).sum() == pytest.approx(sensitivity, rel=1e-8)
    return near, far, sensitivity


def test_the_release_mechanism_spends_no_more_than_it_claims():
    near, far, sensitivity = _neighbours()
    mechanism = laplace(size=len(near), sensitivity=sensitivity, epsilon=PARAMS.epsilon)
    result = audit(mechanism, near, far, claimed_epsilon=mechanism.epsilon, trials=TRIALS)
    assert mechanism.epsilon <= PARAMS.epsilon
    assert result.consistent, result
    assert result.epsilon_lower_bound > 0.2  # the audit sees the shift it should


def test_the_audit_catches_a_mechanism_with_too_little_noise():
    near, far, sensitivity = _neighbours()
    broken = laplace(size=len(near), sensitivity=sensitivity / 4, epsilon=PARAMS.epsilon)
    result = audit(broken, near, far, claimed_epsilon=PARAMS.epsilon, trials=TRIALS)
    assert not result.consistent, result
