"""GPU readiness check: one script, no download, a JSON and a table (issue 11, "Ready for a GPU machine").

Measures, on a randomly initialised Qwen2 of Qwen2.5-0.5B's shape (about 0.5B parameters, bf16):

1. generation tokens/s with the HF engine, and with the vLLM engine if vllm is installed, at batch 8, 32 and 64
   (prompts of about 200 tokens, 128 new tokens; a random model rarely stops early);
2. the time and peak GPU memory of one PPO update (``spo3.training.update.ppo_update``, AdamW, full fine-tuning)
   on 32 sampled responses;
3. one 3SPO iteration of the trainer (``spo3.training.loop.train``) on a TextWorld game with this model;
4. a 2-rank NCCL all-reduce of 256 MB when 2 GPUs are present (bus bandwidth as nccl-tests counts it).

Meant to finish in well under 8 minutes on one GPU. ``--smoke`` runs the same code on the CPU at tiny sizes
(seconds; the all-reduce then uses gloo) so that the test suite keeps the script working.

    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --smoke --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from spo3.config import OptimConfig, load_config  # noqa: E402
from spo3.envs.base import Observation  # noqa: E402
from spo3.envs.prompts import render_prompt  # noqa: E402
from spo3.metrics import read_metrics  # noqa: E402
from spo3.policies.base import PolicyInput  # noqa: E402
from spo3.policies.hf import HFPolicy  # noqa: E402
from spo3.policies.hf_models import prompt_vocabulary, train_tiny_tokenizer  # noqa: E402
from spo3.rollout.common import StepSample  # noqa: E402
from spo3.training.loop import train  # noqa: E402
from spo3.training.update import build_optimizer, ppo_update  # noqa: E402

QWEN25_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                  intermediate_size=4864, vocab_size=151936)
"""Qwen2.5-0.5B's shape (494M parameters with tied embeddings)."""
SMOKE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128)


def random_qwen2(tokenizer: Any, shape: dict[str, int], dtype: torch.dtype, device: str) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        **{"vocab_size": len(tokenizer), **shape}, max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.device(device):
            return Qwen2ForCausalLM(config).to(dtype)


def decisions(count: int, words: int) -> list[PolicyInput]:
    """``count`` distinct TextWorld decisions with an observation of about ``words`` words."""
    out = []
    for i in range(count):
        text = f"Room {i}. " + " ".join(["You see a chest, a table and a closed door to the north."] * (words // 12))
        obs = Observation(text, ("go north", "open chest", "take coin"), f"game-{i}", "find the coin", 0)
        out.append(PolicyInput(render_prompt(obs, (), "textworld"), text, obs.admissible_actions))
    return out


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> tuple[Any, float]:
    synchronize(device)
    t0 = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - t0


def generation(policy: HFPolicy, batches: list[int], words: int, device: str) -> dict[str, Any]:
    policy.sample(decisions(2, words), [1, 1])  # warm-up (kernels, allocator; vLLM: first weight sync)
    out = {}
    for batch in batches:
        responses, seconds = timed(lambda: policy.sample(decisions(batch, words), [1] * batch), device)
        tokens = sum(len(r[0].token_ids) for r in responses)
        out[str(batch)] = {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}
    return out


def training_step(policy: HFPolicy, batch: int, words: int, device: str) -> dict[str, Any]:
    inputs = decisions(batch, words)
    responses = [r[0] for r in policy.sample(inputs, [1] * batch)]
    generator = torch.Generator().manual_seed(0)
    samples = [
        StepSample(task_id="g", input=inp, response=resp, action="look", valid=True, key="k", next_key="k",
                   anchor="", env_reward=0.0, won=False, done=False, group=0, traj=i,
                   advantage=float(torch.randn((), generator=generator)))
        for i, (inp, resp) in enumerate(zip(inputs, responses))
    ]
    optim = OptimConfig(lr=1e-6, mini_batch_size=batch, micro_batch_size=min(8, batch))
    optimizer = build_optimizer(policy, optim)
    ppo_update(policy, optimizer, samples[:2], optim)  # warm-up: allocates the optimiser state
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    diag, seconds = timed(lambda: ppo_update(policy, optimizer, samples, optim), device)
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    return {
        "responses": batch, "response_tokens": sum(len(r.token_ids) for r in responses), "seconds": seconds,
        "peak_gpu_memory_gb": peak / 2**30 if peak is not None else None,
        "peak_process_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "optimizer_steps": diag["optimizer_steps"],
    }


def spo3_iteration(model_dir: Path, device: str, dtype: str, max_new_tokens: int, out_dir: Path) -> dict[str, Any]:
    cfg = load_config(None, [
        "env.name=textworld", "env.textworld.level=3", "env.textworld.train_seeds=[0]", "env.eval_split=train",
        "env.max_steps=8", "policy.kind=hf", f"policy.model={model_dir}", f"policy.device={device}",
        f"policy.dtype={dtype}", f"policy.max_new_tokens={max_new_tokens}", "algo.name=3spo", "algo.g_max=4",
        "algo.max_trajectories=2", "algo.max_env_steps=16", "iterations=1", "tasks_per_iteration=1", "eval.every=0",
        "eval.episodes=1", "optim.micro_batch_size=8", "log.progress=false", f"log.output_dir={out_dir}",
        "log.run_name=spo3_iteration",
    ])
    record = [r for r in read_metrics(train(cfg)) if r["iteration"] == 1][0]
    return {"seconds": record["time"], "env_steps": record["env_steps"], "generated_tokens": record["generated_tokens"],
            "finished_trajectories": record["finished_trajectories"], "step_samples": record["step_samples"]}


def _all_reduce_rank(rank: int, backend: str, numel: int, port: int, result_file: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=rank, world_size=2)
    device = f"cuda:{rank}" if backend == "nccl" else "cpu"
    tensor = torch.ones(numel, dtype=torch.float32, device=device)
    for _ in range(3):  # warm-up
        dist.all_reduce(tensor)
    synchronize(device)
    t0 = time.perf_counter()
    repeats = 10
    for _ in range(repeats):
        dist.all_reduce(tensor)
    synchronize(device)
    seconds = (time.perf_counter() - t0) / repeats
    if rank == 0:
        size = numel * 4
        Path(result_file).write_text(json.dumps({
            "backend": backend, "bytes": size, "seconds": seconds, "bus_bandwidth_gb_s": 2 * (2 - 1) / 2 * size / seconds / 1e9,
            "correct": bool(tensor[0].item() == 2.0 ** (3 + repeats)),
        }))
    dist.destroy_process_group()


def all_reduce(backend: str, numel: int) -> dict[str, Any]:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        mp.spawn(_all_reduce_rank, args=(backend, numel, port, f.name), nprocs=2, join=True)
        return json.loads(Path(f.name).read_text())


def table(report: dict[str, Any]) -> str:
    lines = [f"spo3 gpu_check on {report['device']} ({report['model']['parameters'] / 1e6:.1f}M-parameter random Qwen2, "
             f"{report['model']['dtype']}){' [smoke]' if report['smoke'] else ''}", ""]
    lines.append("| measurement | value |")
    lines.append("|---|---|")
    for engine, results in report["generation"].items():
        if isinstance(results, str):
            lines.append(f"| generation, {engine} | {results} |")
            continue
        for batch, r in results.items():
            lines.append(f"| generation, {engine}, batch {batch} | {r['tokens_per_s']:,.0f} tokens/s ({r['tokens']} tokens in {r['seconds']:.2f} s) |")
    step = report["training_step"]
    memory = f"{step['peak_gpu_memory_gb']:.2f} GB GPU peak" if step["peak_gpu_memory_gb"] is not None else f"{step['peak_process_rss_gb']:.2f} GB RSS peak"
    lines.append(f"| PPO update, {step['responses']} responses ({step['response_tokens']} tokens) | {step['seconds']:.2f} s, {memory} |")
    it = report["spo3_iteration"]
    if isinstance(it, str):
        lines.append(f"| 3SPO iteration, TextWorld | {it} |")
    else:
        lines.append(f"| 3SPO iteration, TextWorld ({it['env_steps']} env steps, {it['generated_tokens']} tokens) | "
                     f"{it['seconds']['iteration']:.2f} s (generate {it['seconds']['generate']:.2f}, update {it['seconds']['update']:.2f}) |")
    ar = report["all_reduce"]
    if isinstance(ar, str):
        lines.append(f"| 2-rank all-reduce | {ar} |")
    else:
        lines.append(f"| 2-rank all-reduce ({ar['backend']}, {ar['bytes'] / 2**20:.0f} MB) | {ar['seconds'] * 1e3:.2f} ms, "
                     f"bus bandwidth {ar['bus_bandwidth_gb_s']:.1f} GB/s, {'correct' if ar['correct'] else 'WRONG SUM'} |")
    lines.append(f"| total wall time | {report['wall_seconds']:.0f} s |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes (seconds), for the test suite")
    parser.add_argument("--out", default="gpu_check.json", help="where to write the JSON report")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.smoke:
        device, dtype, shape, batches, new_tokens, words, train_batch = "cpu", "float32", SMOKE, [2, 4], 8, 24, 4
    else:
        if not torch.cuda.is_available():
            print("gpu_check: no CUDA device (run with --smoke on a CPU)")
            return 1
        device, dtype, shape, batches, new_tokens, words, train_batch = "cuda", "bfloat16", QWEN25_05B, [8, 32, 64], 128, 180, 32
    torch.manual_seed(0)
    tokenizer = train_tiny_tokenizer(prompt_vocabulary())
    model = random_qwen2(tokenizer, shape, getattr(torch, dtype), device)
    parameters = sum(p.numel() for p in model.parameters())
    work = Path(tempfile.mkdtemp(prefix="spo3-gpu-check-"))
    model_dir = work / "model"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    report: dict[str, Any] = {
        "smoke": args.smoke, "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
        "gpus": torch.cuda.device_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "model": {"parameters": parameters, "dtype": dtype, **shape, "vocab_size": model.config.vocab_size},
        "generation": {},
    }
    policy = HFPolicy(model, tokenizer, max_new_tokens=new_tokens)
    report["generation"]["hf"] = generation(policy, batches, words, device)
    report["training_step"] = training_step(policy, train_batch, words, device)
    del policy, model
    if device == "cuda":
        torch.cuda.empty_cache()

    if importlib.util.find_spec("vllm") is None:
        report["generation"]["vllm"] = "not installed"
    elif device != "cuda":
        report["generation"]["vllm"] = "skipped (needs CUDA)"
    else:
        try:
            from spo3.config import PolicyConfig
            from spo3.policies.engines.vllm import VLLMEngine
            from transformers import AutoModelForCausalLM

            base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device)
            engine = VLLMEngine.colocated(base, tokenizer, str(model_dir), PolicyConfig(kind="hf", backend="vllm", dtype=dtype, gpu_memory_utilization=0.3), 0)
            report["generation"]["vllm"] = generation(HFPolicy(base, tokenizer, max_new_tokens=new_tokens, engine=engine), batches, words, device)
        except Exception as exc:  # noqa: BLE001 - the report says what failed
            report["generation"]["vllm"] = f"failed: {type(exc).__name__}: {exc}"[:300]

    try:
        report["spo3_iteration"] = spo3_iteration(model_dir, device, dtype, 8 if args.smoke else 32, work / "runs")
    except Exception as exc:  # noqa: BLE001
        report["spo3_iteration"] = f"failed: {type(exc).__name__}: {exc}"[:300]

    if args.smoke:
        report["all_reduce"] = all_reduce("gloo", 1 << 16)
    elif torch.cuda.device_count() >= 2:
        report["all_reduce"] = all_reduce("nccl", 64 << 20)
    else:
        report["all_reduce"] = f"skipped ({torch.cuda.device_count()} GPU)"

    report["wall_seconds"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(table(report))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
