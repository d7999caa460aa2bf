"""Credit assignment per method on a hand-built batch (expected numbers written out)."""

import numpy as np
import pytest

from spo3.config import AlgoConfig
from spo3.training.credit import assign_advantages, loss_rows
from spo3.policies.base import PolicyInput, Response
from spo3.rollout.common import StepSample

INP = PolicyInput("p", "c", ("a",))
RESP = Response("r", (0,), (0.0,))


def sample(group, traj, anchor, env_reward, valid=True, step_group=None, reward=0.0):
    return StepSample(
        task_id=f"t{group}", input=INP, response=RESP, action="a", valid=valid, key=anchor, next_key=anchor + "'",
        anchor=anchor, env_reward=env_reward, won=env_reward > 0, done=False, group=group, traj=traj,
        step_group=step_group, reward=reward,
    )


def batch():
    # Task 0: episode (0,0) wins at its 2nd step; episode (0,1) fails and its 2nd reply was invalid.
    # Task 1: a single one-step episode.
    return [
        sample(0, (0, 0), "a", 0.0),
        sample(0, (0, 0), "b", 1.0),
        sample(0, (0, 1), "a", 0.0),
        sample(0, (0, 1), "c", 0.0, valid=False),
        sample(1, (1, 0), "x", 0.0),
    ]


def test_grpo_rows_carry_episode_reward_minus_own_penalty():
    samples = batch()
    adv = assign_advantages(samples, AlgoConfig(name="grpo"))
    assert [s.reward for s in samples] == pytest.approx([1.0, 1.0, 0.0, -0.1, 0.0])
    # group 0 over step rows: mean 0.475, unbiased std 0.6075908711186061
    expected = [0.864066859606679, 0.864066859606679, -0.7817747777393761, -0.9463589414739816, 0.0]
    np.testing.assert_allclose(adv, expected, rtol=1e-12, atol=1e-12)
    assert [s.advantage for s in samples] == pytest.approx(expected)


# GiGPO on batch(): episode rows [1, 1, 0, -0.1 | 0] (group 0 mean 0.475, unbiased std 0.6075908711186061; task 1 a
# singleton: mean 0, std 1); discounted returns [0.95, 1, 0, -0.1, 0]; the only step group of size > 1 is anchor
# (0, "a") = rows 0, 2 (mean 0.475, std 0.95 / sqrt 2). One mode for both terms, as upstream's ``mode``.
GIGPO_GOLDEN = {
    # both terms centred: episode [0.525, 0.525, -0.475, -0.575, 0] + step [0.475, 0, -0.475, 0, 0]
    "mean_norm": [1.0, 0.525, -0.95, -0.575, 0.0],
    # both divided by std + 1e-6: episode [0.86407, 0.86407, -0.78177, -0.94636, 0] + step [0.70711, 0, -0.70711, 0, 0]
    "mean_std_norm": [1.5711725881632144, 0.864066859606679, -1.4888805062959116, -0.9463589414739816, 0.0],
}


@pytest.mark.parametrize("mode", [None, "mean_norm", "mean_std_norm"])
def test_gigpo_adds_anchor_group_advantage_of_discounted_returns(mode):
    samples = batch()
    algo = AlgoConfig(name="gigpo", gamma=0.95, **({"gigpo_mode": mode} if mode else {}))
    adv = assign_advantages(samples, algo)
    assert [s.reward for s in samples] == pytest.approx([0.95, 1.0, 0.0, -0.1, 0.0])
    np.testing.assert_allclose(adv, GIGPO_GOLDEN[mode or "mean_norm"], rtol=1e-12, atol=1e-12)  # default: upstream's
    assert samples[0].step_group == samples[2].step_group != samples[1].step_group


def test_gigpo_mode_is_checked():
    from spo3.config import ConfigError

    with pytest.raises(ConfigError, match="gigpo_mode"):
        AlgoConfig(gigpo_mode="std_norm")


def test_gigpo_state_key_anchor_option():
    samples = batch()
    assign_advantages(samples, AlgoConfig(name="gigpo", gigpo_anchor="state_key"))
    assert samples[0].step_group == (0, samples[0].key)


def test_spo3_sibling_groups_centre_rewards():
    samples = [
        sample(0, 11, "s", 0.0, step_group=(0, 1), reward=0.5),
        sample(0, 12, "s", 0.0, step_group=(0, 1), reward=1.0),
        sample(0, 13, "s", 0.0, step_group=(0, 1), reward=-0.1),
        sample(0, 14, "u", 0.0, step_group=(0, 2), reward=0.7),  # n = 1: no sibling, advantage 0
    ]
    adv = assign_advantages(samples, AlgoConfig(name="3spo"))
    np.testing.assert_allclose(adv, [0.5 - 1.4 / 3, 1.0 - 1.4 / 3, -0.1 - 1.4 / 3, 0.0], atol=1e-12)
    std = np.std([0.5, 1.0, -0.1], ddof=1)
    adv_std = assign_advantages(samples, AlgoConfig(name="3spo", sibling_normalize_std=True))
    np.testing.assert_allclose(adv_std[:3], (np.array([0.5, 1.0, -0.1]) - 1.4 / 3) / (std + 1e-6), atol=1e-12)


def test_spo3_episode_term_uses_subtree_outcomes():
    samples = [
        sample(0, 11, "s", 0.0, step_group=(0, 1), reward=0.5),
        sample(0, 12, "s", 0.0, step_group=(0, 1), reward=0.5),
        sample(0, 13, "s", 0.0, step_group=(0, 1), reward=0.5),  # its subtree never finished: no episode term
    ]
    outcomes = {11: [1, 1], 12: [0]}
    cfg = AlgoConfig(name="3spo", episode_weight=0.5, update_schedule="per_iteration", norm_adv_by_std=False)
    adv = assign_advantages(samples, cfg, outcomes)
    np.testing.assert_allclose(adv, [0.5 * 0.5, -0.5 * 0.5, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="outcomes"):
        assign_advantages(samples, cfg, None)


def test_rows_without_comparison_leave_the_loss():
    samples = [
        sample(0, 11, "s", 0.0, step_group=(0, 0), reward=0.5),
        sample(0, 12, "s", 0.0, step_group=(0, 0), reward=1.0),
        sample(0, 13, "u", 0.0, step_group=(0, 1), reward=0.7),  # n = 1
        sample(0, 14, "v", 0.0, step_group=(0, 2), reward=0.2),  # n = 1, its subtree finished: episode term
    ]
    assert loss_rows(samples, AlgoConfig(name="3spo")) == samples[:2]
    assert loss_rows(samples, AlgoConfig(name="3spo", singleton_rows="keep")) == samples
    assert loss_rows(samples, AlgoConfig(name="grpo")) == samples
    with_episode = AlgoConfig(name="3spo", episode_weight=0.5, update_schedule="per_iteration")
    assert loss_rows(samples, with_episode, {11: [1], 14: [0]}) == [samples[0], samples[1], samples[3]]
