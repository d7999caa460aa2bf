"""Supervised warm start on expert trajectories, so that small models start RL from a non-trivial policy.

Experts are the environments' walkthroughs (ALFWorld, TextWorld) and the WebShop oracle. Each expert episode is
replayed through the same :class:`~spo3.rollout.common.Stepper` as RL rollouts, so the supervised inputs are
exactly the prompts the policy later sees; the target is the expert action in the reply format the action parser
expects (``<think></think><action>...</action>``). Only episodes the expert wins are used. After training, the
warm-started policy becomes the reference policy of the KL term.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from spo3.config import TrainConfig
from spo3.envs.base import TextEnv
from spo3.envs.experts import ScriptedPolicy, WalkthroughPolicy
from spo3.policies.base import Policy, PolicyInput, Response
from spo3.policies.tabular import format_action
from spo3.rollout.common import RolloutStats, Stepper
from spo3.state.keys import Scope

__all__ = ["expert_decisions", "expert_for", "supervised_update", "warm_start"]


def expert_for(env: TextEnv) -> ScriptedPolicy:
    """The environment's expert: the WebShop oracle, or the walkthrough player."""
    from spo3.envs.webshop import WebShopEnv, WebShopOracle

    return WebShopOracle(env) if isinstance(env, WebShopEnv) else WalkthroughPolicy(env)


def expert_decisions(
    env: TextEnv, tasks: Sequence[str], expert: ScriptedPolicy, scope: Scope = "global", history_length: int = 2
) -> list[tuple[PolicyInput, str]]:
    """``(decision input, expert reply)`` for every step of every task's expert episode that ends in a win."""
    stepper = Stepper(env.family, scope, history_length, RolloutStats())
    out: list[tuple[PolicyInput, str]] = []
    for task in tasks:
        node, episode = stepper.root(env, task), []
        while not node.done:
            env.restore(node.snapshot)  # experts may read the environment's state (the WebShop oracle does)
            reply = format_action(expert.act(node.obs))
            episode.append((stepper.decision(node), reply))
            node, _, _, _ = stepper.step(env, node, Response(reply, (), ()))
        if node.won:
            out += episode
    return out


def supervised_update(
    policy: Policy, decisions: Sequence[tuple[PolicyInput, str]], epochs: int, lr: float, batch_size: int, seed: int
) -> list[float]:
    """Minimise the token-mean negative log-likelihood of the expert replies; returns the mean loss per epoch."""
    targets = [(inp, policy.response_for(inp, text)) for inp, text in decisions]
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    losses = []
    policy.train_mode(True)
    for _ in range(epochs):
        order = rng.permutation(len(targets))
        epoch_loss = []
        for start in range(0, len(order), batch_size):
            batch = [targets[i] for i in order[start : start + batch_size]]
            scores = policy.token_scores([b[0] for b in batch], [b[1] for b in batch], entropy=False)
            loss = -(scores.logprobs * scores.mask).sum() / scores.mask.sum().clamp_min(1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            epoch_loss.append(float(loss.detach()))
        losses.append(float(np.mean(epoch_loss)))
    policy.train_mode(False)
    return losses


def warm_start(policy: Policy, env: TextEnv, tasks: Sequence[str], cfg: TrainConfig) -> list[float]:
    """Train ``policy`` on expert replies for ``cfg.warm_start.tasks`` training tasks (all if 0), then make it the
    reference policy. Returns the per-epoch losses."""
    ws = cfg.warm_start
    chosen = list(tasks)[: ws.tasks] if ws.tasks else list(tasks)
    decisions = expert_decisions(env, chosen, expert_for(env), cfg.algo.state_scope, cfg.env.history_length)
    if not decisions:
        raise RuntimeError(f"warm start: the expert won none of the {len(chosen)} tasks; nothing to learn from")
    losses = supervised_update(policy, decisions, ws.epochs, ws.lr, cfg.optim.micro_batch_size, cfg.seed)
    policy.freeze_reference()
    return losses
