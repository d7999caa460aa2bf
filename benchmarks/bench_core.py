"""State-store throughput: single-key lookups (what the tree search does) side by side with a plain dict, batched
lookups, and folding trajectories.

Goals: >= 1e6 single-key lookups per second on a frozen snapshot (issue 13), and >= 1e6 keys per second batched
(issue 2). The dict and the one-key batch of the vectorised path are timed in the same run, on the same keys.

Single keys are asked in two patterns: the tree search's (the goal), where an iteration's searches keep asking
about the states of their trees, here a working set of 1,000 keys of the store asked in random order; and keys
drawn uniformly from all 10^6 (half of them stored), where every lookup misses the CPU caches and a plain dict
itself manages about 1e6/s on this machine.

    python benchmarks/bench_core.py            # 10^6 keys, 10^5 trajectories, 2 x 10^5 single-key lookups
    python benchmarks/bench_core.py --smoke    # tiny sizes, for the test suite
"""

from __future__ import annotations

import argparse

import numpy as np
from common import Bench, add_arguments, cpu_time

from spo3.state import StateStore, state_key


def per_second(fn, keys) -> tuple[float, list]:
    """``(keys per CPU second, results)`` of calling ``fn`` on every key, one at a time."""
    start = cpu_time()
    results = [fn(key) for key in keys]
    return len(keys) / (cpu_time() - start), results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args()
    bench = Bench.from_args("bench_core", args)
    n_keys, n_traj, traj_len, n_single = (10_000, 1_000, 8, 5_000) if args.smoke else (1_000_000, 100_000, 8, 200_000)

    rng = np.random.default_rng(0)
    keys = [state_key(f"observation {i}") for i in range(n_keys)]
    store = StateStore(keep_anchors=False)

    start = cpu_time()
    for _ in range(n_traj):
        idx = rng.integers(0, n_keys, traj_len)
        store.record_trajectory([keys[i] for i in idx], won=bool(idx[0] % 3 == 0))
    fold_s = cpu_time() - start
    print(f"states stored             : {len(store):,} (t = {store.t:,})")
    print(f"fold {n_traj:,} trajectories   : {fold_s:.2f} s ({n_traj / fold_s:,.0f} trajectories/s, "
          f"{traj_len} states each)")

    # Batched: all keys (about half of them unseen) through the frozen snapshot the trainer scores with.
    snap = store.snapshot()
    start = cpu_time()
    scores = snap.scores(keys)
    batched = n_keys / (cpu_time() - start)
    print(f"batched score lookups     : {batched:,.0f} keys/s ({n_keys:,} keys)")

    # Single keys, as the tree search asks: a fresh snapshot (so its one-off table build is timed too), a plain dict
    # holding the same scores, and the one-key batch the search used before.
    working_set = [keys[i] for i in rng.integers(0, n_keys, 1_000)]
    patterns = {
        "tree search": [working_set[i] for i in rng.integers(0, len(working_set), n_single)],
        f"uniform over {n_keys:,} keys": [keys[i] for i in rng.integers(0, n_keys, n_single)],
    }
    snap = store.snapshot()
    start = cpu_time()
    snap.score_of(keys[0])
    build_s = cpu_time() - start
    table = dict(zip(keys, scores.tolist()))
    print(f"single-key lookups (tables built once per snapshot in {build_s * 1e3:.0f} ms):")
    rates = {}
    for name, sample in patterns.items():
        single, ours = per_second(snap.score_of, sample)
        rollouts, _ = per_second(snap.rollouts_of, sample)
        plain, theirs = per_second(table.__getitem__, sample)
        one_key, old = per_second(lambda key: snap.scores([key])[0], sample[: max(n_single // 20, 100)])
        if ours != theirs or ours[: len(old)] != [float(x) for x in old]:
            raise SystemExit("single-key lookups disagree with the batched ones")
        print(f"  {name:<25}: score_of {single:,.0f}/s, rollouts_of {rollouts:,.0f}/s | plain dict {plain:,.0f}/s "
              f"({single / plain:.2f}x a dict) | one-key batch {one_key:,.0f}/s ({single / one_key:,.0f}x); "
              "results identical")
        rates[name] = (single, plain, one_key)
        bench.measure(f"single-key keys/s ({name})", single)
        bench.measure(f"plain dict keys/s ({name})", plain)
        bench.measure(f"one-key batch keys/s ({name})", one_key)
    bench.measure("batched keys/s", batched)
    bench.measure("fold trajectories/s", n_traj / fold_s)
    if not args.smoke:
        single, plain, one_key = rates["tree search"]
        cold = rates[f"uniform over {n_keys:,} keys"]
        bench.goal("store single-key lookups per second (tree-search pattern)", single, 1e6, "/s",
                   detail=f"{single / plain:.2f}x a plain dict, {single / one_key:,.0f}x a one-key batch; uniform "
                          f"over {n_keys:,} keys: {cold[0]:.2g}/s, {cold[0] / cold[1]:.2f}x a dict")
        bench.goal("store batched lookups per second", batched, 1e6, "/s")
    bench.finish()


if __name__ == "__main__":
    main()
