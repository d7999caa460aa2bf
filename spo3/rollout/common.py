"""What rollouts produce and the one step function both rollout modes share.

A rollout walks environment states (:class:`Node`) by asking the policy for responses, parsing them into
actions, and stepping a restored snapshot of the environment. Every decision becomes a :class:`StepSample`
(prompt, response, action, state keys before and after, environment outcome, group labels); every finished
episode or search branch becomes a :class:`Trajectory` whose states the trainer folds into the state store after
the iteration.
"""

from __future__ import annotations

import dataclasses

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch

from spo3.envs.base import EnvError, Observation, TextEnv, Transition
from spo3.envs.guard import EnvUnavailable, ResetFailed
from spo3.envs.projection import project_action
from spo3.envs.prompts import render_prompt
from spo3.policies.base import Policy, PolicyInput, Response
from spo3.state.keys import Scope, state_key

__all__ = ["Node", "Outcome", "RolloutResult", "RolloutStats", "StepSample", "Stepper", "TaskStream", "Trajectory"]


@dataclass(frozen=True)
class TaskStream:
    """The random streams of one task in one iteration, derived from ``(seed, iteration, task index)`` alone: a
    task's rollouts do not depend on the other tasks of the batch, nor on which process plays it (so one and
    several processes produce the same rollouts from the same seed and global batch)."""

    sampling: torch.Generator
    """Draws the policy's responses for this task (``Policy.sample(..., generators=...)``)."""
    search: np.random.Generator
    """The tree search's own draws for this task (the truncation escape)."""

    @classmethod
    def derive(cls, seed: int, iteration: int, index: int) -> TaskStream:
        """The streams of the ``index``-th task of ``iteration`` (its position in the iteration's global batch)."""
        sampling, search = np.random.SeedSequence([seed, iteration, index]).spawn(2)
        return cls(
            sampling=torch.Generator().manual_seed(int(sampling.generate_state(1, np.uint64)[0])),
            search=np.random.default_rng(search),
        )


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
    reset_failed: bool = False
    """The task's reset failed (:class:`spo3.envs.guard.ResetFailed`): a finished, lost episode without any state
    (no snapshot, no keys), so that the task's episodes end as failures and nothing enters the store."""

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
    call: int = 0
    """Index of the rollout's policy call that produced it (group rollouts: the step; tree search: the expansion
    round). With the task index it orders one batch's samples the same way however tasks are split over processes."""

    @property
    def n_tokens(self) -> int:
        return len(self.response.token_ids)


@dataclass(frozen=True)
class Trajectory:
    """A finished episode (group mode) or search branch (tree mode)."""

    task_id: str
    keys: tuple[str, ...]
    """State keys s_0 .. s_T, terminal included; none when the task's reset failed (no state was reached)."""
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
    env_failures: int = 0
    """Steps that ended their episode because the engine timed out or raised (``info["env_failure"]``, see
    :class:`spo3.envs.guard.GuardedEnv`) or its worker process died (:mod:`spo3.envs.workers`), and resets that
    failed (each ends all of its task's episodes)."""
    n_hist: Counter = field(default_factory=Counter)
    """How often each rollout count n of Eq. 3 was allocated (tree mode; before the budget cap)."""
    unseen_allocations: int = 0
    """Allocations (entries of n_hist) at states the frozen store had never recorded (tree mode): S = 1, n = G_max."""
    task_finished: list[int] = field(default_factory=list)
    """Finished trajectories of each task (tree mode: truncated branches included)."""
    task_steps: list[int] = field(default_factory=list)
    """Environment steps of each task."""
    time_generate: float = 0.0
    time_env: float = 0.0
    time_score: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """One response applied to its node."""

    response: Response
    child: Node
    transition: Transition
    action: str
    """The action sent to the environment."""
    valid: bool
    """The reply parsed as a valid action."""
    call: int = 0
    """Index of the policy call (in this rollout) that sampled the response."""


@dataclass
class RolloutResult:
    samples: list[StepSample]
    trajectories: list[Trajectory]
    stats: RolloutStats
    expansions: list[dict] = field(default_factory=list)
    """Tree mode: one record per expansion (see ``TreeSearch._trace``)."""


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

    def roots(self, envs: Sequence[TextEnv], tasks: Sequence[str]) -> list[Node]:
        """The reset state of each task (all resets started before any is awaited). A reset whose worker died is
        retried once on the restarted worker. A task whose reset failed (:class:`~spo3.envs.guard.ResetFailed`: the
        guard already retried it on a fresh engine) gets a failed root (:attr:`Node.reset_failed`), counted in
        ``env_failures``; the other tasks go on.

        Raises:
          EnvUnavailable: every reset failed, so the environment cannot run (a systematic failure is not hidden).
        """
        roots, failures = self._reset_all(envs, tasks)
        if roots and len(failures) == len(roots):
            raise EnvUnavailable(f"every reset of the batch failed ({len(roots)} of {len(roots)} tasks), so the "
                                 f"environment cannot run; the first failure: {failures[0]}")
        return roots

    def _reset_all(self, envs: Sequence[TextEnv], tasks: Sequence[str]) -> tuple[list[Node], list[EnvError]]:
        """The roots of :meth:`roots`, and the failures of the failed ones."""
        from spo3.envs.workers import WorkerDied

        def start(env: TextEnv, task: str) -> Callable[[], tuple[Observation, Any]]:
            try:
                return env.begin_reset(task)
            except ResetFailed as exc:  # an in-process environment resets at once
                failure = exc
                return lambda: _raise(failure)

        t0 = time.perf_counter()
        pending = [start(env, task) for env, task in zip(envs, tasks)]
        landed: list[tuple[Observation, Any] | EnvError] = []
        for env, task, wait in zip(envs, tasks, pending):
            try:
                try:
                    landed.append(wait())
                except WorkerDied:
                    landed.append(start(env, task)())
            except (ResetFailed, WorkerDied) as exc:
                landed.append(exc)
        self.stats.time_env += time.perf_counter() - t0
        roots, failures = [], []
        for reset, task_id in zip(landed, tasks):
            if isinstance(reset, EnvError):
                failures.append(reset)
                obs = Observation("", (), task_id, "", 0)
                roots.append(Node(
                    obs=obs, snapshot=None, state_anchor="", key="", context="", history=(),
                    path_ids=(next(self._ids),), path_keys=(), path_anchors=(), done=True, reset_failed=True,
                ))
                continue
            obs, snap = reset
            key = state_key(obs.text, task_id, self.scope)
            roots.append(Node(
                obs=obs, snapshot=snap, state_anchor=obs.text, key=key, context=state_key(obs.text, task_id, "task"),
                history=(), path_ids=(next(self._ids),), path_keys=(key,), path_anchors=(obs.text,),
            ))
        self.stats.env_failures += len(failures)
        return roots, failures

    def decision(self, node: Node) -> PolicyInput:
        prompt = render_prompt(node.obs, node.history, self.family, self.history_length)
        return PolicyInput(prompt=prompt, context=node.context, actions=node.obs.admissible_actions)

    def root(self, env: TextEnv, task_id: str) -> Node:
        """The reset state of one task, a failed root if its reset failed (:meth:`roots`)."""
        return self._reset_all([env], [task_id])[0][0]

    def step(self, env: TextEnv, node: Node, response: Response) -> tuple[Node, Transition, str, bool]:
        """Restore ``node`` in ``env``, apply the parsed ``response``; return the child node, the transition, the
        action sent and whether the reply parsed as a valid action."""
        t0 = time.perf_counter()
        outcome = self._land(node, *self._launch(env, node, response))
        self.stats.time_env += time.perf_counter() - t0
        return outcome.child, outcome.transition, outcome.action, outcome.valid

    def expand(
        self, policy: Policy, requests: Sequence[tuple[TextEnv, Node, int]], temperature: float,
        generators: Sequence[torch.Generator] | None = None,
    ) -> list[tuple[PolicyInput, list[Outcome]]]:
        """Sample ``n`` responses at each ``(env, node, n)`` and apply each to a restored snapshot of its node.

        With environments in worker processes the batch is generated in two halves: the first half's steps are
        sent to the workers before the second half is generated, so they overlap; every step is awaited only
        once all are sent. (Sampling per half draws the same random stream for the tabular policy; a language
        model draws one engine seed per half.) ``generators``: one random stream per request (its task's
        :class:`TaskStream`), else the policy's own."""
        inputs = [self.decision(node) for _, node, _ in requests]
        halves = 2 if len(requests) > 1 and any(env.asynchronous for env, _, _ in requests) else 1
        cut = (len(requests) + 1) // 2 if halves == 2 else len(requests)
        launched: dict[int, list[tuple[Response, str, bool, Callable[[], tuple[Transition, Any]]]]] = {}
        first_of = {node.obs.task_id: i for i, (_, node, _) in reversed(list(enumerate(requests)))}
        call_of: dict[int, int] = {}
        for part in (range(0, cut), range(cut, len(requests)))[:halves]:
            t0 = time.perf_counter()
            streams = [generators[i] for i in part] if generators is not None else None
            responses = policy.sample([inputs[i] for i in part], [requests[i][2] for i in part], temperature, generators=streams)
            self.stats.time_generate += time.perf_counter() - t0
            call_of.update((i, self.stats.policy_calls) for i in part)
            self.stats.policy_calls += 1
            t0 = time.perf_counter()
            # Game by game (all requests of one task id back to back): an environment that runs one game at a
            # time (ALFWorld's shared engine) switches games at most once per task per half; results are unchanged.
            for i in sorted(part, key=lambda i: (first_of[requests[i][1].obs.task_id], i)):
                env, node, _ = requests[i]
                launched[i] = [self._launch(env, node, r) for r in responses[i - part.start]]
            for env in {id(requests[i][0]): requests[i][0] for i in part}.values():
                env.flush()  # workers: one message per worker for the half
            self.stats.time_env += time.perf_counter() - t0
        t0 = time.perf_counter()
        out = [
            (inp, [dataclasses.replace(self._land(node, *step), call=call_of[i]) for step in launched[i]])
            for i, ((_, node, _), inp) in enumerate(zip(requests, inputs))
        ]
        self.stats.time_env += time.perf_counter() - t0
        return out

    def _launch(self, env: TextEnv, node: Node, response: Response) -> tuple[Response, str, bool, Callable[[], tuple[Transition, Any]]]:
        action, valid = project_action(response.text, self.family)
        return response, action, valid, env.begin_transition(node.snapshot, action)

    def _land(self, node: Node, response: Response, action: str, valid: bool, wait: Callable[[], tuple[Transition, Any]]) -> Outcome:
        from spo3.envs.workers import WorkerDied

        self.stats.env_steps += 1
        self.stats.decisions += 1
        self.stats.valid_actions += int(valid)
        try:
            tr, snap = wait()
        except WorkerDied:  # the episode ends here as a failure; its state is lost with the worker
            tr, snap = Transition(node.obs, 0.0, True, False, False, {"env_failure": "worker died"}), node.snapshot
        self.stats.env_failures += int("env_failure" in tr.info)
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
        return Outcome(response, child, tr, action, valid)

    @staticmethod
    def trajectory(node: Node, task_type: str, truncated: bool = False) -> Trajectory:
        """The finished path ending at ``node``."""
        return Trajectory(
            task_id=node.obs.task_id, keys=node.path_keys, anchors=node.path_anchors, won=node.won,
            length=node.depth, truncated=truncated, step_limit=node.step_limit, task_type=task_type, score=node.score,
        )


def _raise(exc: BaseException) -> Any:
    raise exc
