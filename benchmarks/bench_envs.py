"""Environment speed on real ALFWorld games: steps against ALFWorld's own environment, snapshot restore vs reset +
replay, warm vs cold reset.

Goals, each a ratio of two timings taken side by side in this run, on the same games:

* a step of spo3's AlfworldEnv >= 3x faster than a step of ALFWorld's own environment (alfworld 0.4.2's
  ``AlfredTWEnv.init_env(batch_size=1)``, :mod:`spo3.envs.alfworld.upstream`), over the walkthrough and then random
  commands (a tenth of them inadmissible) of one game of every task type, with the text, the admissible commands,
  ``won`` and ``done`` checked identical at every step (issue 13);
* restoring a snapshot >= 20x faster than resetting and replaying a 10-step prefix (worst case over the games, and
  across games, where both sides reload the other game's planning task); a warm reset (game already loaded in the
  process) >= 5x faster than a cold one (issue 3).

Timings are CPU seconds of this process (``benchmarks/common.py``).

    python benchmarks/bench_envs.py            # one game per task type for the steps; 3 games for restore/reset
    python benchmarks/bench_envs.py --smoke    # 1 game, few repetitions (seconds), for the test suite

The games come from ``$SPO3_SHARED_DATA/alfworld`` (default ``../shared/data/alfworld`` beside the checkout) and are
installed into ``.cache/alfworld``. Without them the smoke run prints why and exits 0, except under ``CI=true``.
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import statistics
import sys
from pathlib import Path

from common import Bench, add_arguments, alfworld_data, cpu_time

from spo3.envs.alfworld import TASK_TYPES, AlfworldEnv, clear_game_cache, task_type_of
from spo3.envs.alfworld.upstream import record_of, upstream_env, upstream_reset, upstream_step
from spo3.envs.experts import random_prefix

ROOT = "json_2.1.1/valid_unseen/"
GAMES = [  # one per task type; bedroom, bathroom and kitchen scenes
    ROOT + "look_at_obj_in_light-AlarmClock-None-DeskLamp-308/trial_T20190908_222917_366542/game.tw-pddl",
    ROOT + "pick_clean_then_place_in_recep-SoapBar-None-Cabinet-424/trial_T20190908_214926_337906/game.tw-pddl",
    ROOT + "pick_heat_then_place_in_recep-Tomato-None-GarbageCan-10/trial_T20190908_225046_020282/game.tw-pddl",
]
PREFIX_STEPS = 10
RANDOM_STEPS = 25  # the step limit of the random episodes (so truncation is compared too)
INADMISSIBLE = "fly to the moon"


def timed(fn, repeats: int) -> float:
    """Median CPU seconds of ``fn()`` over ``repeats`` calls."""
    samples = []
    for _ in range(repeats):
        t0 = cpu_time()
        fn()
        samples.append(cpu_time() - t0)
    return statistics.median(samples)


def one_game_per_task_type(env: AlfworldEnv) -> list[str]:
    """The first valid_unseen game (sorted order) of each of the six task types."""
    tasks = env.tasks("valid_unseen")
    return [next(task for task in tasks if task_type_of(task) == task_type) for task_type in TASK_TYPES]


def steps_against_upstream(data_dir: Path, games: list[str], passes: int) -> dict[str, list[float]]:
    """Play ``passes`` rounds over ``games`` in ALFWorld's own env and in spo3's, step by step, checking that every
    record is identical: the first round replays the walkthroughs, later rounds play random commands (one in ten
    inadmissible) until the episode is won or reaches RANDOM_STEPS. Returns per-step CPU seconds of each side."""
    ours = AlfworldEnv(data_dir, max_steps=RANDOM_STEPS)
    theirs = upstream_env(data_dir, games, max_steps=RANDOM_STEPS)
    rng = random.Random(0)
    seconds: dict[str, list[float]] = {"ours walkthrough": [], "theirs walkthrough": [], "ours random": [],
                                       "theirs random": []}
    for episode in range(passes * len(games)):
        path, expected = upstream_reset(theirs)
        task_id = Path(path).resolve().relative_to(data_dir.resolve()).as_posix()
        observation = ours.reset(task_id)
        if record_of(observation) != expected:
            raise SystemExit(f"{task_id}: the initial observations differ")
        kind = "walkthrough" if episode < len(games) else "random"
        plan = list(ours.walkthrough(task_id)) if kind == "walkthrough" else []
        while True:
            if kind == "walkthrough":
                action = plan.pop(0)
            else:
                action = INADMISSIBLE if rng.random() < 0.1 else rng.choice(observation.admissible_actions)
            t0 = cpu_time()
            theirs_record = upstream_step(theirs, action)
            t1 = cpu_time()
            transition = ours.step(action)
            t2 = cpu_time()
            if record_of(transition) != theirs_record:
                raise SystemExit(f"{task_id}: step {action!r} differs from ALFWorld's own env")
            seconds[f"theirs {kind}"].append(t1 - t0)
            seconds[f"ours {kind}"].append(t2 - t1)
            observation = transition.observation
            if transition.done or (kind == "walkthrough" and not plan):
                break
    theirs.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    bench = Bench.from_args("bench_envs", args)
    games = GAMES[:1] if args.smoke else GAMES
    n_cold, n_warm, n_replay, n_restore = (1, 20, 2, 200) if args.smoke else (3, 200, 5, 2000)

    data_dir = alfworld_data(["valid_unseen"], args.smoke)
    if isinstance(data_dir, int):
        return data_dir
    env = AlfworldEnv(data_dir)
    env.reset(games[0])  # starts the shared engine (imports, planner library), which no cold reset should count

    step_games = games if args.smoke else one_game_per_task_type(env)
    seconds = steps_against_upstream(data_dir, step_games, passes=1 if args.smoke else 2)
    n_steps = sum(len(v) for k, v in seconds.items() if k.startswith("ours"))
    print(f"steps vs ALFWorld's own env ({len(step_games)} game(s), {n_steps} steps, text, admissible commands, won "
          "and done identical at every step), mean CPU ms per step:")
    for kind in ("walkthrough", "random"):
        if seconds[f"ours {kind}"]:
            ours_ms, theirs_ms = (statistics.fmean(seconds[f"{side} {kind}"]) * 1e3 for side in ("ours", "theirs"))
            print(f"  {kind:<11} ({len(seconds[f'ours {kind}']):3d} steps): spo3 {ours_ms:6.2f} ms | ALFWorld "
                  f"{theirs_ms:6.2f} ms | {theirs_ms / ours_ms:5.1f}x")
    ours_s = sum(sum(v) for k, v in seconds.items() if k.startswith("ours"))
    theirs_s = sum(sum(v) for k, v in seconds.items() if k.startswith("theirs"))
    bench.measure("step ms (spo3)", ours_s / n_steps * 1e3)
    bench.measure("step ms (ALFWorld)", theirs_s / n_steps * 1e3)

    print(f"ALFWorld env speed ({'smoke: ' if args.smoke else ''}{len(games)} game(s), valid_unseen), medians:")
    ratios_restore, ratios_reset, snapshots, colds, prefixes = [], [], [], [], {}
    for task_id in games:
        def cold_reset():
            clear_game_cache()
            env.reset(task_id)

        cold = timed(cold_reset, n_cold)
        warm = timed(lambda: env.reset(task_id), n_warm)
        prefix = prefixes[task_id] = random_prefix(env, task_id, PREFIX_STEPS, random.Random(0))

        def reset_and_replay():
            env.reset(task_id)
            for action in prefix:
                env.step(action)

        replay = timed(reset_and_replay, n_replay)
        deep = env.snapshot()  # after the 10-step prefix
        env.reset(task_id)
        for action in prefix[:5]:
            env.step(action)
        shallow = env.snapshot()
        alternating = itertools.cycle([deep, shallow])  # every restore changes the state
        restore = timed(lambda: env.restore(next(alternating)), n_restore)
        snapshot = timed(env.snapshot, n_restore)
        snapshots.append(deep)
        name = task_id.split("/")[2]
        print(f"  {name}")
        print(f"    cold reset {cold * 1e3:8.1f} ms | warm reset {warm * 1e3:6.2f} ms | "
              f"reset + {PREFIX_STEPS} steps {replay * 1e3:7.1f} ms ({(replay - warm) / PREFIX_STEPS * 1e3:.1f} ms/step)")
        print(f"    restore {restore * 1e6:7.1f} us | snapshot {snapshot * 1e6:5.2f} us")
        ratios_restore.append(replay / restore)
        ratios_reset.append(cold / warm)
        colds.append(cold)

    if len(games) > 1:  # the planner library must reload the other game's task each time
        across_games = itertools.cycle(games)
        warm_switch = timed(lambda: env.reset(next(across_games)), n_warm)
        ratios_reset.append(min(colds) / warm_switch)
        print(f"  warm reset of a cached game after another game ran (task reload): {warm_switch * 1e3:.2f} ms")
        # Both sides of this ratio switch games: the planner library reloads the other game's task either way.
        across_snapshots = itertools.cycle(snapshots)
        switching = timed(lambda: env.restore(next(across_snapshots)), n_restore // 4)
        replay_games = itertools.cycle(games)

        def replay_another_game():
            task_id = next(replay_games)
            env.reset(task_id)
            for action in prefixes[task_id]:
                env.step(action)

        switching_replay = timed(replay_another_game, n_replay * len(games))
        ratios_restore.append(switching_replay / switching)
        print(f"  restore of another game's snapshot (task reload + C-level path replay): {switching * 1e3:.2f} ms | "
              f"reset + {PREFIX_STEPS} steps of another game: {switching_replay * 1e3:.1f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if not args.smoke:
        bench.goal("ALFWorld step vs ALFWorld's own env (identical at every step)", theirs_s / ours_s, 3,
                   detail=f"{ours_s / n_steps * 1e3:.1f} vs {theirs_s / n_steps * 1e3:.1f} ms/step, {n_steps} steps, "
                          f"{len(step_games)} task types")
        bench.goal("ALFWorld restore vs reset + 10-step replay (worst case)", min(ratios_restore), 20)
        bench.goal("ALFWorld warm vs cold reset (worst case)", min(ratios_reset), 5)
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
