"""A statistical privacy audit: an empirical lower bound on the epsilon a mechanism really spends.

Run the mechanism many times on two neighbouring inputs (one end customer more in one) and look for an
output event S whose probabilities differ. For an epsilon-DP mechanism P[M(D') in S] <= e^epsilon P[M(D) in S]
for every S, so ln(lower bound of P[M(D') in S] / upper bound of P[M(D) in S]) is a lower bound on the true
epsilon. The events are thresholds on the output projected on the direction the neighbour moves it; the
threshold is chosen on one half of the runs and measured on the other, so the choice does not flatter the
bound. Both probabilities get one-sided Clopper-Pearson bounds, at alpha/4 each since both directions of
the shift are tried: the reported lower bound holds with probability at least 1 - alpha. A correct
mechanism's bound stays below its claim; a broken one (too little noise) is caught once the runs are enough
to see it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta


@dataclass(frozen=True)
class AuditResult:
    epsilon_lower_bound: float
    claimed_epsilon: float
    confidence: float
    trials: int

    @property
    def consistent(self) -> bool:
        return self.epsilon_lower_bound <= self.claimed_epsilon


def _cp_lower(k: int, n: int, alpha: float) -> float:
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def _cp_upper(k: int, n: int, alpha: float) -> float:
    return 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))


def _bound(hits_far: int, hits_near: int, n: int, alpha: float) -> float:
    low = _cp_lower(hits_far, n, alpha)
    high = _cp_upper(hits_near, n, alpha)
    return math.log(low / high) if low > 0 else 0.0


def _best_threshold(far: np.ndarray, near: np.ndarray, alpha: float) -> float:
    candidates = np.quantile(np.concatenate([far, near]), np.linspace(0.5, 0.9995, 200))
    n = len(far)
    scores = [_bound(int((far >= t).sum()), int((near >= t).sum()), n, alpha) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def audit(
    mechanism: Callable[[np.ndarray], np.ndarray], near: np.ndarray, far: np.ndarray, *,
    claimed_epsilon: float, trials: int, alpha: float = 0.05, seed: int = 0,
) -> AuditResult:
    """Audit `mechanism` on the neighbouring inputs `near` and `far` (`trials` runs on each)."""
    near = np.asarray(near, dtype=float)
    far = np.asarray(far, dtype=float)
    direction = np.sign(far - near)
    if not direction.any():
        raise ValueError("the neighbouring inputs are equal: nothing to audit")
    # Project both ways: the event may sit on either side of the shift.
    projections = {sign: ([], []) for sign in (1.0, -1.0)}
    for _ in range(trials):
        out_near, out_far = mechanism(near), mechanism(far)
        for sign, (near_runs, far_runs) in projections.items():
            near_runs.append(sign * float(direction @ out_near))
            far_runs.append(sign * float(direction @ out_far))
    rng = np.random.default_rng(seed)
    order = rng.permutation(trials)
    pick, measure = order[: trials // 2], order[trials // 2 :]
    # Two directions, two one-sided intervals each: alpha/4 per interval keeps the confidence at 1 - alpha.
    cp_alpha = alpha / 4
    best = 0.0
    for sign, (near_runs, far_runs) in projections.items():
        # sign +1: "far" is the likelier side of a high threshold; sign -1 swaps the roles of the inputs.
        a, b = (np.asarray(far_runs), np.asarray(near_runs))
        if sign < 0:
            a, b = np.asarray(near_runs), np.asarray(far_runs)
        threshold = _best_threshold(a[pick], b[pick], cp_alpha)
        m = len(measure)
        bound = _bound(int((a[measure] >= threshold).sum()), int((b[measure] >= threshold).sum()), m, cp_alpha)
        best = max(best, bound)
    return AuditResult(epsilon_lower_bound=best, claimed_epsilon=claimed_epsilon, confidence=1 - alpha,
                       trials=trials)
