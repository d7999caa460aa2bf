"""Credit assignment: step samples -> per-method rewards and advantages (formulas from :mod:`spo3.core`).

* GRPO: every step row carries its episode's reward minus its own invalid-action penalty; advantages are
  normalised within the task group over all step rows (upstream ``episode_norm_reward``, step-weighted;
  ``norm_adv_by_std``).
* GiGPO: GRPO's episode advantage plus ``step_weight`` times a step-group advantage of the discounted return,
  steps grouped by identical anchor state within a task group; ``gigpo_mode`` normalises both terms alike.
* 3SPO: sibling-group advantages of R_3SPO (the tree search sets each sample's reward, penalty included);
  optionally plus ``episode_weight`` times a GRPO-style advantage of each step's subtree success rate.

:func:`loss_rows` then picks the rows that enter the loss: all of them, except 3SPO's rows without any
comparison (singleton sibling groups and no episode term) under ``singleton_rows=drop``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Mapping, Sequence

import numpy as np

from spo3.config import AlgoConfig
from spo3.core.advantage import discounted_returns, episode_advantages, gigpo_advantages, step_group_advantages
from spo3.rollout.common import StepSample

__all__ = ["assign_advantages", "loss_rows"]


def _penalties(samples: Sequence[StepSample], algo: AlgoConfig) -> np.ndarray:
    return algo.invalid_penalty * np.array([not s.valid for s in samples], dtype=np.float64)


def _episode_rewards(samples: Sequence[StepSample], algo: AlgoConfig) -> np.ndarray:
    """Each row's episode return (sum of its trajectory's environment rewards) minus the row's penalty."""
    returns: dict = defaultdict(float)
    for s in samples:
        returns[s.traj] += s.env_reward
    return np.array([returns[s.traj] for s in samples]) - _penalties(samples, algo)


def _episode_advantages(
    samples: Sequence[StepSample], algo: AlgoConfig, normalize_std: bool
) -> tuple[np.ndarray, np.ndarray]:
    """GRPO's rows (episode reward minus the row's penalty) and their advantages within the task groups."""
    rewards = _episode_rewards(samples, algo)
    adv = episode_advantages(rewards, [s.group for s in samples], normalize_std=normalize_std)
    return rewards, adv


def _grpo(samples: Sequence[StepSample], algo: AlgoConfig) -> np.ndarray:
    rewards, adv = _episode_advantages(samples, algo, algo.norm_adv_by_std)
    for s, r in zip(samples, rewards):
        s.reward = float(r)
    return adv


def _gigpo(samples: Sequence[StepSample], algo: AlgoConfig) -> np.ndarray:
    normalize_std = algo.gigpo_mode == "mean_std_norm"  # one mode for both terms, as upstream
    _, episode_adv = _episode_advantages(samples, algo, normalize_std)
    env_rewards = np.array([s.env_reward for s in samples])
    step_returns = discounted_returns(env_rewards, [s.traj for s in samples], algo.gamma) - _penalties(samples, algo)
    for s, r in zip(samples, step_returns):
        s.reward = float(r)
        s.step_group = (s.group, s.anchor if algo.gigpo_anchor == "raw_text" else s.key)
    step_adv = step_group_advantages(step_returns, [s.step_group for s in samples], normalize_std=normalize_std)
    return gigpo_advantages(episode_adv, step_adv, algo.step_weight)


def _has_episode_term(sample: StepSample, algo: AlgoConfig, outcomes: Mapping[int, Sequence[int]] | None) -> bool:
    """3SPO's episode term applies to a step whose subtree finished at least one trajectory."""
    return algo.episode_weight > 0 and outcomes is not None and bool(outcomes.get(sample.traj))


def _spo3(samples: Sequence[StepSample], algo: AlgoConfig, outcomes: Mapping[int, Sequence[int]] | None) -> np.ndarray:
    rewards = np.array([s.reward for s in samples])
    adv = step_group_advantages(rewards, [s.step_group for s in samples], normalize_std=algo.sibling_normalize_std)
    if algo.episode_weight > 0:
        if outcomes is None:
            raise ValueError("3SPO's episode term needs the search's subtree outcomes")
        known = [i for i, s in enumerate(samples) if _has_episode_term(s, algo, outcomes)]
        if known:
            success = np.array([np.mean(outcomes[samples[i].traj]) for i in known])
            ep = episode_advantages(success, [samples[i].group for i in known], normalize_std=algo.norm_adv_by_std)
            adv[known] += algo.episode_weight * ep
    return adv


def assign_advantages(
    samples: Sequence[StepSample], algo: AlgoConfig, outcomes: Mapping[int, Sequence[int]] | None = None
) -> np.ndarray:
    """Fill ``reward`` and ``advantage`` of every sample for ``algo.name`` and return the advantages ``(N,)``.

    Args:
      samples: the step samples of one update (a whole iteration, or one 3SPO expansion round).
      algo: algorithm settings.
      outcomes: 3SPO only: node id -> list of won flags of the finished trajectories through that node.
    """
    if not samples:
        return np.zeros(0)
    if algo.name == "grpo":
        adv = _grpo(samples, algo)
    elif algo.name == "gigpo":
        adv = _gigpo(samples, algo)
    elif algo.name == "3spo":
        adv = _spo3(samples, algo, outcomes)
    else:
        raise ValueError(f"unknown algorithm {algo.name!r}")
    for s, a in zip(samples, adv):
        s.advantage = float(a)
    return adv


def loss_rows(
    samples: Sequence[StepSample], algo: AlgoConfig, outcomes: Mapping[int, Sequence[int]] | None = None
) -> list[StepSample]:
    """The samples whose rows enter the policy loss (PPO, KL and entropy terms alike).

    3SPO with ``singleton_rows=drop`` leaves out each row of a singleton sibling group (an n = 1 expansion) that
    carries no episode term: there is nothing to compare it with, and the paper continues without an update there.
    Every other method and setting keeps every row.
    """
    if algo.name != "3spo" or algo.singleton_rows == "keep":
        return list(samples)
    sizes = Counter(s.step_group for s in samples)
    return [s for s in samples if sizes[s.step_group] > 1 or _has_episode_term(s, algo, outcomes)]
