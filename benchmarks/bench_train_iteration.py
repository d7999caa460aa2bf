"""Cost of a tiny-LM 3SPO training iteration: today's against the first release's, side by side (issue 13).

Goal: an iteration at least 1.5x faster than the first release's, with the same metrics. Both are measured in the
same process, on the same configuration (``configs/textworld_tiny_lm.yaml``) and the same cached warm start:

* before: the first release's computation, emulated exactly: its update (old and reference log-probabilities of
  every micro-batch, also of mini-batches then skipped for having no non-zero advantage, and never the sampling
  log-probabilities: ``optim.reuse_sampling_logprobs=false``) and its scoring (every row its own pass over its
  prompt, in scoring and generation: ``policy.share_prompts=false``, set on the built policy so that both sides
  share one warm start);
* after: the current defaults (skipped mini-batches cost nothing; old log-probabilities recorded at sampling;
  siblings scored and generated over one pass of their shared prompt).

The two settings alternate, after-before-before-after (the first run also pays the process's first calls), and
each side's time is the CPU time of its iterations' rollouts and updates (the machine is shared: other processes
stretch wall time unevenly; wall time is printed too). The load average is printed at the start and the end.

    python benchmarks/bench_train_iteration.py            # 4 iterations per run, 2 runs per side
    python benchmarks/bench_train_iteration.py --smoke    # 1 iteration, 1 run per side, fewer steps, for CI

The metrics of every run are compared record by record with the first run's (times left out): the recorded and
shared-prompt log-probabilities equal a fresh per-row forward pass up to float rounding, so the loss diagnostics
may differ in the last digits; everything else (successes, states, steps, tokens, evaluations) is printed as
identical or not. The warm start (not timed) comes from spo3's cache (``$SPO3_CACHE``, ``~/.cache/spo3``): the
first run on a machine trains it (a minute or two), every later one loads it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from common import Bench, add_arguments, cpu_time

import spo3.training.loop as loop
from spo3.config import load_config
from spo3.metrics import read_metrics
from spo3.training.update import ppo_update

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "configs" / "textworld_tiny_lm.yaml"
GOAL = 1.5
ORDER = ("after", "before", "before", "after")


def release_update(policy, optimizer, samples, optim, dist=None):
    """The first release's ``ppo_update``: the log-probabilities its eager pass computed for mini-batches that it
    then skipped, plus the current update without reuse (which computes them for the stepping ones)."""
    micro = [samples[i : i + optim.micro_batch_size] for i in range(0, len(samples), optim.micro_batch_size)]
    per_mini = max(1, optim.mini_batch_size // optim.micro_batch_size)
    with torch.no_grad():
        for start in range(0, len(micro), per_mini):
            group = micro[start : start + per_mini]
            if optim.skip_no_signal and all(s.advantage == 0 for part in group for s in part):
                for part in group:
                    inputs, responses = [s.input for s in part], [s.response for s in part]
                    policy.token_scores(inputs, responses, entropy=False)
                    policy.reference_logprobs(inputs, responses)
    return ppo_update(policy, optimizer, samples, replace(optim, reuse_sampling_logprobs=False), dist)


def run(label: str, name: str, overrides: list[str], out: Path) -> dict:
    """Train once as ``label`` ("before" or "after"); the CPU and wall seconds of its iterations, records, counts."""
    cfg = load_config(CONFIG, [*overrides, f"log.output_dir={out}", f"log.run_name={name}", "log.progress=false"])
    calls = {"updates": 0, "optimizer_steps": 0, "cpu": 0.0}
    update = release_update if label == "before" else ppo_update
    build_policy, rollout_and_update = loop.build_policy, loop._rollout_and_update

    def built(*args, **kwargs):
        policy = build_policy(*args, **kwargs)
        policy.share_prompts = label == "after"
        return policy

    def counted(policy, optimizer, samples, optim, dist=None):
        diag = update(policy, optimizer, samples, optim, dist)
        calls["updates"] += 1
        calls["optimizer_steps"] += diag["optimizer_steps"]
        return diag

    def timed(*args, **kwargs):
        start = cpu_time()
        try:
            return rollout_and_update(*args, **kwargs)
        finally:
            calls["cpu"] += cpu_time() - start

    loop.build_policy, loop.ppo_update, loop._rollout_and_update = built, counted, timed
    try:
        records = read_metrics(loop.train(cfg))
    finally:
        loop.build_policy, loop.ppo_update, loop._rollout_and_update = build_policy, ppo_update, rollout_and_update
    wall = sum(r["time"].get("iteration", 0.0) for r in records if "time" in r)
    iterations = sum(1 for r in records if "iteration" in r.get("time", {}))
    return {"label": label, "cpu": calls["cpu"], "wall": wall, "iterations": iterations, "records": records, **calls}


def differences(first: list[dict], other: list[dict]) -> tuple[list[str], float]:
    """Keys (other than times and loss diagnostics) whose values differ, and the largest loss-diagnostic gap."""
    differ, loss_gap = set(), 0.0
    if len(first) != len(other):
        return ["number of records"], float("nan")
    for a, b in zip(first, other):
        for key in set(a) | set(b):
            if key == "time":
                continue
            if key == "loss":
                for k in set(a[key]) | set(b[key]):
                    loss_gap = max(loss_gap, abs(a[key].get(k, float("nan")) - b[key].get(k, float("nan"))))
            elif json.dumps(a.get(key), sort_keys=True) != json.dumps(b.get(key), sort_keys=True):  # NaN == NaN
                differ.add(key)
    return sorted(differ), loss_gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--iterations", type=int, default=4)
    args = parser.parse_args()
    bench = Bench.from_args("bench_train_iteration", args)
    overrides = [f"iterations={1 if args.smoke else args.iterations}", "eval.every=0", "eval.episodes=2"]
    order = ORDER[:2] if args.smoke else ORDER
    if args.smoke:
        overrides += ["tasks_per_iteration=1", "warm_start.epochs=1", "algo.max_env_steps=6", "policy.max_new_tokens=8",
                      "eval.episodes=1"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); config {CONFIG.relative_to(REPO_ROOT)} "
          f"{' '.join(overrides)}; runs {', '.join(order)}")
    with tempfile.TemporaryDirectory(prefix="spo3-bench-train-") as tmp:
        out = Path(tmp)
        if args.smoke:  # else spo3's warm-start cache: trained by the first run ever, loaded by every later one
            overrides.append(f"warm_start.cache_dir={out / 'warm_start'}")
        t0 = time.perf_counter()
        runs = [run(label, f"{label}-{i}", overrides, out) for i, label in enumerate(order)]
        total = time.perf_counter() - t0
    sides = {}
    for label in ("before", "after"):
        mine = [r for r in runs if r["label"] == label]
        iterations = sum(r["iterations"] for r in mine)
        sides[label] = {k: sum(r[k] for r in mine) for k in ("cpu", "wall")}
        per_run = ", ".join(f"{r['cpu']:.1f}" for r in mine)
        print(f"{label:<7}: {sides[label]['cpu'] / iterations:6.2f} CPU s/iteration ({sides[label]['wall'] / iterations:.2f} "
              f"wall) over {len(mine)} run(s) of {mine[0]['iterations']} iterations, each {mine[0]['updates']} updates, "
              f"{mine[0]['optimizer_steps']} optimiser steps; per run CPU s: {per_run}")
    ratio = sides["before"]["cpu"] / sides["after"]["cpu"]
    differ, loss_gap = set(), 0.0
    for other in runs[1:]:
        keys, gap = differences(runs[0]["records"], other["records"])
        differ.update(keys)
        loss_gap = max(loss_gap, gap)
    verdict = "identical" if not differ else "DIFFER in " + ", ".join(sorted(differ))
    print(f"speed-up: {ratio:.2f}x CPU time, {sides['before']['wall'] / sides['after']['wall']:.2f}x wall time  "
          f"(goal >= {GOAL}x)")
    print(f"metrics : {verdict} in all {len(runs)} runs apart from times; largest loss-diagnostic difference "
          f"{loss_gap:.1e}; wall time {total:.0f} s (all runs)")
    for label in ("before", "after"):
        bench.measure(f"CPU seconds per iteration ({label})", sides[label]["cpu"] / sum(r["iterations"] for r in runs if r["label"] == label))
    bench.measure("wall-time ratio", sides["before"]["wall"] / sides["after"]["wall"])
    bench.measure("largest loss-diagnostic difference", loss_gap)
    if not args.smoke:
        bench.goal("tiny-LM 3SPO iteration vs the first release's (identical metrics)", ratio, GOAL,
                   detail=f"CPU time, runs alternated; metrics {verdict}")
    bench.finish()
    if differ:  # the speed-ups must not change what training does (the smoke run in the test suite checks it too)
        raise SystemExit(f"bench_train_iteration: the metrics of the runs differ in {', '.join(sorted(differ))}")


if __name__ == "__main__":
    main()
