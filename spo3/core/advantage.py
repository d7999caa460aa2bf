"""Group-relative advantages: GRPO episode groups, GiGPO step groups, 3SPO sibling groups.

Conventions follow upstream verl-agent (``gigpo/core_gigpo.py``, ``episode_norm_reward`` / ``step_norm_reward``):

* standard deviation is the unbiased one (ddof = 1);
* an episode group of size 1 uses mean 0 and std 1, so its advantage is ``r`` (or ``r / (1 + eps)``);
* a step group of size 1 (GiGPO step groups, 3SPO sibling groups) gets advantage 0.

``normalize_std`` replaces upstream's inverted ``remove_std``: ``True`` divides by ``std + eps`` (upstream mode
``mean_std_norm``), ``False`` only centres (``mean_norm``). GiGPO applies one mode to both of its terms
(``algo.gigpo_mode``).

Rows are independent samples of shape ``(N,)``; group ids are any hashable labels (ints, strings, tuples), given
as a sequence or 1-d array of length N. Numpy in gives numpy out; torch in gives torch out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spo3.core._arrays import factorize, numpy_in_torch_out

__all__ = ["episode_advantages", "step_group_advantages", "gigpo_advantages", "discounted_returns"]


def _group_stats(rewards: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = np.bincount(codes, minlength=n_groups).astype(np.float64)
    mean = np.bincount(codes, weights=rewards, minlength=n_groups) / np.maximum(counts, 1)
    sq = np.bincount(codes, weights=(rewards - mean[codes]) ** 2, minlength=n_groups)
    std = np.sqrt(sq / np.maximum(counts - 1, 1))
    return counts, mean, std


def _check(rewards: Any, group_ids: Any) -> tuple[np.ndarray, np.ndarray, int]:
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 1:
        raise ValueError(f"rewards must have shape (N,), got {rewards.shape}")
    codes, n_groups = factorize(group_ids)
    if codes.shape != rewards.shape:
        raise ValueError(f"group_ids has {codes.shape[0]} labels but rewards has {rewards.shape[0]} rows")
    return rewards, codes, n_groups


@numpy_in_torch_out
def episode_advantages(rewards: Any, group_ids: Any, normalize_std: bool = True, eps: float = 1e-6) -> np.ndarray:
    """GRPO outcome advantage: ``(r - mean_g) / (std_g + eps)`` within each group g.

    Args:
      rewards: ``(N,)`` episode rewards, one per row (upstream has one row per step of the trajectory, each
        carrying the episode reward minus that step's invalid-action penalty).
      group_ids: ``(N,)`` hashable labels; rows with equal labels form one group (the n rollouts of a task).
      normalize_std: divide by ``std + eps`` (GRPO) or only centre.
      eps: guard added to the std.

    Returns:
      ``(N,)`` float64 advantages. A singleton group uses mean 0 and std 1.
    """
    rewards, codes, n_groups = _check(rewards, group_ids)
    counts, mean, std = _group_stats(rewards, codes, n_groups)
    single = counts[codes] == 1
    centred = rewards - np.where(single, 0.0, mean[codes])
    if not normalize_std:
        return centred
    return centred / (np.where(single, 1.0, std[codes]) + eps)


@numpy_in_torch_out
def step_group_advantages(rewards: Any, group_ids: Any, normalize_std: bool = False, eps: float = 1e-6) -> np.ndarray:
    """Step-group advantage (GiGPO anchor-state groups, 3SPO sibling groups).

    Same as :func:`episode_advantages` except that a group of size 1 gets advantage 0 (there is nothing to
    compare the step with).

    Args:
      rewards: ``(N,)`` step rewards (GiGPO: discounted return from the step; 3SPO: R_3SPO of Eq. 2).
      group_ids: ``(N,)`` hashable labels of the step groups.
      normalize_std: divide by ``std + eps``; default only centres (upstream ``remove_std=True``).
      eps: guard added to the std.

    Returns:
      ``(N,)`` float64 advantages; within every group of size >= 2 they sum to zero when only centring.
    """
    rewards, codes, n_groups = _check(rewards, group_ids)
    counts, mean, std = _group_stats(rewards, codes, n_groups)
    adv = rewards - mean[codes]
    if normalize_std:
        adv = adv / (std[codes] + eps)
    return np.where(counts[codes] == 1, 0.0, adv)


@numpy_in_torch_out
def gigpo_advantages(episode_adv: Any, step_adv: Any, step_weight: float = 1.0) -> np.ndarray:
    """GiGPO's combined advantage ``A = A_episode + step_weight * A_step`` (shapes broadcast, typically ``(N,)``)."""
    return np.asarray(episode_adv, dtype=np.float64) + step_weight * np.asarray(step_adv, dtype=np.float64)


@numpy_in_torch_out
def discounted_returns(rewards: Any, traj_ids: Any, gamma: float) -> np.ndarray:
    """Per-trajectory discounted return ``G_t = r_t + gamma * G_{t+1}`` (GiGPO's step reward).

    Args:
      rewards: ``(N,)`` per-step rewards.
      traj_ids: ``(N,)`` hashable trajectory labels; within a trajectory, rows must be in time order (rows of
        different trajectories may interleave).
      gamma: discount in [0, 1].

    Returns:
      ``(N,)`` float64 returns.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"discounted_returns: gamma={gamma!r} must lie in [0, 1]")
    rewards, codes, n_traj = _check(rewards, traj_ids)
    out = np.empty_like(rewards)
    running = np.zeros(n_traj)
    for i in range(len(rewards) - 1, -1, -1):
        running[codes[i]] = rewards[i] + gamma * running[codes[i]]
        out[i] = running[codes[i]]
    return out
