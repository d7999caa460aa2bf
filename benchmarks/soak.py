"""Soak test: a long tabular 3SPO run on generated TextWorld games, watching memory, speed and the state store.

Goals (issue 12): resident memory grows by less than 10% between the end of the warm-up (the first tenth of the
iterations) and the end; iterations per second in the last tenth within 10% of the first tenth; the state store
holds one row per unique state. Iteration speed also moves with what the policy learns (a learnt policy finishes
episodes in fewer steps), so environment steps per second are printed beside it: a leak or a cost growing with the
run's length slows both.

    python benchmarks/soak.py                 # 1,000 iterations (minutes)
    python benchmarks/soak.py --smoke         # 10 iterations on one game, for the test suite
    python benchmarks/soak.py --iterations 2000 --out runs/soak

The run uses configs/textworld_tabular.yaml (coin collector level 5, four games) with checkpoints every 10
iterations and an evaluation every 50, through the real trainer: metrics files, checkpoints and the environment
guard included. RSS is read from /proc/self/statm after each iteration's metrics record is written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import spo3.training.loop as loop
from spo3.config import load_config
from spo3.metrics import MetricsLogger, read_metrics
from spo3.state import StateStore
from spo3.training.checkpoint import latest_checkpoint

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "textworld_tabular.yaml"
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


class _RssLogger(MetricsLogger):
    """The trainer's metrics logger, also noting RSS and the clock at every record."""

    samples: list[tuple[int, float, float]] = []

    def write(self, record) -> None:
        super().write(record)
        _RssLogger.samples.append((int(record["iteration"]), rss_mb(), time.perf_counter()))


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
            t0 = time.perf_counter()
            for _ in range(repeats // 5):
                env.restore(snap)
                env.step(action)
                env.snapshot()
            totals[id(env)] += time.perf_counter() - t0
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
        t0 = time.perf_counter()
        for _ in range(repeats):
            logger._rewrite(logger.records, jsonl=False)
        rewrite = (time.perf_counter() - t0) / repeats
    return append * 1e3, rewrite * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="10 iterations on one game (seconds)")
    parser.add_argument("--out", help="run directory parent (default: a temporary directory, removed)")
    args = parser.parse_args()
    iterations = 10 if args.smoke else args.iterations
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="spo3-soak-"))
    smoke = ["env.textworld.train_seeds=[0]", "tasks_per_iteration=1", "eval.episodes=2"] if args.smoke else []
    cfg = load_config(CONFIG, [
        f"iterations={iterations}", "log.checkpoint_every=10", "eval.every=50", "log.progress=false",
        f"log.output_dir={out}", f"log.run_name=soak-{iterations}", *smoke,
    ])
    loop.MetricsLogger = _RssLogger  # instrumentation only: the trainer is otherwise untouched
    t0 = time.perf_counter()
    run = loop.train(cfg)
    total = time.perf_counter() - t0

    samples = [s for s in _RssLogger.samples if s[0] > 0]
    tenth = max(1, iterations // 10)
    # Rates from the trainer's own per-iteration wall times (evaluations excluded: they come every 50).
    by_iteration = {r["iteration"]: r for r in read_metrics(run) if r["iteration"] > 0}

    def rates(first_it: int, last_it: int) -> tuple[float, float]:
        chunk = [by_iteration[i] for i in range(first_it, last_it + 1)]
        wall = sum(r["time"]["iteration"] for r in chunk)
        return len(chunk) / wall, sum(r["env_steps"] for r in chunk) / wall

    rss_warm = next(rss for it, rss, _ in samples if it >= tenth)
    rss_end = samples[-1][1]
    store = StateStore.load(latest_checkpoint(run) / StateStore.FILENAME)
    records = read_metrics(run)
    with sqlite3.connect(latest_checkpoint(run) / StateStore.FILENAME) as con:
        rows = con.execute("SELECT COUNT(*) FROM states").fetchone()[0]
    db_bytes = (latest_checkpoint(run) / StateStore.FILENAME).stat().st_size

    print(f"soak: {iterations} iterations of tabular 3SPO on {cfg.env.textworld.challenge} level "
          f"{cfg.env.textworld.level} ({len(cfg.env.textworld.train_seeds)} games) in {total:.0f} s; "
          f"{records[-1]['env_steps_total']} env steps, {records[-1]['env_failures_total']} env failures")
    print(f"RSS: {rss_warm:.1f} MB after warm-up (iteration {tenth}), {rss_end:.1f} MB at the end: "
          f"growth {100 * (rss_end / rss_warm - 1):+.1f}% (goal < 10%)")
    tenths = [("first", 1, tenth), ("second", tenth + 1, 2 * tenth), ("last", iterations - tenth + 1, iterations)]
    measured = {name: rates(a, b) for name, a, b in tenths}
    for name, a, b in tenths:
        print(f"{name} tenth (iterations {a}-{b}): {measured[name][0]:.2f} it/s, {measured[name][1]:.0f} env steps/s")
    print(f"last/first tenth: it/s ratio {measured['last'][0] / measured['first'][0]:.3f}, env steps/s ratio "
          f"{measured['last'][1] / measured['first'][1]:.3f} (goal: within 10%)")
    print(f"state store: {rows} rows, {len(store)} keys, {records[-1]['unique_states']} unique states logged, "
          f"{db_bytes / 2**10:.0f} KiB on disk ({db_bytes / max(rows, 1):.0f} B/state), t = {store.t}")
    raw_us, guarded_us = guard_overhead(200 if args.smoke else 5000)
    print(f"environment guard: {raw_us:.0f} us raw vs {guarded_us:.0f} us guarded per TextWorld restore+step+snapshot "
          f"(ratio {guarded_us / raw_us:.3f})")
    for rows in (200,) if args.smoke else (2000, 8000):
        append_ms, rewrite_ms = metrics_write_ms(records[-1], rows)
        print(f"metrics write at {rows} rows: {append_ms:.2f} ms appending vs {rewrite_ms:.1f} ms rewriting the CSV")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
