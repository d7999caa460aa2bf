"""The 3SPO mathematics, once: pure, vectorised functions (numbers in, numbers out).

``spo3.core`` imports nothing from the rest of spo3. The trainer, the theory module and the notebooks all call
these functions, so a formula changed here changes everywhere.
"""

from spo3.core.advantage import discounted_returns, episode_advantages, gigpo_advantages, step_group_advantages
from spo3.core.loss import AGG_MODES, aggregate, low_var_kl, policy_loss
from spo3.core.reward import step_reward
from spo3.core.score import (
    ScoreParams, forced_rollouts, lambda_t, novelty_weight, num_rollouts, retry_probability, state_score, under_explored,
)

__all__ = [
    "AGG_MODES",
    "ScoreParams",
    "aggregate",
    "discounted_returns",
    "episode_advantages",
    "forced_rollouts",
    "gigpo_advantages",
    "lambda_t",
    "low_var_kl",
    "novelty_weight",
    "num_rollouts",
    "policy_loss",
    "retry_probability",
    "state_score",
    "step_group_advantages",
    "step_reward",
    "under_explored",
]
