"""Replay the expert walkthrough of every valid_seen + valid_unseen ALFWorld game through AlfworldEnv (not in CI).

    python scripts/replay_walkthroughs.py                  # all 274 games, about 10 min of one core
    python scripts/replay_walkthroughs.py --limit 10       # the first 10 games of each split

Installs the splits from the shared archives first (``--from``, default ``$SPO3_SHARED_DATA/alfworld`` or
``../shared/data/alfworld``) into ``--data-dir`` (default ``.cache/alfworld``), then prints, per split, the win count,
how many walkthrough commands were not admissible, cold reset and step times, and the peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from spo3.envs.alfworld import AlfworldEnv, set_game_cache_size
from spo3.envs.alfworld.data import install_alfworld

REPO_ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    default_source = Path(os.environ.get("SPO3_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) / "alfworld"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, default=default_source, help="archive directory")
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".cache" / "alfworld")
    parser.add_argument("--splits", nargs="+", default=["valid_seen", "valid_unseen"])
    parser.add_argument("--limit", type=int, default=0, help="only the first N games of each split (0: all)")
    args = parser.parse_args()

    install_alfworld(args.source, args.data_dir, splits=args.splits)
    set_game_cache_size(2)  # every game is played once: keep memory flat
    env = AlfworldEnv(args.data_dir)
    total_won = total_games = 0
    failures: list[str] = []
    t_start = time.perf_counter()
    for split in args.splits:
        tasks = env.tasks(split)[: args.limit or None]
        resets, steps, inadmissible, won = [], [], 0, 0
        for task_id in tasks:
            t0 = time.perf_counter()
            obs = env.reset(task_id)
            resets.append(time.perf_counter() - t0)
            transition = None
            for action in env.walkthrough(task_id) or []:
                inadmissible += action not in obs.admissible_actions
                t0 = time.perf_counter()
                transition = env.step(action)
                steps.append(time.perf_counter() - t0)
                obs = transition.observation
                if transition.done:
                    break
            if transition is not None and transition.won:
                won += 1
            else:
                failures.append(task_id)
        total_won, total_games = total_won + won, total_games + len(tasks)
        print(f"{split:<13} won {won}/{len(tasks)}  inadmissible walkthrough commands {inadmissible}  "
              f"cold reset mean {statistics.mean(resets):.2f} s (median {statistics.median(resets):.2f})  "
              f"step mean {statistics.mean(steps) * 1e3:.0f} ms (median {statistics.median(steps) * 1e3:.0f})",
              flush=True)
    print(f"total won {total_won}/{total_games} in {time.perf_counter() - t_start:.0f} s; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    for task_id in failures:
        print(f"  not won: {task_id}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
