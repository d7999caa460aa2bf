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
      trajectories (a task whose reset failed: ``group_size`` lost ones without states or samples), and the
      rollout's costs.
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
    for i, root in enumerate(stepper.roots(envs, tasks)):
        if root.reset_failed:  # the whole group ends as failures without a step
            trajectories += [Stepper.trajectory(root, envs[i].task_type(tasks[i]))] * group_size
        else:
            active += [(i, j, root) for j in range(group_size)]

    while active:
        generators = [streams[i].sampling for i, _, _ in active] if streams is not None else None
        expanded = stepper.expand(policy, [(envs[i], node, 1) for i, _, node in active], temperature, generators)
        still_active = []
        for (i, j, node), (inp, (out,)) in zip(active, expanded):
            stats.generated_tokens += len(out.response.token_ids)
            samples.append(
                StepSample(
                    task_id=tasks[i], input=inp, response=out.response, action=out.action, valid=out.valid,
                    key=node.key, next_key=out.child.key, anchor=node.obs.text, env_reward=out.transition.reward,
                    won=out.transition.won, done=out.transition.done, group=i, traj=(i, j), call=out.call,
                )
            )
            if out.child.done:
                trajectories.append(Stepper.trajectory(out.child, envs[i].task_type(tasks[i])))
            else:
                still_active.append((i, j, out.child))
        active = still_active
    stats.task_finished = [group_size] * len(tasks)
    stats.task_steps = [sum(1 for s in samples if s.group == i) for i in range(len(tasks))]
    return RolloutResult(samples, trajectories, stats)
