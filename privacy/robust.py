"""Robust aggregation across shops: each shop's per-key count is clipped to [0, shop_cap], and the shops'
values are combined by a trimmed mean (`trim` shops cut from each end), so that one shop cannot drag a
released aggregate far (docs/privacy.md, "Poisoning").

Why the bounds hold: sorting is non-expansive in L1 (changing one input by d moves the sorted vector by at
most d in L1), so the sum of the kept middle `n - 2 trim` order statistics moves by at most d and their
mean by at most d / (n - 2 trim).
- One shop replaced by an arbitrary sender: its clipped value moves by at most shop_cap, so the aggregate
  moves by at most `poisoning_bound = shop_cap / (n - 2 trim)`.
- One end customer added or removed: one shop's count moves by at most max_per_key on each of at most
  max_keys keys, so the aggregate vector moves by at most `max_keys * max_per_key / (n - 2 trim)` in L1:
  the sensitivity the mechanism's noise is scaled to.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import trim_mean


def trimmed_shop_mean(per_shop: np.ndarray, *, shop_cap: float, trim: int) -> np.ndarray:
    """Per key (columns), the trimmed mean of the shops' (rows) values clipped to [0, shop_cap]."""
    values = np.asarray(per_shop, dtype=float)
    n = values.shape[0]
    if n - 2 * trim < 1:
        raise ValueError(f"{n} shops cannot be trimmed by {trim} on each side")
    # NaN and infinities from a broken sender become the nearest bound, like any other out-of-range value.
    clipped = np.clip(np.nan_to_num(values, nan=0.0, posinf=shop_cap, neginf=0.0), 0.0, shop_cap)
    # scipy cuts int(proportion * n) values from each end: give it exactly `trim`.
    return np.atleast_1d(trim_mean(clipped, (trim + 0.5) / n, axis=0))


def poisoning_bound(*, n_shops: int, shop_cap: float, trim: int) -> float:
    """How far one shop, whatever it sends, can move any one key's aggregate."""
    return shop_cap / (n_shops - 2 * trim)


def aggregate_sensitivity(*, n_shops: int, trim: int, l1_per_customer: float) -> float:
    """L1 change of the aggregate vector when one end customer is added or removed.

    With a relative slack of 1e-9: the float trimmed mean can move a few ulps more than the exact bound,
    and the noise must cover what the computed values can do, not what exact arithmetic would."""
    return l1_per_customer / (n_shops - 2 * trim) * (1 + 1e-9)


def trim_for(n_shops: int, fraction: float) -> int:
    """Shops cut from each end: `fraction` of them, at least one once there are three."""
    if n_shops < 3:
        return 0
    return max(1, min(int(fraction * n_shops), (n_shops - 1) // 2))
