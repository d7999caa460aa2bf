"""Generated TextWorld games: reset/step/snapshot/restore costs, restore vs reset-and-replay, random-play success.

    python benchmarks/bench_textworld_games.py            # three challenges; 6 candidate quickstart configurations
    python benchmarks/bench_textworld_games.py --smoke    # one coin-collector game, tiny counts (for the test suite)

Games come from the spo3 game cache (``$SPO3_CACHE/textworld`` or ``~/.cache/spo3/textworld``; ``--cache-dir``);
missing games are generated first (about 1.5 s each, once), which is not part of any timing. Every timed figure is
a mean over repetitions measured in this run, on this machine, side by side:

* cold reset: the first reset of a game in a fresh environment (parse ``game.json``, start the interpreter);
  warm reset: a reset of a game already loaded;
* step: one random admissible action;
* snapshot / restore: one call each;
* restore vs replay: restoring the state after a 10-action prefix, against resetting and replaying the prefix.

Goal (issue 3): restoring a snapshot >= 20x faster than resetting and replaying a 10-action prefix, on every
game (the worst ratio counts). Timings are CPU seconds of this process (``benchmarks/common.py``).

The success table plays a uniformly random admissible policy (the same rule as the random-admissible expert) on
the first 8 seeds of each candidate (challenge, level, max_steps), round-robin over the games.
"""

from __future__ import annotations

import argparse
import random
import statistics

from common import Bench, add_arguments, cpu_time

from spo3.envs.experts import random_prefix
from spo3.envs.textworld_games import TextWorldGamesEnv

PREFIX = 10


def mean_ms(seconds: list[float]) -> float:
    return 1e3 * statistics.fmean(seconds)


def timed(fn, *args):
    t0 = cpu_time()
    result = fn(*args)
    return cpu_time() - t0, result


def costs(challenge: str, level: int, cache_dir: str | None, reps: int, rng: random.Random) -> dict[str, float]:
    env = TextWorldGamesEnv(challenge, level, train_seeds=[0], valid_seeds=[], test_seeds=[], cache_dir=cache_dir)
    env.prepare("train")
    task_id = env.tasks("train")[0]
    cold, _ = timed(env.reset, task_id)
    warm = [timed(env.reset, task_id)[0] for _ in range(reps)]

    steps, snapshots, restores = [], [], []
    obs = env.reset(task_id)
    while len(steps) < 10 * reps:
        dt, transition = timed(env.step, rng.choice(obs.admissible_actions))
        steps.append(dt)
        obs = transition.observation
        dt, snap = timed(env.snapshot)
        snapshots.append(dt)
        restores.append(timed(env.restore, snap)[0])
        if transition.done:
            obs = env.reset(task_id)

    prefix = random_prefix(env, task_id, PREFIX, rng)
    snap = env.snapshot()
    restore_prefix = [timed(env.restore, snap)[0] for _ in range(reps)]

    def replay() -> None:
        env.reset(task_id)
        for action in prefix:
            env.step(action)

    replay_prefix = [timed(replay)[0] for _ in range(reps)]
    return {
        "cold reset": 1e3 * cold, "warm reset": mean_ms(warm), "step": mean_ms(steps),
        "step median": 1e3 * statistics.median(steps), "snapshot": mean_ms(snapshots), "restore": mean_ms(restores),
        "restore@10": mean_ms(restore_prefix), "replay@10": mean_ms(replay_prefix),
        "walkthrough": len(env.walkthrough(task_id)),
    }


def random_play(challenge: str, level: int, max_steps: int, episodes: int, n_games: int, cache_dir: str | None,
                rng: random.Random) -> dict[str, float]:
    env = TextWorldGamesEnv(challenge, level, train_seeds=range(n_games), valid_seeds=[], test_seeds=[],
                            cache_dir=cache_dir, max_steps=max_steps)
    env.prepare("train")
    tasks = env.tasks("train")
    wins, win_lengths, branching, anchors = 0, [], [], set()
    for episode in range(episodes):
        obs = env.reset(tasks[episode % len(tasks)])
        anchors.add(obs.text)
        while True:
            branching.append(len(obs.admissible_actions))
            transition = env.step(rng.choice(obs.admissible_actions))
            obs = transition.observation
            anchors.add(obs.text)
            if transition.done:
                break
        wins += transition.won
        if transition.won:
            win_lengths.append(obs.step)
    walkthroughs = [len(env.walkthrough(t)) for t in tasks]
    return {
        "success": wins / episodes, "win steps": statistics.fmean(win_lengths) if win_lengths else float("nan"),
        "walkthrough": statistics.fmean(walkthroughs), "walkthrough max": max(walkthroughs),
        "actions/state": statistics.fmean(branching), "distinct texts": len(anchors),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--cache-dir", default=None, help="game cache (default: $SPO3_CACHE/textworld)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    bench = Bench.from_args("bench_textworld_games", args)
    rng = random.Random(args.seed)
    if args.smoke:
        games, reps = [("tw-coin_collector", 3)], 5
        candidates, episodes, n_games = [("tw-coin_collector", 3, 15)], 20, 1
    else:
        games, reps = [("tw-coin_collector", 3), ("tw-coin_collector", 105), ("tw-treasure_hunter", 5),
                       ("tw-cooking", 1)], 50
        candidates = [("tw-coin_collector", level, max_steps) for level, max_steps in
                      [(3, 15), (4, 20), (5, 20), (5, 30), (103, 20), (104, 30)]]
        episodes, n_games = 200, 8

    print(f"{'game':26} {'cold reset':>10} {'warm reset':>10} {'step':>7} {'(median)':>8} {'snapshot':>8} "
          f"{'restore':>8} | {'restore@10':>10} {'reset+replay@10':>15} {'ratio':>6}   (ms; walkthrough length)")
    ratios = []
    for challenge, level in games:
        c = costs(challenge, level, args.cache_dir, reps, rng)
        ratios.append(c["replay@10"] / c["restore@10"])
        bench.measure(f"{challenge} L{level} step ms", c["step"])
        print(f"{challenge + ' L' + str(level):26} {c['cold reset']:10.2f} {c['warm reset']:10.3f} {c['step']:7.3f} "
              f"{c['step median']:8.3f} {c['snapshot']:8.3f} {c['restore']:8.3f} | {c['restore@10']:10.3f} "
              f"{c['replay@10']:15.3f} {c['replay@10'] / c['restore@10']:5.0f}x   ({c['walkthrough']} steps)")

    print(f"\nrandom admissible play, {episodes} episodes over {n_games} games per configuration (seed {args.seed})")
    print(f"{'configuration':34} {'success':>7} {'win steps':>9} {'walkthrough':>11} {'(max)':>5} "
          f"{'actions/state':>13} {'distinct texts':>14}")
    for challenge, level, max_steps in candidates:
        r = random_play(challenge, level, max_steps, episodes, n_games, args.cache_dir, rng)
        print(f"{f'{challenge} L{level} max_steps={max_steps}':34} {r['success']:7.1%} {r['win steps']:9.1f} "
              f"{r['walkthrough']:11.1f} {r['walkthrough max']:5d} {r['actions/state']:13.2f} "
              f"{r['distinct texts']:14d}")
    if not args.smoke:
        bench.goal("TextWorld games restore vs reset + 10-step replay (worst game)", min(ratios), 20)
    bench.finish()


if __name__ == "__main__":
    main()
