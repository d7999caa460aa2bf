"""Learning signal: the PPO update (``spo3.update.ppo_update``) on a tiny random-init Qwen2 raises the
log-probability of rewarded replies and lowers that of unrewarded ones (asserted on log-probabilities, not text)."""

import pytest
import torch

from spo3.config import OptimConfig
from spo3.core.advantage import episode_advantages
from spo3.policies.tabular import format_action
from spo3.rollout.common import StepSample
from spo3.training.update import build_optimizer, ppo_update
from tests.policies.helpers import DECISIONS


def step_samples(inp, responses, rewards):
    """One GRPO group at one decision: advantages (r - mean) / std from ``spo3.core``."""
    advantages = episode_advantages(rewards, ["group"] * len(rewards))
    return [
        StepSample(
            task_id="game-0", input=inp, response=r, action=r.text, valid=True, key="s0", next_key=f"s{i + 1}",
            anchor=inp.context, env_reward=reward, won=reward > 0, done=True, group="group", traj=i, reward=reward,
            advantage=float(a),
        )
        for i, (r, reward, a) in enumerate(zip(responses, rewards, advantages))
    ]


def logprob(policy, inp, response) -> float:
    with torch.no_grad():
        return float(policy.token_scores([inp], [response], entropy=False).logprobs.sum())


@pytest.mark.parametrize("lora_rank, lr", [(0, 3e-4), (8, 3e-3)], ids=["full", "lora"])
def test_ppo_raises_the_logprob_of_the_rewarded_action(make_policy, lora_rank, lr):
    policy = make_policy(seed=0, lora_rank=lora_rank)
    inp = DECISIONS[0]
    good = policy.response_for(inp, format_action("take coin"))
    bad = policy.response_for(inp, format_action("go north"))
    samples = step_samples(inp, [good, bad] * 4, [1.0, 0.0] * 4)
    optim = OptimConfig(lr=lr, weight_decay=0.0, mini_batch_size=8, micro_batch_size=4)
    optimizer = build_optimizer(policy, optim)
    good_before, bad_before = logprob(policy, inp, good), logprob(policy, inp, bad)
    for _ in range(4):
        diag = ppo_update(policy, optimizer, samples, optim)
        assert diag["optimizer_steps"] == 1
    good_after, bad_after = logprob(policy, inp, good), logprob(policy, inp, bad)
    # Measured (seed 0): full +6.4 / -1.6 nats, LoRA +5.5 / -2.7. The two replies share their format tokens, so
    # the gap between them is the sharpest signal.
    assert good_after > good_before + 2.0
    assert bad_after < bad_before
    assert (good_after - bad_after) - (good_before - bad_before) > 3.0
    assert not policy.model.training  # ppo_update hands the policy back in eval mode


def test_ppo_on_sampled_replies_follows_the_advantage_sign(make_policy):
    # The GRPO loop on the policy's own samples: replies with positive advantage gain probability, the rest lose it.
    policy = make_policy(seed=1, max_new_tokens=6)
    inp = DECISIONS[1]
    (replies,) = policy.sample([inp], [8], temperature=1.0)
    rewards = [1.0, 0.0] * 4
    samples = step_samples(inp, replies, rewards)
    optim = OptimConfig(lr=1e-3, weight_decay=0.0, mini_batch_size=8, micro_batch_size=8)
    optimizer = build_optimizer(policy, optim)
    before = [logprob(policy, inp, r) for r in replies]
    for _ in range(4):
        ppo_update(policy, optimizer, samples, optim)
    change = [logprob(policy, inp, r) - b for r, b in zip(replies, before)]
    assert all(c > 0 for c, reward in zip(change, rewards) if reward > 0), change
    assert all(c < 0 for c, reward in zip(change, rewards) if reward == 0), change
