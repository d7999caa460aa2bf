"""Statistics for honest comparisons: binomial and bootstrap intervals, the interquartile mean, seed bands."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "iqm", "mean_ci_over_seeds", "wilson_interval"]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (exact-enough at small n, never outside [0, 1])."""
    if n == 0:
        return (0.0, 1.0)
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all entries (rliable's aggregate_iqm): the mean of the middle 50%."""
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = len(x)
    if n == 0:
        return float("nan")
    cut = int(math.floor(0.25 * n))
    return float(x[cut : n - cut].mean())


def bootstrap_ci(
    values: Sequence[float], statistic=np.mean, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (e.g. per-seed final success rates)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)])
    lo, hi = np.quantile(stats, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def mean_ci_over_seeds(curves: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t interval across seeds of curves shaped ``(n_seeds, n_points)``."""
    from scipy import stats

    curves = np.asarray(curves, dtype=np.float64)
    mean = curves.mean(0)
    if curves.shape[0] < 2:
        return mean, mean.copy(), mean.copy()
    half = stats.t.ppf(0.5 + confidence / 2, curves.shape[0] - 1) * curves.std(0, ddof=1) / math.sqrt(curves.shape[0])
    return mean, mean - half, mean + half
