"""The 3SPO state score (Eq. 1), adaptive rollout count (Eq. 3) and novelty weight omega(N) (Eq. 2), and the
allocation variants beyond the paper (``theory/THEORY.md``, "Beyond the paper"): a sibling floor, forced
exploration, recoverable truncation and a per-state score clock. Every variant's default is the paper's rule.

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
    "SCORE_CLOCKS",
    "TRUNCATION_RULES",
    "ScoreParams",
    "forced_rollouts",
    "lambda_t",
    "novelty_weight",
    "num_rollouts",
    "num_rollouts_unchecked",
    "retry_probability",
    "state_score",
    "state_score_unchecked",
    "under_explored",
]

SCORE_CLOCKS = ("trajectories", "visits")
TRUNCATION_RULES = ("absorbing", "recoverable")


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
    min_siblings: int = 1
    """Not in the paper: a kept (S > 0) state gets n = max(min_siblings, ceil(G_max * S)), so that with >= 2 every
    expansion is a sibling comparison. 1 is the paper's Eq. 3. In [1, g_max]."""
    score_clock: str = "trajectories"
    """Not in the paper: the t of lambda(t) = alpha ln t. trajectories: the global trajectory count (the paper);
    visits: 1 + N_total(s), a clock per state."""

    def __post_init__(self) -> None:
        if self.score_clock not in SCORE_CLOCKS:
            raise ValueError(f"ScoreParams.score_clock={self.score_clock!r} must be one of {list(SCORE_CLOCKS)}")
        self._check_numbers()
        if not 1 <= self.min_siblings <= self.g_max:
            raise ValueError(f"ScoreParams.min_siblings={self.min_siblings!r} must lie in [1, g_max={self.g_max}]")

    def _check_numbers(self) -> None:
        checks = [
            ("alpha", self.alpha >= 0, "must be >= 0"),
            ("xi", self.xi >= 1, "must be >= 1"),
            ("zeta", 0.0 <= self.zeta <= 1.0, "must lie in [0, 1]"),
            ("eps", self.eps > 0, "must be > 0"),
            ("g_max", self.g_max >= 1, "must be >= 1"),
            ("omega_k", self.omega_k >= 0, "must be >= 0"),
            ("min_siblings", self.min_siblings >= 1, "must be >= 1"),
        ]
        for name, ok, rule in checks:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
                raise ValueError(f"ScoreParams.{name}={value!r} {rule}")
        for name in ("xi", "g_max", "min_siblings"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ValueError(f"ScoreParams.{name}={getattr(self, name)!r} must be an integer")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PARAMS = ScoreParams()
_TINY = np.finfo(np.float64).tiny
_NO_UNDERFLOW = 700.0  # exp(-x) >= e^-700 ~ 1e-304 > _TINY for every x <= this


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

    so S = 0 exactly on truncated states (n_fail >= xi and SR <= zeta). With ``params.score_clock == "visits"``
    (not the paper) the clock is per state, t = 1 + n_total, and the ``t`` argument is ignored.

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


def state_score_unchecked(
    n_total: np.ndarray, n_success: np.ndarray, t: Any, params: ScoreParams, scratch: np.ndarray | None = None
) -> np.ndarray:
    """The arithmetic of :func:`state_score` (Eq. 1) alone: no input checks, no conversions, numpy only.

    :func:`state_score` checks its inputs and calls this; inner loops that hold inputs known to be valid call it
    directly (the theory simulator, once per visit), so every score still comes from this one formula.

    Args:
      n_total: float64 array ``(...)`` of visit counts, ``>= 0``.
      n_success: float64 array of the same shape, with ``0 <= n_success <= n_total``.
      t: float64 scalar or array broadcasting to that shape, finite and ``>= 1``.
      params: score hyper-parameters.
      scratch: optional float64 ``(2, ...)`` work space for a caller that scores arrays of one shape again and
        again (the simulator): the result is then ``scratch[1]``, overwritten by the next call with it.

    Returns:
      float64 array of the broadcast shape, values in [0, 1]; invalid inputs give unspecified numbers, not errors.
    """
    # S = exp(-lambda * SR) * (1 - 1{N_fail >= xi and SR <= zeta}), computed in place in two work arrays (the inner loop
    # of the theory simulator spends most of its time here).
    shape = np.shape(n_total)
    sr, work = (scratch[0], scratch[1]) if scratch is not None else (np.empty(shape), np.empty(shape))
    np.add(n_total, params.eps, out=sr)
    np.divide(n_success, sr, out=sr)  # SR = N_success / (N_total + eps)
    np.subtract(n_total, n_success, out=work)  # N_fail
    truncated = np.greater_equal(work, params.xi)
    truncated &= np.less_equal(sr, params.zeta)
    clock = np.add(n_total, 1.0) if params.score_clock == "visits" else t  # per-state clock (not the paper)
    lam = _lambda(clock, params.alpha)
    np.multiply(-lam, sr, out=work)
    np.exp(work, out=work)
    # Floor at the smallest normal float: exp() underflows to 0 for lambda * SR > ~708, and a kept state must
    # never look truncated (S == 0 <=> n == 0 is the truncation signal of Eq. 3). (A masked copy is max(S, tiny)
    # at a third of np.maximum's cost.) SR < 1, so while lambda <= 700 every S >= e^-700 > tiny: no floor to apply.
    if (lam > _NO_UNDERFLOW) if np.ndim(lam) == 0 else (lam > _NO_UNDERFLOW).any():
        np.copyto(work, _TINY, where=work < _TINY)
    # An unseen state (n_total == 0, hence n_success == 0) needs no case of its own: SR = 0, N_fail = 0 < xi and
    # exp(-lambda * 0) = 1 exactly, so S = 1. Zeroing the truncated entries equals multiplying by the 0/1 mask
    # (S is finite and >= 0), at half the cost.
    work[truncated] = 0.0
    return work


@numpy_in_torch_out
def num_rollouts(score: Any, g_max: int, min_siblings: int = 1) -> np.ndarray:
    """Adaptive rollout count of Eq. 3, n = ceil(G_max * S), with a sibling floor on kept states:
    n = max(min_siblings, ceil(G_max * S)) where S > 0, and 0 where S = 0 (truncated).

    Args:
      score: array ``(...)`` of state scores in [0, 1].
      g_max: G_max >= 1.
      min_siblings: k in [1, g_max]; 1 is the paper's Eq. 3.

    Returns:
      int64 array of the shape of ``score`` with values in {0} u [min_siblings, g_max]; 0 exactly where score == 0.
    """
    score = np.asarray(score, dtype=np.float64)
    if np.any((score < 0) | (score > 1)) or np.any(np.isnan(score)):
        raise ValueError("num_rollouts: scores must lie in [0, 1]")
    return num_rollouts_unchecked(score, g_max, min_siblings)


def num_rollouts_unchecked(score: np.ndarray, g_max: int, min_siblings: int = 1) -> np.ndarray:
    """The arithmetic of :func:`num_rollouts` (Eq. 3) alone, for float64 scores known to lie in [0, 1] (the theory
    simulator's inner loop; see :func:`state_score_unchecked`). int64 array of the shape of ``score``."""
    # min() guards against G * S rounding above G for S == 1 - ulp; ceil of any positive score is >= 1.
    n = np.minimum(np.ceil(g_max * score), g_max).astype(np.int64)
    return np.where(n > 0, np.maximum(n, min_siblings), 0)


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


@numpy_in_torch_out
def under_explored(n_total: Any, parent_total: Any, c: float) -> np.ndarray:
    """Forced-exploration test of the bandit allocator (A) mapped onto the tree: a state s whose visit count is
    below c * ln(visits of its parent), N_total(s) < c * ln(1 + N_total(parent(s))).

    The parent plays the bandit's decision state and its children the arms; ``1 + N_total(parent)`` is the
    parent's visit index i of ``theory.bandit`` (the theory's forced exploration keeps N_i(a) >= c ln i).

    Args:
      n_total: array ``(...)`` of the states' visit counts N_total(s).
      parent_total: array broadcasting with ``n_total``, the parents' N_total.
      c: exploration constant >= 0; 0 (the paper) never forces.

    Returns:
      bool array of the broadcast shape.
    """
    n_total = np.asarray(n_total, dtype=np.float64)
    return n_total < c * np.log1p(np.asarray(parent_total, dtype=np.float64))


@numpy_in_torch_out
def forced_rollouts(n: Any, forced: Any) -> np.ndarray:
    """Rollout count with forced exploration: a kept (n > 0), under-explored state gets n >= 2, so that it is both
    sampled more and compared; truncated states (n = 0) are not forced, as in the bandit's allocator (A).

    Args:
      n: int array ``(...)`` of rollout counts (Eq. 3, after the sibling floor).
      forced: bool array broadcasting with ``n``, from :func:`under_explored`.

    Returns:
      int64 array of the broadcast shape.
    """
    n = np.asarray(n, dtype=np.int64)
    return np.where(np.asarray(forced, dtype=bool) & (n > 0), np.maximum(n, 2), n)


@numpy_in_torch_out
def retry_probability(n_total: Any, xi: int, rho: float) -> np.ndarray:
    """Recoverable truncation: the probability that a truncated state is expanded anyway (with n = max(1,
    min_siblings)), rho_N = min(1, rho * xi / N) with N = N_total(s) >= xi its rollouts so far.

    It decays in the state's own rollouts, so a hopeless state costs O(sqrt(rho * xi * V)) rollouts over V visits,
    while sum_N rho_N diverges, so a learnable state (p > zeta) keeps being sampled until SR > zeta un-truncates it
    (``theory/THEORY.md``, V3). A visit that is not retried adds no count to the state (only to its ancestors).

    Args:
      n_total: array ``(...)`` of N_total(s) of truncated states.
      xi: the truncation threshold of Eq. 1 (>= 1).
      rho: retry scale in [0, 1]; 0 makes truncation absorbing.

    Returns:
      float64 array of the shape of ``n_total`` with values in [0, 1].
    """
    n_total = np.asarray(n_total, dtype=np.float64)
    return np.minimum(1.0, rho * xi / np.maximum(n_total, 1.0))
