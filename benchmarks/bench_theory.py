"""Theory simulator speed: theory.bandit.simulate against a straightforward vectorised numpy implementation of the
same (proportional) allocator, side by side on the same inputs, with identical outputs checked; arm pulls per
second per allocator; the wall time of the small theory profile.

Goals (issue 13): the simulator >= 2x the speed of the plain numpy version, and >= 3e7 arm pulls (rollouts) per
second with the proportional allocator (one rollout per seed and visit, the least favourable case).

    python benchmarks/bench_theory.py            # 10^4 seeds x 300 visits, K = 3, best of 7 interleaved runs each
    python benchmarks/bench_theory.py --smoke    # tiny sizes, for the test suite (no verdict on speed there)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")

from common import Bench, add_arguments, cpu_time  # noqa: E402

from spo3.core import ScoreParams  # noqa: E402
from theory.bandit import simulate  # noqa: E402
from theory.experiments import EXPERIMENTS  # noqa: E402

PROBS = (0.5, 0.7, 0.9)
CASES = (
    ("uniform", "uniform", 0.0),
    ("proportional", "proportional", 0.0),
    ("proportional + explore c=10", "proportional", 10.0),
    ("integer (Eq. 3)", "integer", 0.0),
)


def plain_numpy(probs, visits: int, seeds: int, params: ScoreParams, seed: int):
    """The proportional allocator written plainly with numpy, independent of spo3 and theory (the yardstick):
    ``(n_total, n_success, cumulative off-target share per seed)`` after ``visits`` visits."""
    rng = np.random.default_rng(seed)
    probs = np.asarray(probs, dtype=np.float64)
    k, target = probs.size, int(np.argmin(probs))
    n_total = np.zeros((k, seeds), dtype=np.int64)
    n_success = np.zeros((k, seeds), dtype=np.int64)
    regret = np.zeros(seeds)
    for _ in range(visits):
        t = 1 + n_total.sum(axis=0)
        sr = n_success / (n_total + params.eps)
        keep = (n_total - n_success < params.xi) | (sr > params.zeta)
        score = np.where(keep, np.maximum(np.exp(-params.alpha * np.log(t) * sr), np.finfo(float).tiny), 0.0)
        score = np.where(n_total == 0, 1.0, score)
        cumulative = np.cumsum(score, axis=0)
        total = cumulative[-1]
        alive = total > 0
        regret += np.where(alive, np.delete(score, target, axis=0).sum(axis=0) / np.where(alive, total, 1.0), 0.0)
        arm = np.minimum((cumulative <= rng.random(seeds) * total).sum(axis=0), k - 1)
        won = rng.random(seeds) < probs[arm]
        pulled = (np.arange(k)[:, None] == arm) & alive
        n_total += pulled
        n_success += pulled & won
    return n_total, n_success, regret


def best_of(repeats: int, fn):
    """``(fewest CPU seconds, result)`` of ``repeats`` calls."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = cpu_time()
        result = fn()
        best = min(best, cpu_time() - start)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args()
    bench = Bench.from_args("bench_theory", args)
    seeds, visits, repeats = (2_000, 40, 1) if args.smoke else (10_000, 300, 7)
    params = ScoreParams(alpha=10.0)

    # Interleaved, so that both sides see the same machine load.
    ours_s, theirs_s = float("inf"), float("inf")
    for _ in range(repeats):
        seconds, run = best_of(1, lambda: simulate(PROBS, visits, allocator="proportional", params=params, seeds=seeds))
        ours_s = min(ours_s, seconds)
        seconds, (n_total, n_success, regret) = best_of(1, lambda: plain_numpy(PROBS, visits, seeds, params, 0))
        theirs_s = min(theirs_s, seconds)
    identical = (np.array_equal(run.n_total, n_total) and np.array_equal(run.n_success, n_success)
                 and np.array_equal(run.regret[-1], regret))
    print(f"proportional allocator, K = {len(PROBS)}, {seeds:,} seeds x {visits} visits ({run.rollouts:,} pulls), "
          f"best of {repeats} (CPU time): simulate {ours_s * 1e3:.0f} ms, plain numpy {theirs_s * 1e3:.0f} ms; "
          f"outputs {'identical' if identical else 'DIFFERENT'}")
    if not identical:
        raise SystemExit("theory.bandit.simulate and the plain numpy version disagree")
    rate = run.rollouts / ours_s
    bench.measure("proportional pulls/s", rate)
    bench.measure("plain numpy pulls/s", run.rollouts / theirs_s)
    if not args.smoke:  # smoke sizes are too small to amortise numpy's per-call overhead: no verdict there
        bench.goal("theory simulator vs plain numpy (same allocator, same outputs)", theirs_s / ours_s, 2,
                   detail=f"{ours_s * 1e3:.0f} ms vs {theirs_s * 1e3:.0f} ms")
        bench.goal("theory simulator arm pulls per second (proportional)", rate, 3e7, "/s")

    print(f"simulated arm pulls per second, K = {len(PROBS)}, {seeds:,} seeds x {visits} visits:")
    for label, allocator, explore in CASES:
        seconds, run = best_of(repeats, lambda: simulate(PROBS, visits, allocator=allocator, params=params,
                                                         seeds=seeds, explore=explore))
        bench.measure(f"{label} pulls/s", run.rollouts / seconds)
        print(f"  {label:30s} {run.rollouts / seconds:14,.0f} /s")

    start = time.perf_counter()
    for experiment in EXPERIMENTS.values():
        experiment("small", 0)
    seconds = time.perf_counter() - start
    bench.measure("small profile seconds", round(seconds, 1))
    print(f"wall time of the small theory profile (all experiments, single process): {seconds:.1f} s")
    bench.finish()


if __name__ == "__main__":
    main()
