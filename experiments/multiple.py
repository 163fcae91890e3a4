"""Corrections for testing several metrics and variants at once (statsmodels' multipletests).

Holm controls the family-wise error rate (the chance of any false winner) at alpha; Benjamini-Hochberg
controls the expected share of false winners among the declared ones, and rejects more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from statsmodels.stats.multitest import multipletests

Correction = Literal["holm", "bh", "none"]
_METHODS = {"holm": "holm", "bh": "fdr_bh"}


def adjust_p_values(p_values: Sequence[float], method: Correction = "holm",
                    alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """The adjusted p-values and which hypotheses are rejected at alpha; NaN (no estimate yet) stays NaN and
    is never rejected, and does not count as a test."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = p.copy()
    known = np.isfinite(p)
    if method == "none" or not known.any():
        return adjusted.tolist(), [bool(x) for x in known & (p <= alpha)]
    if method not in _METHODS:
        raise ValueError(f"unknown correction {method!r}; one of holm, bh, none")
    reject = np.zeros(p.shape, dtype=bool)
    reject[known], adjusted[known], _, _ = multipletests(p[known], alpha=alpha, method=_METHODS[method])
    return adjusted.tolist(), reject.tolist()
