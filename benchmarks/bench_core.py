"""State-store throughput: single-key lookups (what the tree search does) side by side with a plain dict, batched
lookups, and folding trajectories.

Goals: >= 1e6 single-key lookups per second on a frozen snapshot (issue 13), and >= 1e6 keys per second batched
(issue 2). The dict and the one-key batch of the vectorised path are timed in the same run, on the same keys.

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
    sample = [keys[i] for i in rng.integers(0, n_keys, n_single)]
    snap = store.snapshot()
    start = cpu_time()
    snap.score_of(sample[0])
    build_s = cpu_time() - start
    single, ours = per_second(snap.score_of, sample)
    rollouts, _ = per_second(snap.rollouts_of, sample)
    table = dict(zip(keys, scores.tolist()))
    plain, theirs = per_second(table.__getitem__, sample)
    one_key, old = per_second(lambda key: snap.scores([key])[0], sample[: max(n_single // 20, 100)])
    identical = ours == theirs and ours[: len(old)] == [float(x) for x in old]
    print(f"single-key score_of       : {single:,.0f} keys/s (tables built once per snapshot in "
          f"{build_s * 1e3:.0f} ms)")
    print(f"single-key rollouts_of    : {rollouts:,.0f} keys/s")
    print(f"plain dict lookup         : {plain:,.0f} keys/s  -> score_of at {single / plain:.2f}x a dict")
    print(f"one-key batch scores([k]) : {one_key:,.0f} keys/s  -> score_of {single / one_key:,.0f}x faster; "
          f"results {'identical' if identical else 'DIFFERENT'}")
    if not identical:
        raise SystemExit("single-key lookups disagree with the batched ones")
    bench.measure("batched keys/s", batched)
    bench.measure("single-key keys/s", single)
    bench.measure("plain dict keys/s", plain)
    bench.measure("one-key batch keys/s", one_key)
    bench.measure("fold trajectories/s", n_traj / fold_s)
    if not args.smoke:
        bench.goal("store single-key lookups per second", single, 1e6, "/s",
                   detail=f"{single / plain:.2f}x a plain dict in the same run; "
                          f"{single / one_key:,.0f}x a one-key batch")
        bench.goal("store batched lookups per second", batched, 1e6, "/s")
    bench.finish()


if __name__ == "__main__":
    main()
