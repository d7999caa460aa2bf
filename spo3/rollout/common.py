"""What rollouts produce and the one step function both rollout modes share.

A rollout walks environment states (:class:`Node`) by asking the policy for responses, parsing them into
actions, and stepping a restored snapshot of the environment. Every decision becomes a :class:`StepSample`
(prompt, response, action, state keys before and after, environment outcome, group labels); every finished
episode or search branch becomes a :class:`Trajectory` whose states the trainer folds into the state store after
the iteration.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Hashable

from spo3.envs.base import Observation, TextEnv, Transition
from spo3.envs.projection import project_action
from spo3.envs.prompts import render_prompt
from spo3.policies.base import PolicyInput, Response
from spo3.state.keys import Scope, state_key

__all__ = ["Node", "RolloutResult", "RolloutStats", "StepSample", "Stepper", "Trajectory"]

@dataclass(frozen=True)
class Node:
    """A visited environment state on one path from the task's reset."""

    obs: Observation
    """What the agent sees here."""
    snapshot: Any
    """Environment snapshot to continue from this state."""
    state_anchor: str
    """The observation text the state key is made of; a no-op action keeps its parent's."""
    key: str
    """State key (in the configured scope)."""
    context: str
    """Task-scoped state key: the decision context of tabular policies."""
    history: tuple[tuple[str, str], ...]
    """(observation text, action) of every earlier step on this path, for the prompt's memory."""
    path_ids: tuple[int, ...]
    """Node ids (unique within one rollout) from the root to this node."""
    path_keys: tuple[str, ...]
    """State keys from the root to this node (recorded into the store when the path finishes)."""
    path_anchors: tuple[str, ...]
    """State anchors aligned with path_keys."""
    done: bool = False
    """The episode ended at this node."""
    won: bool = False
    """The episode ended here in success."""
    step_limit: bool = False
    """The episode ended here because of the step limit."""
    score: float | None = None
    """The environment's task score at the end of the episode, where it reports one (WebShop)."""

    @property
    def node_id(self) -> int:
        return self.path_ids[-1]

    @property
    def depth(self) -> int:
        return len(self.path_ids) - 1


@dataclass
class StepSample:
    """One decision s_t -> a_t -> s_{t+1}, with what the update needs."""

    task_id: str
    input: PolicyInput
    response: Response
    action: str
    valid: bool
    key: str
    next_key: str
    anchor: str
    """Raw observation text at s_t (GiGPO's anchor)."""
    env_reward: float
    won: bool
    done: bool
    group: Hashable
    """Episode group (the task within this iteration)."""
    traj: Hashable
    """Group mode: trajectory id. Tree mode: the child node id."""
    step_group: Hashable = None
    """GiGPO anchor-state group or 3SPO sibling group (filled by the rollout or the credit assignment)."""
    reward: float = 0.0
    """The method's step reward: 3SPO's R_3SPO (invalid penalty included), GiGPO's discounted return, GRPO's
    episode reward (filled by the rollout or the credit assignment)."""
    advantage: float = 0.0
    """Filled by the credit assignment."""

    @property
    def n_tokens(self) -> int:
        return len(self.response.token_ids)


@dataclass(frozen=True)
class Trajectory:
    """A finished episode (group mode) or search branch (tree mode)."""

    task_id: str
    keys: tuple[str, ...]
    """State keys s_0 .. s_T, terminal included."""
    anchors: tuple[str, ...]
    won: bool
    length: int
    """Environment steps on the path."""
    truncated: bool = False
    """Ended by 3SPO truncation (n = 0), not by the environment."""
    step_limit: bool = False
    """Ended by the environment's step limit."""
    task_type: str = ""
    score: float | None = None
    """Task score in [0, 1] where the environment reports one (WebShop)."""


@dataclass
class RolloutStats:
    """Costs and counts of one rollout phase."""

    env_steps: int = 0
    generated_tokens: int = 0
    policy_calls: int = 0
    valid_actions: int = 0
    decisions: int = 0
    truncations: int = 0
    retries: int = 0
    """Truncated states expanded anyway (truncation="recoverable")."""
    retries_won: int = 0
    """Retried states with a won trajectory through them this iteration."""
    expansions: int = 0
    n_hist: Counter = field(default_factory=Counter)
    """How often each rollout count n of Eq. 3 was allocated (tree mode; before the budget cap)."""
    task_finished: list[int] = field(default_factory=list)
    """Finished trajectories of each task (tree mode: truncated branches included)."""
    task_steps: list[int] = field(default_factory=list)
    """Environment steps of each task."""
    time_generate: float = 0.0
    time_env: float = 0.0
    time_score: float = 0.0


@dataclass
class RolloutResult:
    samples: list[StepSample]
    trajectories: list[Trajectory]
    stats: RolloutStats


class Stepper:
    """Builds decisions from nodes and applies responses to restored environment snapshots.

    Args:
      family: prompt/parse family of the environment.
      scope: state-key scope ("global" or "task").
      history_length: K of the prompt memory.
      stats: counters to update.
    """

    def __init__(self, family: str, scope: Scope, history_length: int, stats: RolloutStats) -> None:
        self.family = family
        self.scope = scope
        self.history_length = history_length
        self.stats = stats
        self._ids = itertools.count()  # node ids, unique within one rollout

    def root(self, env: TextEnv, task_id: str) -> Node:
        t0 = time.perf_counter()
        obs = env.reset(task_id)
        snap = env.snapshot()
        self.stats.time_env += time.perf_counter() - t0
        key = state_key(obs.text, task_id, self.scope)
        return Node(
            obs=obs, snapshot=snap, state_anchor=obs.text, key=key, context=state_key(obs.text, task_id, "task"),
            history=(), path_ids=(next(self._ids),), path_keys=(key,), path_anchors=(obs.text,),
        )

    def decision(self, node: Node) -> PolicyInput:
        prompt = render_prompt(node.obs, node.history, self.family, self.history_length)
        return PolicyInput(prompt=prompt, context=node.context, actions=node.obs.admissible_actions)

    def step(self, env: TextEnv, node: Node, response: Response) -> tuple[Node, Transition, str, bool]:
        """Restore ``node`` in ``env``, apply the parsed ``response``; return the child node, the transition, the
        action sent and whether the reply parsed as a valid action."""
        action, valid = project_action(response.text, self.family)
        t0 = time.perf_counter()
        env.restore(node.snapshot)
        tr = env.step(action)
        snap = env.snapshot()
        self.stats.time_env += time.perf_counter() - t0
        self.stats.env_steps += 1
        self.stats.decisions += 1
        self.stats.valid_actions += int(valid)
        task_id = node.obs.task_id
        anchor = tr.observation.text if tr.changed else node.state_anchor
        key = state_key(anchor, task_id, self.scope) if tr.changed else node.key
        context = state_key(anchor, task_id, "task") if tr.changed else node.context
        child = Node(
            obs=tr.observation, snapshot=snap, state_anchor=anchor, key=key, context=context,
            history=node.history + ((node.obs.text, action),),
            path_ids=node.path_ids + (next(self._ids),),
            path_keys=node.path_keys + (key,), path_anchors=node.path_anchors + (anchor,),
            done=tr.done, won=tr.won, step_limit=bool(tr.info.get("truncated", False)), score=tr.info.get("score"),
        )
        return child, tr, action, valid

    @staticmethod
    def trajectory(node: Node, task_type: str, truncated: bool = False) -> Trajectory:
        """The finished path ending at ``node``."""
        return Trajectory(
            task_id=node.obs.task_id, keys=node.path_keys, anchors=node.path_anchors, won=node.won,
            length=node.depth, truncated=truncated, step_limit=node.step_limit, task_type=task_type, score=node.score,
        )
