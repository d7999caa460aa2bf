"""ALFWorld's step-cost estimate against measured step times: does ``AlfworldEnv.step_cost`` rank games as their steps
cost?

Environment workers get a batch's tasks dealt by ``TextEnv.step_cost`` (``spo3.envs.workers.worker_envs``), so that
every round of a rollout gives each worker about the same work. ALFWorld estimates a step's cost as the scene's
receptacle count to the power 1.5. This benchmark measures each game's median CPU time per step over random play (3
episodes of 10 random admissible commands from the reset state, on a seeded random sample of train games, which
span many scenes) and prints:

* goal: the correlation of the logarithms of estimate and measurement >= 0.9 (the estimate orders and scales the
  games as their steps cost);
* the exponent of the receptacle count that fits the measurements best (least squares on the logarithms), and the
  median relative error of the estimate once scaled by its median ratio to the measurements.

    python benchmarks/bench_step_cost.py          # 48 train games (30 s; the first time 1-2 s more per game)
    python benchmarks/bench_step_cost.py --smoke  # 3 valid_unseen games, 1 episode of 3 steps (seconds)

Timings are CPU seconds of this process (``benchmarks/common.py``). The games come from ``$SPO3_SHARED_DATA/alfworld``
(default ``../shared/data/alfworld`` beside the checkout), installed into ``.cache/alfworld``. Without them the smoke
run prints why and exits 0, except under ``CI=true``.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys

import numpy as np
from common import Bench, add_arguments, alfworld_data, cpu_time

from spo3.envs.alfworld import AlfworldEnv
from spo3.envs.alfworld.env import STEP_COST_EXPONENT

GOAL = 0.9


def step_seconds(env: AlfworldEnv, task_id: str, episodes: int, steps: int, rng: random.Random) -> float:
    """Median CPU seconds of a step of ``task_id`` over ``episodes`` random episodes of up to ``steps`` steps."""
    observation = env.reset(task_id)
    start = env.snapshot()
    seconds = []
    for _ in range(episodes):
        observation = env.restore(start)
        for _ in range(steps):
            action = rng.choice([a for a in observation.admissible_actions if a != "help"])
            t0 = cpu_time()
            transition = env.step(action)
            seconds.append(cpu_time() - t0)
            observation = transition.observation
            if transition.done:
                break
    return statistics.median(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    bench = Bench.from_args("bench_step_cost", args)
    split, games, episodes, steps = ("valid_unseen", 3, 1, 3) if args.smoke else ("train", 48, 3, 10)
    data_dir = alfworld_data([split], args.smoke)
    if isinstance(data_dir, int):
        return data_dir

    env = AlfworldEnv(data_dir)
    tasks = random.Random(0).sample(env.tasks(split), games)
    rng = random.Random(1)
    estimate = np.array([env.step_cost(task) for task in tasks])
    measured = np.array([step_seconds(env, task, episodes, steps, rng) for task in tasks])
    receptacles = estimate ** (1 / STEP_COST_EXPONENT)
    log_estimate, log_measured = np.log(estimate), np.log(measured)
    correlation = float(np.corrcoef(log_estimate, log_measured)[0, 1]) if len(set(estimate)) > 1 else math.nan
    fitted = float(np.polyfit(np.log(receptacles), log_measured, 1)[0]) if len(set(estimate)) > 1 else math.nan
    scaled = estimate * np.median(measured / estimate)
    error = float(np.median(np.abs(scaled / measured - 1)))

    print(f"{games} {split} games, {episodes} episode(s) of up to {steps} random steps each from the reset state:")
    print(f"  receptacles {receptacles.min():.0f}-{receptacles.max():.0f}, CPU ms per step (median per game) "
          f"{1e3 * measured.min():.2f}-{1e3 * measured.max():.2f}")
    print(f"  best-fitting exponent of the receptacle count: {fitted:.2f} (step_cost uses {STEP_COST_EXPONENT}); "
          f"median error of the scaled estimate {100 * error:.0f}%")
    bench.measure("games", games)
    bench.measure("best-fitting exponent of the receptacle count", fitted)
    bench.measure("median relative error of the scaled estimate", error)
    bench.measure("CPU seconds per step, fastest and slowest game", [float(measured.min()), float(measured.max())])
    bench.goal("ALFWorld step_cost vs measured CPU per step, correlation of the logarithms", correlation, GOAL,
               unit="", detail=f"{games} {split} games")
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
