"""Multi-process training (spo3.training.distributed): random streams follow the task, the ranks' shares, the tabular
row layout, and 2 CPU processes (gloo, launched by torchrun) against 1 process with the same global batch.

Exactness: rollouts, state store and success metrics of the tabular policy are compared exactly. Update
diagnostics and the mean state score differ only by the order of float additions (the averaged gradient adds the
ranks' micro-batch gradients in another order; the tabular table's and the store's rows are numbered differently,
which changes the summation order of the gradient norm and of the mean): compared to 1e-12 relative. The tiny language model's logits depend slightly on the
shape of the batch they are computed in (each process batches only its own tasks), so its losses are compared to
1e-4 relative (1e-6 absolute for terms that are float noise around 0, such as approx_kl). An FSDP run resumed from
its checkpoint with the same number of processes repeats the straight run exactly (metrics, and the next
checkpoint's weights, optimiser state and RNG states byte for byte).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from spo3.config import ConfigError, load_config
from spo3.metrics import read_metrics
from spo3.policies.base import PolicyInput
from spo3.policies.tabular import TabularPolicy
from spo3.rollout.common import TaskStream
from spo3.rollout.group import group_rollout
from spo3.rollout.tree import TreeSearch, TreeSettings
from spo3.state import StateStore
from spo3.training.checkpoint import latest_checkpoint
from spo3.training.distributed import Distributed
from spo3.training.loop import train
from tests._data import REPO_ROOT
from tests.fakes import GraphEnv


def maze() -> GraphEnv:
    graph = {}
    for i in range(4):
        graph[f"S{i}"] = {"right": f"S{i + 1}" if i < 3 else "G", "left": f"X{i}", "wait": f"S{i}"}
        graph[f"X{i}"] = {"back": f"S{i}", "dig": f"X{i}"}
    return GraphEnv(graph, {"t0": "S0", "t1": "S1", "t2": "X2"}, goals={"G"}, max_steps=6)


# ---------------------------------------------------------------------------------------------- shares
@pytest.mark.parametrize("items", [0, 1, 3, 7, 16])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_cover_the_batch_in_order(items, world):
    shares = [Distributed(rank=r, world=world).shard(list(range(items))) for r in range(world)]
    assert [x for _, part in shares for x in part] == list(range(items))
    assert [offset for offset, _ in shares] == [sum(len(p) for _, p in shares[:r]) for r in range(world)]
    assert max(len(p) for _, p in shares) - min(len(p) for _, p in shares) <= 1


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_micro_batches_are_dealt_once(n, strategy):
    group = list(range(10, 10 + n))
    shares = [Distributed(rank=r, world=3, strategy=strategy).share(group) for r in range(3)]
    assert sorted(g for share in shares for g, w in share if w == 1.0) == group
    if strategy == "fsdp":  # every rank runs as many passes; the extra ones weigh nothing
        assert [len(share) for share in shares] == [-(-n // 3)] * 3


# ---------------------------------------------------------------------------------------------- streams
def _paths(result):
    out: dict = {}
    for s in result.samples:
        out.setdefault(s.task_id, []).append((s.call, s.key, s.action))
    return out


@pytest.mark.parametrize("mode", ["group", "tree"])
def test_rollouts_follow_the_task_not_the_batch(mode):
    """A task's rollout with its stream is the same whether it shares the batch with other tasks or not."""
    env, tasks = maze(), ["t0", "t1", "t2"]

    def rollout(indices, iteration=3):
        policy = TabularPolicy(seed=123)  # its own generator must not matter
        streams = [TaskStream.derive(7, iteration, i) for i in indices]
        chosen = [tasks[i] for i in indices]
        if mode == "group":
            return group_rollout([env] * len(chosen), chosen, policy, group_size=3, temperature=1.0, streams=streams)
        search = TreeSearch(
            [env] * len(chosen), chosen, policy, StateStore().snapshot(), TreeSettings(max_trajectories=3), None,
            streams=streams,
        )
        list(search.rounds())
        return search.result

    together = _paths(rollout([0, 1, 2]))
    alone = {**_paths(rollout([0])), **_paths(rollout([1, 2]))}
    assert together == alone
    assert together == _paths(rollout([2, 0, 1]))
    assert together != _paths(rollout([0, 1, 2], iteration=4))


def test_task_streams_are_derived_from_seed_iteration_and_index():
    draw = lambda s: (torch.rand(3, generator=s.sampling).tolist(), s.search.random())  # noqa: E731
    assert draw(TaskStream.derive(0, 1, 2)) == draw(TaskStream.derive(0, 1, 2))
    assert len({str(draw(TaskStream.derive(*k))) for k in [(0, 1, 2), (1, 1, 2), (0, 2, 2), (0, 1, 3)]}) == 4


def test_tabular_ranks_agree_on_the_row_layout():
    inputs = [PolicyInput(f"p{i}", f"c{i}", ("a", "b", f"x{i}")) for i in range(4)]
    ranks = [TabularPolicy(seed=0), TabularPolicy(seed=0)]
    for policy in ranks:  # an entry both have agreed on, then updated alike
        policy.sample(inputs[:1], [1])
        policy.adopt_entries(policy.pending_entries())
        with torch.no_grad():
            policy.logits[0] = 2.0
    ranks[0].sample([inputs[2], inputs[1]], [2, 2])
    ranks[1].sample([inputs[3], inputs[2]], [1, 1])
    before = [[policy.probabilities(inp) for inp in inputs] for policy in ranks]
    merged = [e for policy in ranks for e in policy.pending_entries()]
    for policy in ranks:
        policy.adopt_entries(merged)
    assert ranks[0]._index == ranks[1]._index
    assert list(ranks[0]._index.values()) == list(range(len(ranks[0]._index)))
    assert [[policy.probabilities(inp) for inp in inputs] for policy in ranks] == before

    lonely = TabularPolicy(seed=0)
    lonely.sample(inputs[:1], [1])
    with pytest.raises(ValueError, match="leave out"):
        lonely.adopt_entries([])


# ---------------------------------------------------------------------------------------------- 2 processes
def _torchrun(config: str, overrides: list[str], timeout: int = 300) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "spo3.cli", "train", config, *overrides,
    ]
    proc = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _records(run):
    return [r for r in read_metrics(run) if r["iteration"] > 0]


def _close(a: dict, b: dict, rtol: float, atol: float = 1e-12) -> bool:
    return a.keys() == b.keys() and all(np.isclose(a[k], b[k], rtol=rtol, atol=atol) for k in a)


def test_two_processes_equal_one_tabular_textworld(tmp_path):
    config = str(REPO_ROOT / "configs" / "textworld_tabular.yaml")
    overrides = [
        "iterations=2", "eval.every=0", "eval.episodes=2", "log.progress=false", f"log.output_dir={tmp_path}",
    ]
    one = train(load_config(config, overrides + ["log.run_name=one"]))
    _torchrun(config, overrides + ["log.run_name=two"])
    two = tmp_path / "two"

    exact = ["success_rate", "success_by_type", "finished_trajectories", "env_steps", "unique_states",
             "high_score_share", "step_samples", "sibling_groups", "n_hist", "truncations", "valid_action_ratio"]
    for a, b in zip(_records(one), _records(two), strict=True):
        assert {k: a[k] for k in exact} == {k: b[k] for k in exact}
        # the store's rows are in another order (trajectories arrive per rank): its mean adds in another order
        assert _close({"s": a["mean_state_score"], **a["loss"]}, {"s": b["mean_state_score"], **b["loss"]}, rtol=1e-12)

    stores = [StateStore.load(latest_checkpoint(run) / StateStore.FILENAME).to_dict() for run in (one, two)]
    assert stores[0]["t"] == stores[1]["t"]
    assert sorted(map(json.dumps, stores[0]["states"])) == sorted(map(json.dumps, stores[1]["states"]))

    tables = []
    for run in (one, two):
        policy = TabularPolicy()
        policy.load(latest_checkpoint(run) / "policy")
        tables.append({key: float(policy.logits[row]) for key, row in policy._index.items()})
    assert tables[0].keys() == tables[1].keys()
    assert all(abs(tables[0][k] - tables[1][k]) <= 1e-12 for k in tables[0])

    with pytest.raises(ConfigError, match="written by 2 training process"):
        train(load_config(two / "config.yaml", ["iterations=3"]), resume=True, run_dir=two)


TINY_LM = [
    "iterations=2", "warm_start.epochs=0", "algo.name=grpo", "algo.group_size=2", "env.max_steps=4",
    "policy.max_new_tokens=8", "optim.skip_no_signal=false", "optim.micro_batch_size=4", "eval.every=0",
    "eval.episodes=2", "log.progress=false",
]


@pytest.fixture(scope="module")
def tiny_lm_one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_lm")
    return train(load_config(REPO_ROOT / "configs" / "textworld_tiny_lm.yaml", TINY_LM + [f"log.output_dir={out}", "log.run_name=one"]))


@pytest.mark.slow
def test_two_processes_equal_one_tiny_lm_losses(tmp_path, tiny_lm_one_process):
    _torchrun(str(REPO_ROOT / "configs" / "textworld_tiny_lm.yaml"), TINY_LM + [f"log.output_dir={tmp_path}", "log.run_name=two"])
    records = list(zip(_records(tiny_lm_one_process), _records(tmp_path / "two"), strict=True))
    assert len(records) == 2
    for a, b in records:
        assert (a["step_samples"], a["generated_tokens"], a["env_steps"]) == (b["step_samples"], b["generated_tokens"], b["env_steps"])
        assert a["loss"]["optimizer_steps"] == b["loss"]["optimizer_steps"] == 1
        assert _close(a["loss"], b["loss"], rtol=1e-4, atol=1e-6)  # near-zero terms (approx_kl) are float noise


def _resume_from_first_checkpoint(straight, resumed):
    """Copy the straight run as if it had been killed after its first checkpoint, check that 1 process may not
    resume it, and resume it with 2 processes."""
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "iter_000002")
    with pytest.raises(ConfigError, match=r"written by 2 training process\(es\), this run has 1") as refused:
        train(load_config(resumed / "config.yaml"), resume=True, run_dir=resumed)
    assert "\n" not in str(refused.value)
    _torchrun(str(resumed), ["--resume"])


def _assert_same_run(straight, resumed):
    """Same metrics (timings aside), and the same weights, optimiser state, RNG states and store in the last
    checkpoint, byte for byte."""
    without_time = lambda run: [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run)]  # noqa: E731
    assert without_time(resumed) == without_time(straight)
    files = [json.loads((run / "checkpoints" / "iter_000002" / "manifest.json").read_text())["files"] for run in (straight, resumed)]
    compared = [f for f in files[0] if f.endswith(".safetensors") or f in ("optimizer.pt", "rng.pt", StateStore.FILENAME)]
    assert {f: files[0][f] for f in compared} == {f: files[1].get(f) for f in compared}
    return compared


@pytest.mark.slow
def test_fsdp_two_processes_train_evaluate_checkpoint_and_resume(tmp_path, tiny_lm_one_process):
    """FSDP (bf16 compute) on 2 CPU processes: same rollouts as 1 process here, entropy within bf16 precision, a
    checkpoint with the whole fp32 weights that a plain policy loads, and a resume from the first checkpoint that
    repeats the straight run exactly (refused with 1 process)."""
    config = REPO_ROOT / "configs" / "textworld_tiny_lm.yaml"
    _torchrun(str(config), TINY_LM + [f"log.output_dir={tmp_path}", "log.run_name=fsdp", "dist.strategy=fsdp", "eval.every=1"])
    run = tmp_path / "fsdp"
    for a, b in zip(_records(tiny_lm_one_process), _records(run), strict=True):
        assert b["loss"]["optimizer_steps"] == 1 and "eval" in b
        assert np.isclose(a["loss"]["entropy"], b["loss"]["entropy"], rtol=1e-3)
    from spo3.training.builders import build_env, build_policy, env_corpus, task_list
    from spo3.training.checkpoint import load_checkpoint

    cfg = load_config(run / "config.yaml")
    env = build_env(cfg.env, cfg.seed)
    policy = build_policy(cfg.policy, cfg.seed, env_corpus(env, task_list(env, cfg.env, cfg.env.train_split, cfg.seed)))
    before = [p.detach().clone() for p in policy.parameters()]
    optimizer = torch.optim.AdamW(policy.parameters())
    load_checkpoint(latest_checkpoint(run), policy, optimizer)  # the one-process format: also the optimiser state
    changed = [not torch.equal(p, q) for p, q in zip(policy.parameters(), before)]
    assert any(changed) and all(p.dtype == torch.float32 for p in policy.parameters())
    assert len(optimizer.state) == len(before)

    _resume_from_first_checkpoint(run, tmp_path / "resumed")
    assert "policy/weights.safetensors" in _assert_same_run(run, tmp_path / "resumed")


@pytest.mark.slow
def test_fsdp_lora_resume_after_warm_start(tmp_path):
    """LoRA under FSDP, warm-started (the adapter is folded into the base weights, which the checkpoints then
    hold): a resume from the first checkpoint repeats the straight run exactly."""
    config = REPO_ROOT / "configs" / "textworld_tiny_lm.yaml"
    overrides = [*TINY_LM, "warm_start.epochs=1", "warm_start.cache=false", "policy.lora_rank=4", "dist.strategy=fsdp"]
    _torchrun(str(config), overrides + [f"log.output_dir={tmp_path}", "log.run_name=straight"])
    _resume_from_first_checkpoint(tmp_path / "straight", tmp_path / "resumed")
    assert "policy/weights.safetensors" in _assert_same_run(tmp_path / "straight", tmp_path / "resumed")
