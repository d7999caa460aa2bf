"""Group rollouts (GRPO, GiGPO): n episodes per task, all starting from the task's reset and stepped in lockstep.

Each task gets one environment instance; the n episodes of its group share the reset state and each step
restores the episode's own snapshot, so the n rollouts are independent samples of the same game/goal (upstream
seeds the n workers of a group alike for the same effect). All active episodes of all tasks go to the policy as
one batch per step.

Within a step the environments are stepped game by game (all episodes of one task id back to back, e.g. an
evaluation that cycles through its tasks), so an environment that runs one game at a time (ALFWorld's shared
engine) switches games at most once per distinct task per step. Each step restores its episode's own snapshot, so
the order changes no result: samples and trajectories are recorded in the batch order.
"""

from __future__ import annotations

import time
from typing import Sequence

from spo3.envs.base import TextEnv
from spo3.policies.base import Policy
from spo3.rollout.common import Node, RolloutResult, RolloutStats, StepSample, Stepper, TaskStream
from spo3.state.keys import Scope

__all__ = ["group_rollout"]


def group_rollout(
    envs: Sequence[TextEnv],
    tasks: Sequence[str],
    policy: Policy,
    *,
    group_size: int,
    temperature: float,
    scope: Scope = "global",
    history_length: int = 2,
    streams: Sequence[TaskStream] | None = None,
) -> RolloutResult:
    """Roll out ``group_size`` episodes of each task until every episode is done.

    Args:
      envs: one environment per task (``envs[i]`` plays ``tasks[i]``).
      tasks: task ids.
      policy: samples one response per active episode per step.
      group_size: episodes per task (the GRPO group).
      temperature: sampling temperature.
      scope: state-key scope for the recorded trajectories.
      history_length: K of the prompt memory.
      streams: one per task: episode ``(i, j)`` samples from ``streams[i]`` (default: the policy's own generator).

    Returns:
      Step samples labelled with ``group = task index`` and ``traj = (task index, episode index)``, the finished
      trajectories, and the rollout's costs.
    """
    if len(envs) != len(tasks):
        raise ValueError(f"group_rollout: {len(envs)} environments for {len(tasks)} tasks")
    if streams is not None and len(streams) != len(tasks):
        raise ValueError(f"group_rollout: {len(streams)} random streams for {len(tasks)} tasks")
    stats = RolloutStats()
    stepper = Stepper(envs[0].family if envs else "generic", scope, history_length, stats)
    samples: list[StepSample] = []
    trajectories = []
    active: list[tuple[int, int, Node]] = []
    first_of = {task: i for i, task in reversed(list(enumerate(tasks)))}  # a task id's first index: its game's rank
    for i, (env, task) in enumerate(zip(envs, tasks)):
        root = stepper.root(env, task)
        active += [(i, j, root) for j in range(group_size)]

    while active:
        inputs = [stepper.decision(node) for _, _, node in active]
        generators = [streams[i].sampling for i, _, _ in active] if streams is not None else None
        t0 = time.perf_counter()
        responses = policy.sample(inputs, [1] * len(inputs), temperature, generators=generators)
        stats.time_generate += time.perf_counter() - t0
        stats.policy_calls += 1
        by_game = sorted(range(len(active)), key=lambda k: (first_of[tasks[active[k][0]]], k))
        stepped = {k: stepper.step(envs[active[k][0]], active[k][2], responses[k][0]) for k in by_game}
        still_active = []
        for k, ((i, j, node), inp, (response,)) in enumerate(zip(active, inputs, responses)):
            child, tr, action, valid = stepped[k]
            stats.generated_tokens += len(response.token_ids)
            samples.append(
                StepSample(
                    task_id=tasks[i], input=inp, response=response, action=action, valid=valid, key=node.key,
                    next_key=child.key, anchor=node.obs.text, env_reward=tr.reward, won=tr.won, done=tr.done,
                    group=i, traj=(i, j), call=stats.policy_calls - 1,
                )
            )
            if child.done:
                trajectories.append(Stepper.trajectory(child, envs[i].task_type(tasks[i])))
            else:
                still_active.append((i, j, child))
        active = still_active
    stats.task_finished = [group_size] * len(tasks)
    stats.task_steps = [sum(1 for s in samples if s.group == i) for i in range(len(tasks))]
    return RolloutResult(samples, trajectories, stats)
