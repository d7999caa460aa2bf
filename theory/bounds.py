"""Closed-form bounds of the per-state bandit claims (L1, L2, T1-T4) and the confidence limits used to test them.

The statements are *our formalisation* (``../shared/reference/theory.md`` Part B; the paper's own theorems were not
available). Every bound is a Hoeffding inequality, P(|p_hat - p| >= eta) <= 2 exp(-2 N eta^2) for the mean of N
Bernoulli samples, combined with union bounds. Bounds that can exceed 1 are returned clipped to [0, 1] where they
bound a probability.

All functions broadcast over numpy arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from spo3.core.score import ScoreParams

__all__ = [
    "clopper_pearson",
    "concentration_bound",
    "concentration_samples",
    "adaptive_concentration_failure",
    "share_bound",
    "truncation_at_bound",
    "identification_error_bound",
    "identification_samples",
    "order_error_bound",
    "integer_separation_margin",
    "binary_allocation_t",
    "false_truncation_bound",
    "hopeless_survival_bound",
    "recoverable_rollouts",
]


def _check_gap(gap: Any, name: str = "gap") -> np.ndarray:
    gap = np.asarray(gap, dtype=np.float64)
    if np.any(gap <= 0) or np.any(gap > 1):
        raise ValueError(f"{name} must lie in (0, 1], got {gap}")
    return gap


def concentration_bound(n: Any, eta: Any) -> np.ndarray:
    """Hoeffding: P(|p_hat - p| >= eta) <= 2 exp(-2 N eta^2) for the mean of N Bernoulli samples (L1).

    Args:
      n: array ``(...)`` of sample counts N >= 0.
      eta: array ``(...)`` of deviations eta > 0.

    Returns:
      float64 array of the broadcast shape, clipped to [0, 1].
    """
    n = np.asarray(n, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    return np.minimum(1.0, 2.0 * np.exp(-2.0 * n * eta**2))


def concentration_samples(gap: Any, k: int, i: Any) -> np.ndarray:
    """L1: samples per arm, N >= (8 / Delta^2) ln(2 K i^2), after which E_i = {all |p_hat - p| < Delta / 4} holds
    with probability >= 1 - i^-2 (for a fixed, non-adaptive N).

    Args:
      gap: Delta in (0, 1], scalar or array ``(...)``.
      k: number of arms K >= 1.
      i: visit index i >= 1, scalar or array ``(...)``.

    Returns:
      float64 array of the broadcast shape (not rounded).
    """
    gap = _check_gap(gap)
    i = np.asarray(i, dtype=np.float64)
    return 8.0 / gap**2 * np.log(2.0 * k * i**2)


def adaptive_concentration_failure(gap: Any, i: Any) -> np.ndarray:
    """P(E_i^c) when the sample counts are chosen adaptively but are all >= the L1 count of
    :func:`concentration_samples`.

    L1's 1 - i^-2 holds for a fixed N. Under an adaptive allocator N is random, so a union bound over every
    N >= n0 is needed: K * sum_{N >= n0} 2 exp(-2 N (Delta/4)^2) = i^-2 / (1 - exp(-Delta^2 / 8)). This is the
    bound that the T1 simulation can be held to (our correction of L1; the paper's proof was not available).

    Args:
      gap: Delta in (0, 1].
      i: visit index i >= 1. K drops out: n0 = (8/Delta^2) ln(2K i^2) makes 2K exp(-n0 Delta^2/8) = i^-2.

    Returns:
      float64 array, clipped to [0, 1].
    """
    gap = _check_gap(gap)
    i = np.asarray(i, dtype=np.float64)
    return np.minimum(1.0, i**-2.0 / -np.expm1(-(gap**2) / 8.0))


def share_bound(i: Any, alpha: float, gap: Any) -> np.ndarray:
    """L2: on E_i, every off-target arm a has allocation share pi_i(a) <= S_i(a) / S_i(a_w) <= i^(-alpha Delta / 2).

    Uses lambda_i = alpha ln i, i.e. the score clock t = i (one pull per visit, see :mod:`theory.bandit`).

    Args:
      i: visit index i >= 1, array ``(...)``.
      alpha: annealing rate alpha >= 0.
      gap: Delta in (0, 1].

    Returns:
      float64 array of the broadcast shape, in (0, 1].
    """
    gap = _check_gap(gap)
    i = np.asarray(i, dtype=np.float64)
    return i ** (-alpha * gap / 2.0)


def truncation_at_bound(n: Any, margin: Any, xi: int) -> np.ndarray:
    """P(a state with success probability p = zeta + margin is truncated at its N-th visit) <= e^(-2 N margin^2),
    and 0 for N < xi (truncation needs N_fail >= xi).

    This is the term the score adds to the identification and ordering bounds (T2, T3): a truncated arm has S = 0
    and cannot win on score. For margin <= 0 the state is not learnable and the term is 1 from N = xi on.

    Args:
      n: visits N, array ``(...)``.
      margin: p - zeta.
      xi: failure threshold xi >= 1.

    Returns:
      float64 array of the broadcast shape, in [0, 1].
    """
    n = np.asarray(n, dtype=np.float64)
    margin = np.asarray(margin, dtype=np.float64)
    tail = np.where(margin > 0, np.exp(-2.0 * n * np.maximum(margin, 0.0) ** 2), 1.0)
    return np.where(n >= xi, tail, 0.0)


def identification_error_bound(n: Any, gap: Any, k: int) -> np.ndarray:
    """T2: with N samples of every arm, P(argmin_a p_hat(a) != a_w) <= (K - 1) exp(-N Delta^2 / 2) (ties are errors).

    Hoeffding on the N paired differences of a_w and each other arm a (values in [-1, 1], mean Delta_a >= Delta),
    union bound over the K - 1 arms. Our formalisation (theory.md) writes the looser 2K exp(-N Delta^2 / 2) from
    |p_hat - p| < Delta/2 on all K arms; the sharper form is tested, which implies it. Identifying a_w from the
    scores instead of p_hat adds the truncation term of :func:`truncation_at_bound` for a_w.

    Args:
      n: samples per arm, array ``(...)``.
      gap: Delta in (0, 1].
      k: number of arms K >= 2.

    Returns:
      float64 array, clipped to [0, 1].
    """
    gap = _check_gap(gap)
    n = np.asarray(n, dtype=np.float64)
    return np.minimum(1.0, (k - 1) * np.exp(-n * gap**2 / 2.0))


def identification_samples(gap: Any, k: Any, delta: Any) -> np.ndarray:
    """T2: N >= (2 / Delta^2) ln((K - 1) / delta) samples per arm make :func:`identification_error_bound` <= delta
    (theory.md: (2 / Delta^2) ln(2K / delta)).

    Args:
      gap: Delta in (0, 1].
      k: number of arms K >= 2 (array allowed).
      delta: error probability in (0, 1).

    Returns:
      float64 array of the broadcast shape (not rounded; 0 where (K - 1) <= delta).
    """
    gap = _check_gap(gap)
    ratio = (np.asarray(k, dtype=np.float64) - 1.0) / np.asarray(delta, dtype=np.float64)
    return 2.0 / gap**2 * np.log(np.maximum(ratio, 1.0))


def order_error_bound(n: Any, gap: Any) -> np.ndarray:
    """T3: for two states with p1 < p2 = p1 + Delta and N visits each, P(p_hat_1 >= p_hat_2) <= exp(-N Delta^2 / 2).

    One Hoeffding bound on the N paired differences (theory.md writes 2 exp(-N Delta^2 / 2)). S is strictly
    decreasing in the success rate, so for untruncated states this bounds P(S_1 <= S_2); state 1 being truncated
    (S_1 = 0) adds :func:`truncation_at_bound`.

    Args:
      n: visits per state, array ``(...)``.
      gap: Delta in (0, 1].

    Returns:
      float64 array, clipped to [0, 1].
    """
    gap = _check_gap(gap)
    n = np.asarray(n, dtype=np.float64)
    return np.minimum(1.0, np.exp(-n * gap**2 / 2.0))


def integer_separation_margin(lam: Any, p1: Any, gap: Any, g_max: int) -> np.ndarray:
    """T3: G e^(-lambda (p1 + Delta/4)) (1 - e^(-lambda Delta/2)), the expected gap in G*S between two states whose
    estimates sit at their worst on E (p_hat_1 = p1 + Delta/4, p_hat_2 = p2 - Delta/4).

    n_1 = ceil(G S_1) can exceed n_2 = ceil(G S_2) reliably only where this margin is >= 1; it falls below 1 once
    lambda p1 exceeds about ln G.

    Args:
      lam: lambda >= 0, array ``(...)``.
      p1: success probability of the harder state.
      gap: Delta = p2 - p1 in (0, 1].
      g_max: G_max >= 1.

    Returns:
      float64 array of the broadcast shape.
    """
    gap = _check_gap(gap)
    lam = np.asarray(lam, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    return g_max * np.exp(-lam * (p1 + gap / 4.0)) * -np.expm1(-lam * gap / 2.0)


def binary_allocation_t(params: ScoreParams) -> float:
    """The trajectory count from which Eq. 3 can only give n in {0, 1, G_max} (our result, exact).

    A kept state that has succeeded at least once has SR >= sigma = min(zeta, 1 / (xi + eps)): either
    N_fail >= xi and then SR > zeta, or N_fail <= xi - 1 and N_success >= 1, so SR >= 1 / (xi + eps). Its score
    is then S = t^(-alpha SR) <= t^(-alpha sigma), and n = ceil(G S) <= 1 as soon as
    t >= G^(1 / (alpha sigma)). Kept states that never succeeded have S = 1 (n = G), truncated ones S = 0 (n = 0).
    With the defaults (alpha 50, xi 10, zeta 0.1, G 8) this is t >= 8^(1/5) = 1.52, i.e. every t >= 2.

    Args:
      params: score hyper-parameters.

    Returns:
      the threshold t (``inf`` when alpha = 0 or zeta = 0, where no such t exists).
    """
    sigma = min(params.zeta, 1.0 / (params.xi + params.eps))
    if params.alpha == 0 or sigma == 0:
        return math.inf
    return float(params.g_max ** (1.0 / (params.alpha * sigma)))


def false_truncation_bound(xi: Any, p: Any, zeta: Any) -> np.ndarray:
    """T4: a learnable state (p > zeta) is ever truncated with probability
    <= sum_{N >= xi} e^(-2 N (p - zeta)^2) = e^(-2 xi (p-zeta)^2) / (1 - e^(-2 (p-zeta)^2)).

    Truncation needs N_fail >= xi (hence N >= xi) and SR <= zeta at some N; Hoeffding bounds each N, a union bound
    sums them.

    Args:
      xi: failure threshold xi >= 1, array ``(...)``.
      p: success probability, > zeta.
      zeta: success-rate threshold.

    Returns:
      float64 array, clipped to [0, 1].
    """
    margin = np.asarray(p, dtype=np.float64) - np.asarray(zeta, dtype=np.float64)
    if np.any(margin <= 0):
        raise ValueError(f"false_truncation_bound needs p > zeta, got p - zeta = {margin}")
    xi = np.asarray(xi, dtype=np.float64)
    return np.minimum(1.0, np.exp(-2.0 * xi * margin**2) / -np.expm1(-2.0 * margin**2))


def hopeless_survival_bound(n: Any, p: Any, zeta: Any, xi: int) -> np.ndarray:
    """T4: a hopeless state (p < zeta) is still untruncated after N visits with probability
    <= P(Binomial(N, 1 - p) < xi) + e^(-2 N (zeta - p)^2).

    Surviving N visits needs, at visit N, fewer than xi failures or SR > zeta. For N >= xi / (1 - p) the first
    term vanishes quickly, leaving theory.md's e^(-2 N (zeta - p)^2).

    Args:
      n: visit counts N >= 0, array ``(...)``.
      p: success probability, < zeta.
      zeta: success-rate threshold.
      xi: failure threshold.

    Returns:
      float64 array, clipped to [0, 1].
    """
    margin = np.asarray(zeta, dtype=np.float64) - np.asarray(p, dtype=np.float64)
    if np.any(margin <= 0):
        raise ValueError(f"hopeless_survival_bound needs p < zeta, got zeta - p = {margin}")
    n = np.asarray(n, dtype=np.float64)
    too_few_failures = stats.binom.cdf(xi - 1, n, 1.0 - np.asarray(p, dtype=np.float64))
    return np.minimum(1.0, too_few_failures + np.exp(-2.0 * n * margin**2))


def clopper_pearson(successes: Any, trials: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) two-sided confidence interval of a binomial proportion.

    Args:
      successes: array ``(...)`` of counts k with 0 <= k <= n.
      trials: array ``(...)`` of trial counts n >= 1.
      confidence: coverage of the interval, in (0, 1).

    Returns:
      ``(lower, upper)``, float64 arrays of the broadcast shape; lower = 0 where k = 0 and upper = 1 where k = n.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"clopper_pearson needs 0 <= successes <= trials and trials >= 1, got {k} / {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"clopper_pearson: confidence must lie in (0, 1), got {confidence}")
    tail = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):
        lower = np.where(k == 0, 0.0, stats.beta.ppf(tail, k, n - k + 1))
        upper = np.where(k == n, 1.0, stats.beta.ppf(1.0 - tail, k + 1, n - k))
    return lower, upper


def recoverable_rollouts(visits: Any, xi: int, rho: float) -> np.ndarray:
    """V3: rollouts a never-succeeding state receives over ``visits`` visits under recoverable truncation.

    It is rolled out at each of its first xi visits, is truncated from then on, and each later visit retries it
    with probability rho xi / N (N its rollouts so far). In the mean-field limit dN/dV = rho xi / N, so
    N_V^2 = xi^2 + 2 rho xi (V - xi): the state costs O(sqrt(rho xi V)) rollouts, against V for a kept state and xi
    for absorbing truncation.

    Args:
      visits: array ``(...)`` of visit counts V >= xi.
      xi: the truncation threshold of Eq. 1.
      rho: the retry scale in (0, 1].

    Returns:
      float64 array of the shape of ``visits``.
    """
    visits = np.asarray(visits, dtype=np.float64)
    return np.sqrt(xi**2 + 2.0 * rho * xi * np.maximum(visits - xi, 0.0))
