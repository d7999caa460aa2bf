"""Soak test: a long training run with a fixed workload per iteration, watching memory, speed and the state store.

It is meant to catch the *infrastructure* slowing down or leaking as a run grows (the state store, its per-iteration
snapshot and its checkpoint; the metrics files; the checkpoints; the environment guard; the policy's table), not to
measure learning. So every iteration does the same expected work while everything that accumulates keeps
accumulating:

* **The policy does not learn.** ``optim.lr=1e-12`` (the config rejects 0, issue 12): every update is computed and
  applied as in training (PPO loss, backward pass, AdamW step), but Adam moves a logit by about ``lr`` per step at
  most, so after the run's ~10^4 optimiser steps the uniform tabular policy has moved by under 1e-7 and its
  episodes keep one length distribution. (With a learning policy episodes get shorter: in the earlier design of
  this script the last tenth ran 3.1x faster than the first, which says nothing about the infrastructure.) Its
  table still grows with every new decision context.
* **The search does not depend on what the store knows.** 3SPO with ``algo.adaptive_rollouts=false`` (every
  expansion samples G_max children instead of n(S) of Eq. 3, so no state is ever truncated),
  ``algo.use_score_diff=false`` and ``algo.fixed_omega=0.25`` (the step reward is 0.25 * novel + 0.5 * won, which
  ranks the children without any store score). The search still looks every child up in the frozen store snapshot,
  and the trainer still folds every finished trajectory into the store, snapshots it every iteration and writes it
  into every checkpoint. Budgets are small (G_max 2, 4 trajectories, 80 steps, 1 task per iteration: about 40
  environment steps and 20 per-round updates), so that the infrastructure is a visible share of an iteration.
* **The store keeps growing.** TextWorld cooking games (level 1: one kitchen, one ingredient to fetch) have a
  combinatorial state space (what is open, held, dropped, eaten...) that random play keeps discovering: in a probe,
  one game still gave ~5 new states per 8 random episodes after 10 visits, where coin collector and treasure
  hunter games gave none after their first visit. A pool of 10 generated games (seeds 0-9, generated before the
  timed run if missing); the trainer's task sampler draws every game once per pass, so every tenth of a
  1,000-iteration run plays each game exactly 10 times. The states added in each tenth are printed.
* Checkpoints every 10 iterations (3 kept), an evaluation every 50 (16 episodes), metrics every iteration, every
  engine call through the guard: as in training.

Measurement: an iteration's cost is the time between its metrics record and the previous one, with evaluations
left out and its own checkpoint in place of the previous iteration's (a checkpoint is saved after its iteration's
record), so it covers all the trainer does for that iteration. The goal is on CPU seconds of this process (the
benchmarks' clock, benchmarks/common.py: other processes on a shared machine stretch wall time); wall time and the
load average of each tenth are printed beside it, with the per-phase breakdown (generation, environment, scoring,
update, the rest of the iteration, metrics and checkpoint) of the first and last tenths, which shows where a
slowdown comes from. RSS is read from /proc/self/statm at each record.

Goals (issue 12): RSS grows by less than 10% from the end of the first tenth to the end; iterations per second in
the last tenth within 10% of the first tenth; the store holds one row per unique state.

    python benchmarks/soak.py                    # 1,000 iterations; writes benchmarks/results/soak.json
    python benchmarks/soak.py --smoke            # 10 iterations on one game, for the test suite (no JSON)
    python benchmarks/soak.py --iterations 2000 --out runs/soak --json /tmp/soak.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

import spo3.training.loop as loop
from common import Bench, add_arguments
from spo3.config import load_config
from spo3.metrics import MetricsLogger, read_metrics
from spo3.state import StateStore
from spo3.training.builders import build_env
from spo3.training.checkpoint import latest_checkpoint, save_checkpoint
from spo3.training.evaluate import evaluate

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "textworld_tabular.yaml"
PAGE = os.sysconf("SC_PAGE_SIZE")
FIXED_WORKLOAD = [
    "optim.lr=1e-12", "algo.adaptive_rollouts=false", "algo.use_score_diff=false", "algo.fixed_omega=0.25",
    "algo.g_max=2", "algo.max_trajectories=4", "algo.max_env_steps=80", "tasks_per_iteration=1",
]
POOL = ["env.textworld.challenge=tw-cooking", "env.textworld.level=1", "env.textworld.train_seed_range=[0,10]"]
SMOKE_POOL = ["env.textworld.challenge=tw-cooking", "env.textworld.level=1", "env.textworld.train_seeds=[0]",
              "eval.episodes=2"]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


_EVAL_CLOCKS = [0.0, 0.0]
"""Wall and CPU seconds spent in evaluations so far."""
_CHECKPOINT_CLOCKS: dict[int, tuple[float, float]] = {}
"""Wall and CPU seconds of the checkpoint of each iteration that saved one."""


def _timed_evaluate(*args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        return evaluate(*args, **kwargs)
    finally:
        _EVAL_CLOCKS[0] += time.perf_counter() - wall
        _EVAL_CLOCKS[1] += time.process_time() - cpu


def _timed_save_checkpoint(run_dir, iteration, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        return save_checkpoint(run_dir, iteration, *args, **kwargs)
    finally:
        _CHECKPOINT_CLOCKS[iteration] = (time.perf_counter() - wall, time.process_time() - cpu)


class _RssLogger(MetricsLogger):
    """The trainer's metrics logger, also noting RSS, both clocks (less evaluations) and the load at every record."""

    samples: list[tuple[int, float, float, float, float]] = []
    """(iteration, RSS MB, wall s, CPU s, 1-minute load average) at each record; the clocks without evaluations."""

    def write(self, record) -> None:
        super().write(record)
        wall, cpu = time.perf_counter() - _EVAL_CLOCKS[0], time.process_time() - _EVAL_CLOCKS[1]
        _RssLogger.samples.append((int(record["iteration"]), rss_mb(), wall, cpu, os.getloadavg()[0]))


def guard_overhead(repeats: int) -> tuple[float, float]:
    """Microseconds per restore + step + snapshot on one TextWorld game, raw and through the guard, interleaved."""
    from spo3.envs.guard import GuardedEnv
    from spo3.envs.textworld_games import TextWorldGamesEnv

    raw = TextWorldGamesEnv("tw-coin_collector", 5, train_seeds=[0], valid_seeds=[], test_seeds=[], max_steps=10**6)
    guarded = GuardedEnv(lambda: raw, 60.0)
    task = raw.tasks("train")[0]
    action = raw.walkthrough(task)[0]
    totals = {id(raw): 0.0, id(guarded): 0.0}
    for _ in range(5):
        for env in (raw, guarded):
            env.reset(task)
            snap = env.snapshot()
            t0 = time.process_time()
            for _ in range(repeats // 5):
                env.restore(snap)
                env.step(action)
                env.snapshot()
            totals[id(env)] += time.process_time() - t0
    return totals[id(raw)] / repeats * 1e6, totals[id(guarded)] / repeats * 1e6


def metrics_write_ms(record: dict, rows: int, repeats: int = 10) -> tuple[float, float]:
    """Milliseconds per metrics write with ``rows`` records already logged: appending (now) vs rewriting the whole
    CSV (what every write did before issue 12), side by side on the same files."""
    with tempfile.TemporaryDirectory() as tmp:
        logger = MetricsLogger(Path(tmp))
        for i in range(rows):
            logger.write({**record, "iteration": i})
        t0 = time.perf_counter()
        for i in range(repeats):
            logger.write({**record, "iteration": rows + i})
        append = (time.perf_counter() - t0) / repeats
        records = read_metrics(Path(tmp))
        t0 = time.perf_counter()
        for _ in range(repeats):
            logger._rewrite(records, jsonl=False)
        rewrite = (time.perf_counter() - t0) / repeats
    return append * 1e3, rewrite * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--out", help="run directory parent (default: a temporary directory, removed)")
    add_arguments(parser)
    args = parser.parse_args()
    bench = Bench.from_args("soak", args)
    iterations = 10 if args.smoke else args.iterations
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="spo3-soak-"))
    cfg = load_config(CONFIG, [
        f"iterations={iterations}", "log.checkpoint_every=10", "log.keep_checkpoints=3", "eval.every=50",
        "log.progress=false", f"log.output_dir={out}", f"log.run_name=soak-{iterations}",
        *FIXED_WORKLOAD, *(SMOKE_POOL if args.smoke else POOL),
    ])
    build_env(cfg.env).prepare(cfg.env.train_split)  # generate any missing game now, not inside the timed run
    # instrumentation only: the trainer is otherwise untouched
    loop.MetricsLogger, loop.evaluate, loop.save_checkpoint = _RssLogger, _timed_evaluate, _timed_save_checkpoint
    t0 = time.perf_counter()
    run = loop.train(cfg)
    total = time.perf_counter() - t0

    records = {r["iteration"]: r for r in read_metrics(run)}
    samples = {s[0]: s for s in _RssLogger.samples}
    tenth = max(1, iterations // 10)
    last = records[iterations]

    def cost(i: int) -> tuple[float, float]:
        """(CPU s, wall s) of iteration ``i``: from the record before it to its own (evaluations left out), with its
        own checkpoint in place of the previous iteration's (each is saved after its iteration's record)."""
        (_, _, wall0, cpu0, _), (_, _, wall1, cpu1, _) = samples[i - 1], samples[i]
        (own_wall, own_cpu), (prev_wall, prev_cpu) = (_CHECKPOINT_CLOCKS.get(j, (0.0, 0.0)) for j in (i, i - 1))
        return cpu1 - cpu0 + own_cpu - prev_cpu, wall1 - wall0 + own_wall - prev_wall

    def tenth_figures(first: int, last_it: int) -> dict[str, float]:
        its = range(first, last_it + 1)
        cpu, wall = (sum(c) for c in zip(*(cost(i) for i in its)))
        phases = {k: sum(records[i]["time"][k] for i in its) for k in ("generate", "env", "score", "update", "iteration")}
        return {
            "it_per_cpu_s": len(its) / cpu, "it_per_wall_s": len(its) / wall,
            "env_steps_per_it": sum(records[i]["env_steps"] for i in its) / len(its),
            "load": float(np.mean([samples[i][4] for i in its])),
            "new_states": records[last_it]["unique_states"] - records[first - 1].get("unique_states", 0),
            **{f"ms_{k}": 1e3 * phases[k] / len(its) for k in ("generate", "env", "score", "update")},
            # the rest of the trainer's iteration (store snapshot and fold, advantages), then what follows it
            "ms_other": 1e3 * (phases["iteration"] - sum(phases[k] for k in ("generate", "env", "score", "update"))) / len(its),
            "ms_after": 1e3 * (wall - phases["iteration"]) / len(its),
            "ms_checkpoint": 1e3 * sum(_CHECKPOINT_CLOCKS.get(i, (0.0, 0.0))[0] for i in its) / len(its),
        }

    parts = {"first": (1, tenth), "last": (iterations - tenth + 1, iterations)}
    figures = {name: tenth_figures(a, b) for name, (a, b) in parts.items()}
    first, final = figures["first"], figures["last"]
    print(f"soak: {iterations} iterations of tabular 3SPO (fixed workload) on {cfg.env.textworld.challenge} level "
          f"{cfg.env.textworld.level}, {len(cfg.env.textworld.train_seeds)} game(s), in {total:.0f} s wall; "
          f"{last['env_steps_total']} env steps, {last['env_failures_total']} env failures")
    for name, (a, b) in parts.items():
        f = figures[name]
        print(f"{name} tenth (iterations {a}-{b}): {f['it_per_cpu_s']:.2f} it/CPU-s, {f['it_per_wall_s']:.2f} it/s wall, "
              f"{f['env_steps_per_it']:.0f} env steps/it, load {f['load']:.2f}, {f['new_states']} new states; ms/it: "
              f"generate {f['ms_generate']:.1f}, env {f['ms_env']:.1f}, score {f['ms_score']:.1f}, update "
              f"{f['ms_update']:.1f}, other (store snapshot and fold, advantages) {f['ms_other']:.1f}, after the "
              f"iteration (metrics, checkpoint) {f['ms_after']:.1f}, of which checkpoints {f['ms_checkpoint']:.1f}")
    speed = final["it_per_cpu_s"] / first["it_per_cpu_s"]
    print(f"last/first tenth: it/CPU-s ratio {speed:.3f}, it/s wall ratio "
          f"{final['it_per_wall_s'] / first['it_per_wall_s']:.3f}, env steps per iteration ratio "
          f"{final['env_steps_per_it'] / first['env_steps_per_it']:.3f} (goal: speed within 10%)")
    bench.goal("iterations per CPU second, last tenth vs first (slower over faster)", min(speed, 1 / speed), 0.9,
               detail=f"{final['it_per_cpu_s']:.2f} vs {first['it_per_cpu_s']:.2f} it/CPU-s, load "
                      f"{first['load']:.1f} / {final['load']:.1f}")

    rss_warm, rss_end = samples[tenth][1], samples[iterations][1]
    print(f"RSS: {rss_warm:.1f} MB after warm-up (iteration {tenth}), {rss_end:.1f} MB at the end: "
          f"growth {100 * (rss_end / rss_warm - 1):+.1f}% (goal < 10%)")
    bench.goal("RSS after warm-up / RSS at the end (growth under 10%)", rss_warm / rss_end, 1 / 1.1,
               detail=f"{rss_warm:.0f} -> {rss_end:.0f} MB")

    checkpoint = latest_checkpoint(run)
    store = StateStore.load(checkpoint / StateStore.FILENAME)
    with sqlite3.connect(checkpoint / StateStore.FILENAME) as con:
        rows = con.execute("SELECT COUNT(*) FROM states").fetchone()[0]
    db_bytes = (checkpoint / StateStore.FILENAME).stat().st_size
    print(f"state store: {rows} rows, {len(store)} keys, {last['unique_states']} unique states logged, "
          f"{db_bytes / 2**10:.0f} KiB on disk ({db_bytes / max(rows, 1):.0f} B/state), t = {store.t}; "
          f"{records[tenth]['unique_states']} states after the first tenth")
    per_state = rows / max(last["unique_states"], 1)
    bench.goal("state store: one row per unique state (rows per state, or its inverse)", min(per_state, 1 / per_state),
               1.0, detail=f"{rows} rows, {last['unique_states']} unique states")
    raw_us, guarded_us = guard_overhead(200 if args.smoke else 5000)
    print(f"environment guard: {raw_us:.0f} us raw vs {guarded_us:.0f} us guarded per TextWorld restore+step+snapshot "
          f"(ratio {guarded_us / raw_us:.3f})")
    writes = {}
    for n_rows in (200,) if args.smoke else (2000, 8000):
        append_ms, rewrite_ms = writes[n_rows] = metrics_write_ms(last, n_rows)
        print(f"metrics write at {n_rows} rows: {append_ms:.2f} ms appending vs {rewrite_ms:.1f} ms rewriting the CSV")
    bench.measure("iterations", iterations)
    bench.measure("tenths", figures)
    bench.measure("rss_mb", {"warm": rss_warm, "end": rss_end})
    bench.measure("store", {"rows": rows, "keys": len(store), "unique_states": last["unique_states"], "bytes": db_bytes,
                            "t": store.t})
    bench.measure("guard_us", {"raw": raw_us, "guarded": guarded_us})
    bench.measure("metrics_write_ms", {str(k): {"append": a, "rewrite": r} for k, (a, r) in writes.items()})
    bench.measure("config", FIXED_WORKLOAD + (SMOKE_POOL if args.smoke else POOL))
    bench.finish()
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
