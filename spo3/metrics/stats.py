"""Statistics for honest comparisons: binomial and bootstrap intervals, the interquartile mean, seed bands.

The aggregate comparisons follow rliable (Agarwal et al., "Deep RL at the edge of the statistical precipice",
NeurIPS 2021): scores are arrays shaped ``(n_runs, n_tasks)``; the point estimate is the interquartile mean over
all entries; intervals are 95% percentile intervals of a *stratified* bootstrap, which resamples runs with
replacement independently within each task; the probability of improvement P(X > Y) is, per task, the
Mann-Whitney statistic over all pairs of runs (ties count 1/2), averaged over tasks. This module is the one place
these are computed; ``paper_figures`` and the notebooks call it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = [
    "bootstrap_ci",
    "first_crossing",
    "iqm",
    "mean_ci_over_seeds",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "ratio_ci",
    "stratified_bootstrap_ci",
    "wilson_interval",
]


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


def _as_runs_by_tasks(scores) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"scores must be shaped (n_runs, n_tasks) with n_runs >= 1, got shape {x.shape}")
    return x


def _resample(x: np.ndarray, rng: np.random.Generator, reps: int) -> np.ndarray:
    """``(reps, n_runs, n_tasks)``: runs drawn with replacement independently within each task (the strata)."""
    n, m = x.shape
    return x[rng.integers(0, n, size=(reps, n, m)), np.arange(m)]


def _percentile(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    with np.errstate(invalid="ignore"):  # infinite statistics (a threshold never reached) give inf or nan bounds
        lo, hi = np.quantile(stats, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)


def stratified_bootstrap_ci(
    scores, statistic=iqm, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(point, low, high)``: ``statistic`` of ``scores`` ``(n_runs, n_tasks)`` (a 1-D array is one task) with
    its stratified-bootstrap percentile interval (rliable's ``get_interval_estimates``)."""
    x = _as_runs_by_tasks(scores)
    boot = _resample(x, np.random.default_rng(seed), reps)
    stats = np.array([statistic(b) for b in boot])
    return (float(statistic(x)), *_percentile(stats, confidence))


def bootstrap_ci(
    values: Sequence[float], statistic=np.mean, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (one stratum: e.g. per-seed final success)."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    return stratified_bootstrap_ci(values, statistic, n_boot, confidence, seed)[1:]


def probability_of_improvement(x, y) -> float:
    """P(X > Y) as rliable defines it: per task, the share of run pairs (i, j) with x_i > y_j, ties counting 1/2,
    averaged over tasks. ``x`` is ``(n, n_tasks)``, ``y`` is ``(m, n_tasks)``."""
    x, y = _as_runs_by_tasks(x), _as_runs_by_tasks(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} tasks but y has {y.shape[1]}")
    diff = x[:, None, :] - y[None, :, :]
    per_task = ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(0, 1))
    return float(per_task.mean())


def probability_of_improvement_ci(x, y, reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(P(X > Y), low, high)``, the interval from resampling the runs of X and of Y independently per task."""
    x, y = _as_runs_by_tasks(x), _as_runs_by_tasks(y)
    rng = np.random.default_rng(seed)
    bx, by = _resample(x, rng, reps), _resample(y, rng, reps)
    stats = np.array([probability_of_improvement(a, b) for a, b in zip(bx, by)])
    return (probability_of_improvement(x, y), *_percentile(stats, confidence))


def ratio_ci(x: Sequence[float], y: Sequence[float], reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(mean(x) / mean(y), low, high)`` with the seeds of ``x`` and ``y`` resampled independently (e.g. unique
    states of 3SPO over GRPO at equal budget). Infinite values (a threshold never reached) propagate."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    bx = x[rng.integers(0, len(x), size=(reps, len(x)))].mean(1)
    by = y[rng.integers(0, len(y), size=(reps, len(y)))].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = bx / by
        point = x.mean() / y.mean()
    return (float(point), *_percentile(stats, confidence))


def first_crossing(xs: Sequence[float], ys: Sequence[float], threshold: float) -> float:
    """The first ``x`` at which ``y >= threshold`` (``inf`` if never): e.g. environment steps to 60% success."""
    for x, y in zip(xs, ys):
        if y >= threshold:
            return float(x)
    return math.inf


def mean_ci_over_seeds(curves: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t interval across seeds of curves shaped ``(n_seeds, n_points)``."""
    from scipy import stats

    curves = np.asarray(curves, dtype=np.float64)
    mean = curves.mean(0)
    if curves.shape[0] < 2:
        return mean, mean.copy(), mean.copy()
    half = stats.t.ppf(0.5 + confidence / 2, curves.shape[0] - 1) * curves.std(0, ddof=1) / math.sqrt(curves.shape[0])
    return mean, mean - half, mean + half
