"""The 3SPO state score (Eq. 1), adaptive rollout count (Eq. 3) and novelty weight omega(N) (Eq. 2).

Notation follows the paper (arXiv 2606.09961, Sec. 3): for a state s, ``N_total(s)`` is the number of finished
trajectories that passed through s, ``N_success(s)`` the number of those that succeeded and
``N_fail = N_total - N_success``. ``t`` is the 1-based count of trajectories folded into the statistics: a fresh
store has ``t = 1`` (so ``lambda(1) = 0``) and every recorded trajectory advances it by one.

All functions are vectorised: arguments broadcast against each other like numpy arrays, numpy in gives numpy out,
and torch tensors in give torch tensors out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from spo3.core._arrays import numpy_in_torch_out

__all__ = [
    "ScoreParams",
    "lambda_t",
    "novelty_weight",
    "num_rollouts",
    "num_rollouts_unchecked",
    "state_score",
    "state_score_unchecked",
]


@dataclass(frozen=True)
class ScoreParams:
    """Hyper-parameters of the state score, the rollout allocation and the novelty weight.

    Defaults are the paper's (upstream README and scripts: alpha 50, xi 10, zeta 0.1, omega_k 0.1, G_max 8).
    """

    alpha: float = 50.0
    """Annealing rate of lambda(t) = alpha * ln t (Eq. 1). Must be >= 0."""
    xi: int = 10
    """Truncation threshold on failures: a state is truncated once N_fail >= xi and SR <= zeta (Eq. 1). >= 1."""
    zeta: float = 0.1
    """Truncation threshold on the success rate SR (Eq. 1). In [0, 1]."""
    eps: float = 1e-6
    """Denominator guard in SR = N_success / (N_total + eps). > 0."""
    g_max: int = 8
    """Maximum number of rollouts at a state, G_max in n = ceil(G_max * S) (Eq. 3). >= 1."""
    omega_k: float = 0.1
    """Decay rate of the novelty weight omega(N) = 0.5 * exp(-omega_k * N) (Eq. 2; the paper's gamma). >= 0."""

    def __post_init__(self) -> None:
        checks = [
            ("alpha", self.alpha >= 0, "must be >= 0"),
            ("xi", self.xi >= 1, "must be >= 1"),
            ("zeta", 0.0 <= self.zeta <= 1.0, "must lie in [0, 1]"),
            ("eps", self.eps > 0, "must be > 0"),
            ("g_max", self.g_max >= 1, "must be >= 1"),
            ("omega_k", self.omega_k >= 0, "must be >= 0"),
        ]
        for name, ok, rule in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
                raise ValueError(f"ScoreParams.{name}={value!r} {rule}")
        for name in ("xi", "g_max"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ValueError(f"ScoreParams.{name}={getattr(self, name)!r} must be an integer")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PARAMS = ScoreParams()
_TINY = np.finfo(np.float64).tiny


@numpy_in_torch_out
def lambda_t(t: Any, alpha: float) -> np.ndarray:
    """Annealing coefficient lambda(t) = alpha * ln(t) of Eq. 1.

    Args:
      t: array of shape ``(...)``, the 1-based trajectory count; every entry must be >= 1.
      alpha: annealing rate (>= 0).

    Returns:
      float64 array of the shape of ``t``.
    """
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 1) or np.any(~np.isfinite(t)):
        raise ValueError(f"lambda_t: t must be a finite count >= 1 (1-based), got min {t.min() if t.size else t}")
    return _lambda(t, alpha)


def _lambda(t: Any, alpha: float) -> Any:
    return alpha * np.log(t)


@numpy_in_torch_out
def state_score(n_total: Any, n_success: Any, t: Any, params: ScoreParams = DEFAULT_PARAMS) -> np.ndarray:
    """Dynamic state score S(s) of Eq. 1.

    S = 1 where ``n_total == 0`` (unseen state). Otherwise, with SR = n_success / (n_total + eps) and
    n_fail = n_total - n_success::

        S = exp(-lambda(t) * SR) * 1{ n_fail < xi  or  SR > zeta }

    so S = 0 exactly on truncated states (n_fail >= xi and SR <= zeta).

    Args:
      n_total: array ``(...)`` of non-negative visit counts.
      n_success: array ``(...)`` with ``0 <= n_success <= n_total``.
      t: scalar or array ``(...)``, the 1-based trajectory count (>= 1).
      params: score hyper-parameters.

    Returns:
      float64 array of the broadcast shape, values in [0, 1].
    """
    n_total = np.asarray(n_total, dtype=np.float64)
    n_success = np.asarray(n_success, dtype=np.float64)
    if np.any(n_total < 0) or np.any(n_success < 0) or np.any(n_success > n_total):
        raise ValueError("state_score: counts must satisfy 0 <= n_success <= n_total")
    lambda_t(t, params.alpha)  # checks t
    n_total, n_success, t = np.broadcast_arrays(n_total, n_success, np.asarray(t, dtype=np.float64))
    return np.asarray(state_score_unchecked(n_total, n_success, t, params))


def state_score_unchecked(n_total: np.ndarray, n_success: np.ndarray, t: Any, params: ScoreParams) -> np.ndarray:
    """The arithmetic of :func:`state_score` (Eq. 1) alone: no input checks, no conversions, numpy only.

    :func:`state_score` checks its inputs and calls this; inner loops that hold inputs known to be valid call it
    directly (the theory simulator, once per visit), so every score still comes from this one formula.

    Args:
      n_total: float64 array ``(...)`` of visit counts, ``>= 0``.
      n_success: float64 array of the same shape, with ``0 <= n_success <= n_total``.
      t: float64 scalar or array broadcasting to that shape, finite and ``>= 1``.
      params: score hyper-parameters.

    Returns:
      float64 array of the broadcast shape, values in [0, 1]; invalid inputs give unspecified numbers, not errors.
    """
    # S = exp(-lambda * SR) * 1{N_fail < xi or SR > zeta}, computed in place in two work arrays (the inner loop
    # of the theory simulator spends most of its time here).
    shape = np.shape(n_total)
    sr = np.add(n_total, params.eps, out=np.empty(shape))
    np.divide(n_success, sr, out=sr)  # SR = N_success / (N_total + eps)
    work = np.subtract(n_total, n_success, out=np.empty(shape))  # N_fail
    keep = np.less(work, params.xi)
    keep |= np.greater(sr, params.zeta)
    np.multiply(-_lambda(t, params.alpha), sr, out=work)
    np.exp(work, out=work)
    # Floor at the smallest normal float: exp() underflows to 0 for lambda * SR > ~708, and a kept state must
    # never look truncated (S == 0 <=> n == 0 is the truncation signal of Eq. 3). (A masked copy is max(S, tiny)
    # at a third of np.maximum's cost.)
    np.copyto(work, _TINY, where=work < _TINY)
    # An unseen state (n_total == 0, hence n_success == 0) needs no case of its own: SR = 0, N_fail = 0 < xi and
    # exp(-lambda * 0) = 1 exactly, so S = 1. Multiplying by the 0/1 mask is exact (S is finite and >= 0).
    return np.multiply(work, keep, out=work)


@numpy_in_torch_out
def num_rollouts(score: Any, g_max: int) -> np.ndarray:
    """Adaptive rollout count of Eq. 3: n = ceil(G_max * S).

    Args:
      score: array ``(...)`` of state scores in [0, 1].
      g_max: G_max >= 1.

    Returns:
      int64 array of the shape of ``score`` with values in [0, g_max]; 0 exactly where score == 0.
    """
    score = np.asarray(score, dtype=np.float64)
    if np.any((score < 0) | (score > 1)) or np.any(np.isnan(score)):
        raise ValueError("num_rollouts: scores must lie in [0, 1]")
    return num_rollouts_unchecked(score, g_max)


def num_rollouts_unchecked(score: np.ndarray, g_max: int) -> np.ndarray:
    """The arithmetic of :func:`num_rollouts` (Eq. 3) alone, for float64 scores known to lie in [0, 1] (the theory
    simulator's inner loop; see :func:`state_score_unchecked`). int64 array of the shape of ``score``."""
    # min() guards against G * S rounding above G for S == 1 - ulp; ceil of any positive score is >= 1.
    return np.minimum(np.ceil(g_max * score), g_max).astype(np.int64)


@numpy_in_torch_out
def novelty_weight(n_total: Any, omega_k: float) -> np.ndarray:
    """Novelty weight omega(N) = 0.5 * exp(-omega_k * N) of Eq. 2.

    Args:
      n_total: array ``(...)`` of visit counts N_total(s_t) of the state the step leaves.
      omega_k: decay rate (>= 0).

    Returns:
      float64 array of the shape of ``n_total``, values in (0, 0.5].
    """
    return 0.5 * np.exp(-omega_k * np.asarray(n_total, dtype=np.float64))
