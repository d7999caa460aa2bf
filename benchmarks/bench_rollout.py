"""Parallel environments: the ALFWorld 3SPO iteration time with 1 and with 2 environment workers, side by side.

Goal (issue 11): 2 workers >= 1.6x faster per iteration than 1 worker on 2 cores. Also printed: the iteration time
in process (``env.workers=0``) and 3SPO's bookkeeping share of the iteration (state-store lookups and R_3SPO, the
``time.score`` of the metrics, over ``time.iteration``). The policy is tabular, so the iteration is almost all
environment work: the ratio measures the workers, not generation. Settings alternate (0, 1, 2, 0, 1, 2, ...) so
that a change in machine load hits all of them alike; the load average is printed before and after, because the
machine is shared.

Beside the wall times it prints CPU times from the metrics (``time.cpu`` of the trainer, ``time.env_workers_cpu``
of each worker), which the machine's other load distorts far less: the busiest worker's share of the workers' CPU
time (imbalance), the workers' CPU time with 2 workers over that with 1 (above 1: the same work costs more CPU when
two processes run side by side, which no scheduling recovers), and the ratio that the 2-worker iterations' CPU
times allow, (trainer + both workers) / (trainer + busiest worker): the wall ratio on free cores if nothing but
CPU time counted (imbalance within the rounds of an iteration lowers it further). It also prints the median over
the measured iterations of the same iteration's time with 1 worker over that with 2: iteration k of a run does the
same work in every setting, so this pairing takes the spread of work between iterations out of the ratio.

    python benchmarks/bench_rollout.py            # 8 games (4 per worker), iterations 2-4 of 4, 5 runs per setting
    python benchmarks/bench_rollout.py --games 16 # the paper's tasks per step (8 per worker), about 4 minutes
    python benchmarks/bench_rollout.py --smoke    # 2 games, 1 iteration (seconds), for the test suite

Each setting's figure is the median of 15 iterations (3 per run, 5 runs; about 2 minutes on 2 free cores): the
same iteration's CPU time varies by up to 20% from run to run on this (virtual) machine, so a few iterations give
no stable median.

The games come from ``$SPO3_SHARED_DATA/alfworld`` (default ``../shared/data/alfworld`` beside the checkout),
installed into ``.cache/alfworld``. Without them the smoke run prints why and exits 0, except under ``CI=true``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import Bench, add_arguments, alfworld_data, machine_load

from spo3.config import load_config
from spo3.metrics import read_metrics
from spo3.training.builders import build_env, task_list
from spo3.training.loop import train

GOAL = 1.6


def load() -> str:
    """The machine's load, to read the timings against (the machine is shared)."""
    machine = machine_load()
    return f"load average {machine['loadavg'][0]:.2f} (1 min) {machine['loadavg'][1]:.2f} (5 min) on {machine['cpu_count']} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--games", type=int, default=8,
                        help="ALFWorld games per iteration, split evenly between the workers (default 8; the paper draws 16)")
    args = parser.parse_args()
    bench = Bench.from_args("bench_rollout", args)
    games, steps, iterations, repeats = (2, 6, 1, 1) if args.smoke else (args.games, 40, 4, 5)
    measured = 1 if args.smoke else 2  # from here on: the first iteration of a run also pays the fresh workers' first steps

    data_dir = alfworld_data(["valid_unseen"], args.smoke)
    if isinstance(data_dir, int):
        return data_dir

    out = Path(tempfile.mkdtemp(prefix="spo3-bench-rollout-"))
    overrides = [
        "env.name=alfworld", f"env.alfworld.data_dir={data_dir}", f"env.alfworld.max_tasks={games}",
        "env.train_split=valid_unseen", "env.eval_split=valid_unseen", "env.max_steps=20",
        "algo.name=3spo", f"tasks_per_iteration={games}", "algo.max_trajectories=4", f"algo.max_env_steps={steps}",
        f"iterations={iterations}", "eval.every=0", "eval.episodes=1", "log.progress=false",
        "log.checkpoint_every=1000", f"log.output_dir={out}",
    ]
    # Load every game once here: the game cache is per process and forked workers inherit it, so no setting pays
    # the cold loads (about 1-2 s per game) inside its measured iterations.
    cfg = load_config(None, overrides)
    env = build_env(cfg.env)
    for task in task_list(env, cfg.env, cfg.env.train_split, cfg.seed):
        env.reset(task)

    print(f"ALFWorld 3SPO iteration ({'smoke: ' if args.smoke else ''}tabular policy, {games} games, <= {steps} steps each, "
          f"iterations {measured}-{iterations} of {iterations}, {repeats} repeat(s) per setting, settings alternating)")
    print(f"  before: {load()}")
    settings = (0, 1, 2)
    times: dict[int, list[float]] = {w: [] for w in settings}
    shares: dict[int, list[float]] = {w: [] for w in settings}
    trainer_cpu: dict[int, list[float]] = {w: [] for w in settings}
    workers_cpu: dict[int, list[list[float]]] = {w: [] for w in settings}
    for repeat in range(repeats):
        for workers in settings:
            run = train(load_config(None, [*overrides, f"env.workers={workers}", f"log.run_name=w{workers}-{repeat}"]))
            for record in (r for r in read_metrics(run) if r["iteration"] >= measured):
                times[workers].append(record["time"]["iteration"])
                shares[workers].append(record["time"]["score"] / record["time"]["iteration"])
                trainer_cpu[workers].append(record["time"]["cpu"])
                workers_cpu[workers].append(record["time"].get("env_workers_cpu", []))
    print(f"  after:  {load()}")
    median = {w: statistics.median(t) for w, t in times.items()}
    cpu = {w: statistics.median(c) for w, c in trainer_cpu.items()}
    total = {w: statistics.median(map(sum, workers_cpu[w])) for w in (1, 2)}
    busiest = statistics.median(max(c) / sum(c) for c in workers_cpu[2])
    for workers, label in ((0, "in process"), (1, "1 worker  "), (2, "2 workers ")):
        print(f"  {label}: {median[workers]:7.3f} s per iteration (median of {len(times[workers])}; "
              f"min {min(times[workers]):.3f}, max {max(times[workers]):.3f}); 3SPO bookkeeping "
              f"{100 * statistics.median(shares[workers]):.2f}% of it; CPU: trainer {cpu[workers]:.3f} s"
              + (f", workers {total[workers]:.3f} s" if workers else "")
              + (f" (the busiest {100 * busiest:.1f}%)" if workers == 2 else ""))
    # Iteration k of repeat r does the same work in every setting (same seed): compared pair by pair, the spread
    # of work between iterations leaves the ratio.
    paired = statistics.median(one / two for one, two in zip(times[1], times[2]))
    print(f"  the same iteration with 1 worker over with 2 workers: median {paired:.2f}x of {len(times[2])} pairs")
    side_by_side = total[2] / total[1]
    # Within each 2-worker iteration: the same work done by one process against the 2-worker critical path.
    bound = statistics.median((t + sum(w)) / (t + max(w)) for t, w in zip(trainer_cpu[2], workers_cpu[2]))
    print(f"  CPU time: 2 workers' together / 1 worker's = {side_by_side:.3f}; 2 workers' (trainer + both "
          f"workers) / (trainer + busiest worker) = {bound:.2f}x, the most their CPU times allow")
    for workers in settings:
        bench.measure(f"seconds per iteration, {workers} worker(s)", median[workers])
        bench.measure(f"3SPO bookkeeping share, {workers} worker(s)", statistics.median(shares[workers]))
        bench.measure(f"trainer CPU seconds per iteration, {workers} worker(s)", cpu[workers])
    bench.measure("workers' CPU seconds per iteration, 1 worker", total[1])
    bench.measure("workers' CPU seconds per iteration, 2 workers", total[2])
    bench.measure("busiest worker's share of the CPU time, 2 workers", busiest)
    bench.measure("workers' CPU time, 2 workers over 1", side_by_side)
    bench.measure("CPU-time bound on the 2 vs 1 worker ratio", bound)
    bench.measure("2 vs 1 worker ratio, median over the same iterations", paired)
    # Wall time, not CPU time: the point of workers is that two processes step at once.
    bench.goal("ALFWorld iteration, 2 workers vs 1 worker", median[1] / median[2], GOAL,
               detail="wall time, medians; needs two free cores")
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
