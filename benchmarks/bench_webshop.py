"""WebShop (spo3.envs.webshop): catalogue and index build, search latency, step cost, restore vs reset-and-replay.

    python benchmarks/bench_webshop.py            # all goals for the oracle, 2000 queries, 500 restores
    python benchmarks/bench_webshop.py --smoke    # tiny counts (for the test suite)

Runs on the catalogue of ``--data-dir`` (default: the shared data; synthetic unless items_shuffle_1000.json is
there, which the output says). Every figure is measured in this run, side by side:

* catalogue: loading/generating and cleaning the products; index: building the BM25 index over them;
* search: one query (a goal instruction) against the index, uncached;
* step: one oracle action, including rendering the next page;
* restore vs replay: restoring the state after a 10-action prefix (a search, then random admissible actions),
  against resetting and replaying the prefix; both reuse the environment's per-query search cache.

Goal (issue 3): restore >= 20x faster than reset and replay. Timings are CPU seconds of this process
(``benchmarks/common.py``).
"""

from __future__ import annotations

import argparse
import random

from common import Bench, add_arguments, cpu_time

from spo3.envs.webshop import WebShopEnv, WebShopOracle, load_catalogue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--data-dir", default=None, help="WebShop data directory (default: the shared data)")
    args = ap.parse_args()
    bench = Bench.from_args("bench_webshop", args)
    n_goals, n_queries, n_restores = (20, 50, 20) if args.smoke else (None, 2000, 500)

    t0 = cpu_time()
    catalogue = load_catalogue(args.data_dir)
    catalogue_s = cpu_time() - t0
    t0 = cpu_time()
    index = catalogue.search_index
    index_s = cpu_time() - t0
    env = WebShopEnv(args.data_dir, seed=0)
    print(f"catalogue               : {env.catalogue} ({len(catalogue.products)} products, {len(env.goals)} goals)")
    print(f"load catalogue          : {catalogue_s:.3f} s;  build BM25 index: {index_s:.3f} s")

    queries = [g.instruction_text for g in env.goals[:n_queries]]
    t0 = cpu_time()
    for query in queries:
        index.search(query, 50)
    search_ms = (cpu_time() - t0) / len(queries) * 1e3
    print(f"search (uncached)       : {search_ms:.3f} ms/query over {len(queries)} instructions")

    oracle = WebShopOracle(env)
    task_ids = env.tasks("all")[:n_goals]
    steps = wins = 0
    t0 = cpu_time()
    for task_id in task_ids:
        observation = env.reset(task_id)
        while True:
            transition = env.step(oracle.act(observation))
            observation, steps = transition.observation, steps + 1
            if transition.done:
                wins += transition.won
                break
    play_s = cpu_time() - t0
    print(f"oracle                  : won {wins}/{len(task_ids)} goals, {play_s / steps * 1e3:.3f} ms/step "
          f"({steps} steps)")

    rng = random.Random(0)
    prefixes = []
    for _ in range(n_restores):
        task_id = rng.choice(env.tasks("all"))
        observation, prefix = env.reset(task_id), [f"search[{env.goal(task_id).query}]"]
        observation = env.step(prefix[0]).observation
        while len(prefix) < 10:
            prefix.append(rng.choice(observation.admissible_actions))
            transition = env.step(prefix[-1])
            observation = transition.observation
            if transition.done:
                break
        prefixes.append((task_id, prefix, env.snapshot()))
    t0 = cpu_time()
    for _, _, snapshot in prefixes:
        env.restore(snapshot)
    restore_us = (cpu_time() - t0) / len(prefixes) * 1e6
    t0 = cpu_time()
    for task_id, prefix, _ in prefixes:
        env.reset(task_id)
        for action in prefix:
            env.step(action)
    replay_us = (cpu_time() - t0) / len(prefixes) * 1e6
    mean_len = sum(len(p) for _, p, _ in prefixes) / len(prefixes)
    print(f"restore vs replay       : {restore_us:.1f} us vs {replay_us:.1f} us for a {mean_len:.1f}-action prefix "
          f"-> restore {replay_us / restore_us:.1f}x faster")
    bench.measure("search ms/query", search_ms)
    bench.measure("oracle step ms", play_s / steps * 1e3)
    if not args.smoke:
        bench.goal("WebShop restore vs reset + replay of a 10-action prefix", replay_us / restore_us, 20,
                   detail=f"{restore_us:.0f} vs {replay_us:.0f} us")
    bench.finish()


if __name__ == "__main__":
    main()
