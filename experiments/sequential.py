"""The always-valid test: a normal-mixture confidence sequence for a difference (or lift) estimate.

For an estimate with standard error `se`, z = estimate / se, and the mixture of the Gaussian likelihood
ratio over effects drawn from N(0, tau^2) is

    Lambda = (1 + r)^(-1/2) * exp(z^2 r / (2 (1 + r))),   r = tau^2 / se^2.

Under "no difference" Lambda is a nonnegative martingale that starts at 1, so by Ville's inequality it
ever reaches 1/alpha with probability at most alpha, however often the analysis looks. Inverting
Lambda < 1/alpha gives the boundary

    |z| < z*(r) = sqrt( (1 + r) / r * (2 ln(1/alpha) + ln(1 + r)) ),

and estimate +- z*(r) se is a confidence sequence: it covers the true effect at every look at once with
probability at least 1 - alpha. This is the two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe
& Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2),
Section 3 (with intrinsic time V = 1/se^2 and mixture precision rho = 1/tau^2:
|S| < sqrt((V + rho) ln((V + rho) / (rho alpha^2)))), used with a plug-in variance as the asymptotic
confidence sequence of Waudby-Smith, Arnold, Wu, Ramdas & Howard (2024), "Time-uniform central limit
theory and asymptotic confidence sequences", Ann. Statist. 52(6). GrowthBook and Eppo ship the same test.

r grows with the units seen: r = c * n / planned_n, which makes the boundary tightest at the planned sample
size; c = 2 ln(1/alpha) + ln(1 + 2 ln(1/alpha)) is Howard et al.'s approximate optimum. The tuning changes
power, never validity, but it must be fixed before the first look (the planned size, not the data).
"""

from __future__ import annotations

import numpy as np

from experiments.stats import Value


def _tuning(alpha: float) -> float:
    log_inv = 2 * np.log(1 / alpha)
    return float(log_inv + np.log1p(log_inv))


def mixture_ratio(n: Value, planned_n: float, alpha: float) -> Value:
    """r = tau^2 / se^2 after n units, for a mixture tuned to be tightest at planned_n units."""
    if planned_n <= 0:
        raise ValueError("planned_n must be positive")
    return _tuning(alpha) * np.asarray(n, dtype=np.float64) / planned_n


def boundary_z(n: Value, planned_n: float, alpha: float = 0.05) -> Value:
    """z*(r): the confidence sequence is estimate +- z* se, and |z| >= z* rejects "no difference"."""
    r = mixture_ratio(n, planned_n, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.sqrt((1 + r) / r * (2 * np.log(1 / alpha) + np.log1p(r)))
    return float(z) if np.ndim(z) == 0 else z


def always_valid_p_value(z: Value, n: Value, planned_n: float, alpha: float = 0.05) -> Value:
    """min(1, 1 / Lambda): at most alpha exactly when |z| >= z*(r) for that alpha.

    A page that shows it over time shows its running minimum (a later look never undoes an earlier
    crossing); the mixture is tuned with the experiment's alpha, fixed at its start.
    """
    r = mixture_ratio(n, planned_n, alpha)
    log_lambda = -0.5 * np.log1p(r) + np.square(z) * r / (2 * (1 + r))
    p = np.exp(-np.maximum(log_lambda, 0.0))
    p = np.where(np.isfinite(p), p, np.nan)
    return float(p) if np.ndim(p) == 0 else p
