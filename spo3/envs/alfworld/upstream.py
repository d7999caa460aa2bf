"""ALFWorld's own environment, built as upstream agents build it, and the per-step record both sides are compared on.

:func:`upstream_env` is alfworld 0.4.2's ``AlfredTWEnv.init_env(batch_size=1)`` without the config file: a
``textworld.gym`` batch env over the given games with ``EnvInfos(won, admissible_commands, extras=["gamefile"])``,
``AlfredDemangler(shuffle=False)`` and ``AlfredInfos``, ``max_episode_steps`` steps (with ``batch_size=1``
TextWorld runs it in-process, as upstream does). It keeps TextWorld's own, uncached text generation and its own
planner library, so it is an independent reference for :class:`~spo3.envs.alfworld.AlfworldEnv`: the tests compare
every step against it and ``benchmarks/bench_envs.py`` times the two side by side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from spo3.envs.base import Observation, Transition

__all__ = ["StepRecord", "record_of", "upstream_env", "upstream_reset", "upstream_step"]


@dataclass(frozen=True)
class StepRecord:
    """What an agent sees after a reset or a step: the text, the admissible commands, ``won`` and ``done``."""

    text: str
    admissible: tuple[str, ...]
    won: bool
    done: bool


def upstream_env(data_dir: str | os.PathLike[str], task_ids: Sequence[str], max_steps: int = 50) -> Any:
    """ALFWorld's own env over ``task_ids`` (paths relative to ``data_dir``). Each reset starts the next game of
    TextWorld's shuffled cycle (seed 1234); :func:`upstream_reset` says which."""
    os.environ.setdefault("ALFWORLD_DATA", str(data_dir))  # alfworld's import creates this directory otherwise
    import textworld
    import textworld.gym
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    env_id = textworld.gym.register_games(
        [str(Path(data_dir) / task_id) for task_id in task_ids], infos, batch_size=1, asynchronous=True,
        max_episode_steps=max_steps, wrappers=[AlfredDemangler(shuffle=False), AlfredInfos],
    )
    return textworld.gym.make(env_id)


def upstream_reset(env: Any) -> tuple[str, StepRecord]:
    """Start the next game: ``(its game-file path, the initial record)``."""
    obs, infos = env.reset()
    return infos["extra.gamefile"][0], StepRecord(obs[0], tuple(infos["admissible_commands"][0]), bool(infos["won"][0]), False)


def upstream_step(env: Any, action: str) -> StepRecord:
    obs, _scores, dones, infos = env.step([action])
    return StepRecord(obs[0], tuple(infos["admissible_commands"][0]), bool(infos["won"][0]), bool(dones[0]))


def record_of(step: Observation | Transition) -> StepRecord:
    """The record of one of spo3's resets (an :class:`Observation`) or steps (a :class:`Transition`)."""
    if isinstance(step, Observation):
        return StepRecord(step.text, step.admissible_actions, False, False)
    return StepRecord(step.observation.text, step.observation.admissible_actions, step.won, step.done)
