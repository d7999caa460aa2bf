"""Cost of a tiny-LM 3SPO training iteration before and after the update wastes no forward pass (issue 13).

Goal: an iteration at least 1.5x faster than the first release's, with the same metrics. Both are measured in the
same run, on the same configuration (``configs/textworld_tiny_lm.yaml``) and the same cached warm start:

* before: the release's update, emulated exactly: old and reference log-probabilities of every micro-batch,
  also of mini-batches then skipped for having no non-zero advantage, and never the sampling log-probabilities
  (``optim.reuse_sampling_logprobs=false``);
* after: the current update (skipped mini-batches cost nothing; old log-probabilities recorded at sampling).

    python benchmarks/bench_train_iteration.py            # 6 iterations per side
    python benchmarks/bench_train_iteration.py --smoke    # 1 iteration per side, fewer steps (seconds), for CI

The metrics of the two runs are compared record by record (times left out): the reused old log-probabilities equal
a forward pass up to float error, so the loss diagnostics may differ in the last digits; everything else (successes,
states, steps, tokens, evaluations) is printed as identical or not.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from common import Bench, add_arguments

import spo3.training.loop as loop
from spo3.config import load_config
from spo3.metrics import read_metrics
from spo3.training.update import ppo_update

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "configs" / "textworld_tiny_lm.yaml"
GOAL = 1.5


def release_update(policy, optimizer, samples, optim):
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
    return ppo_update(policy, optimizer, samples, replace(optim, reuse_sampling_logprobs=False))


def run(label: str, overrides: list[str], out: Path) -> tuple[float, list[dict], dict]:
    """Train once; returns the summed iteration time (warm start and evaluations excluded), records, counts."""
    cfg = load_config(CONFIG, [*overrides, f"log.output_dir={out}", f"log.run_name={label}", "log.progress=false"])
    calls = {"updates": 0, "optimizer_steps": 0}
    update = release_update if label == "before" else ppo_update

    def counted(policy, optimizer, samples, optim, dist=None):
        diag = update(policy, optimizer, samples, optim)
        calls["updates"] += 1
        calls["optimizer_steps"] += diag["optimizer_steps"]
        return diag

    loop.ppo_update = counted
    try:
        records = read_metrics(loop.train(cfg))
    finally:
        loop.ppo_update = ppo_update
    seconds = sum(r["time"].get("iteration", 0.0) for r in records if "time" in r)
    return seconds, records, calls


def differences(before: list[dict], after: list[dict]) -> tuple[list[str], float]:
    """Keys (other than times and loss diagnostics) whose values differ, and the largest loss-diagnostic gap."""
    differ, loss_gap = set(), 0.0
    if len(before) != len(after):
        return ["number of records"], float("nan")
    for a, b in zip(before, after):
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
    parser.add_argument("--iterations", type=int, default=6)
    args = parser.parse_args()
    bench = Bench.from_args("bench_train_iteration", args)
    overrides = [f"iterations={1 if args.smoke else args.iterations}", "eval.every=0", "eval.episodes=2"]
    if args.smoke:
        overrides += ["tasks_per_iteration=1", "warm_start.epochs=1", "algo.max_env_steps=6", "policy.max_new_tokens=8",
                      "eval.episodes=1"]
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); load average {load[0]:.2f} "
          f"(1 min) on {os.cpu_count()} cores; config {CONFIG.relative_to(REPO_ROOT)} {' '.join(overrides)}")
    with tempfile.TemporaryDirectory(prefix="spo3-bench-train-") as tmp:
        out = Path(tmp)
        overrides.append(f"warm_start.cache_dir={out / 'warm_start'}")  # trained by the first run, loaded by the second
        t0 = time.perf_counter()
        results = {label: run(label, overrides, out) for label in ("before", "after")}
        total = time.perf_counter() - t0
    for label, (seconds, records, calls) in results.items():
        iterations = sum(1 for r in records if "iteration" in r.get("time", {}))
        print(f"{label:<7}: {seconds / iterations:6.2f} s/iteration over {iterations} iterations  "
              f"({calls['updates']} updates, {calls['optimizer_steps']} optimiser steps)")
    ratio = results["before"][0] / results["after"][0]
    differ, loss_gap = differences(results["before"][1], results["after"][1])
    print(f"speed-up: {ratio:.2f}x  (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'})")
    print(f"metrics : {'identical' if not differ else 'DIFFER in ' + ', '.join(differ)} apart from times; "
          f"largest loss-diagnostic difference {loss_gap:.1e}")
    print(f"load average after: {os.getloadavg()[0]:.2f}; wall time {total:.0f} s (both runs, warm start once)")
    bench.measure("seconds per iteration (before, after)", [results[k][0] for k in ("before", "after")])
    if not args.smoke:
        bench.goal("tiny-LM 3SPO iteration vs the first release's update (wall time)", ratio, GOAL,
                   detail="metrics " + ("identical" if not differ else "DIFFER in " + ", ".join(differ)))
    bench.finish()


if __name__ == "__main__":
    main()
