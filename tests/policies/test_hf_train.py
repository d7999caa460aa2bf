"""The tiny language-model policy inside the real trainer: a GRPO run resumes exactly from its checkpoint
(policy weights, tokenizer, optimiser state and the policy's sampling RNG all round-trip)."""

import numpy as np
import torch

import spo3.training.loop as train_module
from spo3.rollout.common import TaskStream
from spo3.config import load_config
from spo3.policies.hf import HFPolicy
from spo3.metrics import read_metrics
from spo3.state import StateStore
from spo3.training.loop import train
from spo3.training.update import build_optimizer
from tests.fakes import GraphEnv


def corridor() -> GraphEnv:
    graph = {"S0": {"right": "S1", "wait": "S0"}, "S1": {"right": "G", "left": "S0"}}
    return GraphEnv(graph, {"t0": "S0"}, goals={"G"}, max_steps=3)


def config(tmp_path, name, *extra):
    return load_config(None, [
        "policy.kind=hf", "policy.model=tiny", "policy.max_new_tokens=6", "algo.name=grpo", "algo.group_size=2",
        "iterations=2", "tasks_per_iteration=1", "optim.lr=1e-3", "eval.every=1", "eval.episodes=1",
        "env.eval_split=train", "log.progress=false", f"log.output_dir={tmp_path}", f"log.run_name={name}", *extra,
    ])


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_hf_policy_run_resumes_exactly(tmp_path, monkeypatch):
    built = []
    original = HFPolicy.__init__

    def spy(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(HFPolicy, "__init__", spy)
    straight = train(config(tmp_path, "straight"), env=corridor())
    assert built, "the trainer did not build an HFPolicy"
    train(config(tmp_path, "half", "iterations=1"), env=corridor())
    resumed = train(config(tmp_path, "half"), resume=True, env=corridor())
    records = read_metrics(straight)
    assert [r["iteration"] for r in records] == [0, 1, 2]
    assert records[-1]["generated_tokens"] > 0 and records[-1]["loss"]["optimizer_steps"] == 1
    assert without_time(read_metrics(resumed)) == without_time(records)


def test_round_of_single_rollouts_leaves_the_model_bit_identical(tmp_path, make_policy):
    # g_max = 1: only n = 1 expansions; even with verl's KL/entropy-only steps (skip_no_signal=false), the
    # singleton rows are dropped and no parameter moves (with singleton_rows=keep the entropy term moves them).
    for singleton_rows in ("drop", "keep"):
        cfg = config(tmp_path, "bits", "algo.name=3spo", "algo.g_max=1", "algo.max_trajectories=1",
                     "optim.skip_no_signal=false", f"algo.singleton_rows={singleton_rows}")
        policy = make_policy(max_new_tokens=6)
        before = [p.detach().clone() for p in policy.parameters()]
        optimizer = build_optimizer(policy, cfg.optim)
        result, _ = train_module._rollout_and_update(
            cfg, [corridor()], ["t0"], policy, optimizer, StateStore(cfg.algo.score_params()).snapshot(), [TaskStream.derive(0, 1, 0)]
        )
        assert set(result.stats.n_hist) == {1} and result.samples
        same = all(torch.equal(p.detach(), b) for p, b in zip(policy.parameters(), before))
        assert same == (singleton_rows == "drop"), singleton_rows
