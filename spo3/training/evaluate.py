"""Evaluation: per-episode success with a confidence interval, per task type.

Episodes cycle through the given tasks; each is one sampled episode (upstream samples at temperature 0.4 during
validation). The success rate is per episode (not a mean of batch means), with a Wilson interval. Evaluation
samples from its own seed and puts the policy's RNG back afterwards, so evaluating does not change training.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from spo3.envs.base import TextEnv
from spo3.policies.base import Policy
from spo3.metrics import wilson_interval
from spo3.rollout.group import group_rollout
from spo3.state.keys import Scope

__all__ = ["EvalReport", "evaluate"]


@dataclass
class EvalReport:
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_length: float
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per task type: episodes, successes, success_rate, ci_low, ci_high."""
    mean_score: float | None = None
    """Mean task score where the environment reports one (WebShop), else None."""
    per_episode: list[dict[str, Any]] = field(default_factory=list)
    """task_id, task_type, won, length, score of every episode."""

    def to_dict(self, with_episodes: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_episodes:
            d.pop("per_episode")
        return d


def evaluate(
    policy: Policy,
    env: TextEnv,
    tasks: Sequence[str],
    episodes: int,
    *,
    temperature: float = 0.4,
    seed: int = 0,
    scope: Scope = "global",
    history_length: int = 2,
) -> EvalReport:
    """Play ``episodes`` episodes (cycling through ``tasks``) with ``policy`` and report success.

    All episodes run in lockstep, one batched policy call per step, on one environment instance (each step
    restores its episode's snapshot).
    """
    if not tasks:
        raise ValueError("evaluate: no tasks to evaluate on")
    plan = [tasks[i % len(tasks)] for i in range(episodes)]
    saved = policy.rng_state()
    policy.reseed(seed)
    try:
        result = group_rollout(
            [env] * len(plan), plan, policy, group_size=1, temperature=temperature, scope=scope,
            history_length=history_length,
        )
    finally:
        policy.set_rng_state(saved)
    trajectories = result.trajectories
    wins = sum(t.won for t in trajectories)
    lo, hi = wilson_interval(wins, len(trajectories))
    by_type: dict[str, list[bool]] = defaultdict(list)
    for t in trajectories:
        by_type[t.task_type].append(t.won)
    per_type = {}
    for task_type, won in sorted(by_type.items()):
        tlo, thi = wilson_interval(sum(won), len(won))
        per_type[task_type] = {
            "episodes": len(won), "successes": sum(won), "success_rate": sum(won) / len(won), "ci_low": tlo, "ci_high": thi,
        }
    scores = [t.score for t in trajectories if t.score is not None]
    return EvalReport(
        episodes=len(trajectories),
        successes=wins,
        success_rate=wins / len(trajectories),
        ci_low=lo,
        ci_high=hi,
        mean_length=float(np.mean([t.length for t in trajectories])),
        per_type=per_type,
        mean_score=float(np.mean(scores)) if scores else None,
        per_episode=[
            {"task_id": t.task_id, "task_type": t.task_type, "won": t.won, "length": t.length, "score": t.score}
            for t in trajectories
        ],
    )
