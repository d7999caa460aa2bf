"""The warm start's disk cache: a hit gives exactly what retraining gives, and any change of its inputs misses."""

import pytest
import torch

import spo3.training.warm_start as warm_module
from spo3.config import load_config
from spo3.metrics import read_metrics
from spo3.training.builders import build_policy, env_corpus
from spo3.training.loop import train
from spo3.training.warm_start import expert_decisions, expert_for, warm_start, warm_start_key
from tests.fakes import GraphEnv


class WalkedMaze(GraphEnv):
    """The maze of tests/test_train.py with walkthroughs (go right until the goal)."""

    def __init__(self, goal_right: int = 4):
        graph = {}
        for i in range(goal_right):
            graph[f"S{i}"] = {"right": f"S{i + 1}" if i < goal_right - 1 else "G", "left": f"X{i}", "wait": f"S{i}"}
            graph[f"X{i}"] = {"back": f"S{i}", "dig": f"X{i}"}
        super().__init__(graph, {"t0": "S0", "t1": "S1"}, goals={"G"}, max_steps=8)
        self.goal_right = goal_right

    def walkthrough(self, task_id):
        return ["right"] * (self.goal_right - int(self.starts[task_id][1]))


def config(tmp_path, *extra):
    return load_config(None, [
        "algo.name=3spo", "iterations=2", "tasks_per_iteration=2", "optim.lr=0.02", "optim.weight_decay=0",
        "algo.max_trajectories=4", "eval.every=1", "eval.episodes=4", "env.eval_split=train", "log.progress=false",
        f"log.output_dir={tmp_path}", "warm_start.epochs=3", "warm_start.lr=0.5",
        f"warm_start.cache_dir={tmp_path / 'cache'}", *extra,
    ])


@pytest.fixture
def trainings(monkeypatch):
    """Counts the supervised phases actually run."""
    calls = []
    original = warm_module.supervised_update
    monkeypatch.setattr(warm_module, "supervised_update", lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def records(run):
    return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run)]


def test_a_cache_hit_gives_the_run_a_retrain_gives(tmp_path, trainings):
    first = train(config(tmp_path, "log.run_name=first"), env=WalkedMaze())
    assert len(trainings) == 1 and len(list((tmp_path / "cache").iterdir())) == 1
    second = train(config(tmp_path, "log.run_name=second"), env=WalkedMaze())
    assert len(trainings) == 1  # loaded, not retrained
    uncached = train(config(tmp_path, "log.run_name=uncached", "warm_start.cache=false"), env=WalkedMaze())
    assert len(trainings) == 2
    assert records(first)[0]["warm_start_loss"]
    assert records(first) == records(second) == records(uncached)
    other_method = train(config(tmp_path, "log.run_name=grpo", "algo.name=grpo"), env=WalkedMaze())
    assert len(trainings) == 2  # methods share the warm start
    assert records(other_method)[0]["warm_start_loss"] == records(first)[0]["warm_start_loss"]


@pytest.mark.parametrize("change", [
    "seed=1", "warm_start.epochs=4", "warm_start.lr=0.4", "warm_start.tasks=1", "optim.micro_batch_size=1",
    "policy.tabular_capacity=4096", "env.history_length=1", "data", "weights",
])
def test_any_changed_input_misses_the_cache(tmp_path, change):
    def key(cfg, env, policy=None):
        torch.manual_seed(cfg.seed)
        policy = policy or build_policy(cfg.policy, cfg.seed)
        tasks = env.tasks("train")[: cfg.warm_start.tasks or None]
        decisions = expert_decisions(env, tasks, expert_for(env), cfg.algo.state_scope, cfg.env.history_length)
        return warm_start_key(policy, decisions, cfg)

    base = config(tmp_path)
    assert key(base, WalkedMaze()) == key(base, WalkedMaze())
    if change == "data":
        changed = key(base, WalkedMaze(goal_right=3))
    elif change == "weights":
        policy = build_policy(base.policy, base.seed)
        env = WalkedMaze()
        inp, reply = expert_decisions(env, ["t0"], expert_for(env))[0]
        policy.token_scores([inp], [policy.response_for(inp, reply)])  # the table now has entries
        unchanged = key(base, WalkedMaze(), policy)
        with torch.no_grad():
            policy.logits[0] += 1.0
        assert key(base, WalkedMaze(), policy) != unchanged
        return
    else:
        changed = key(config(tmp_path, change), WalkedMaze())
    assert changed != key(base, WalkedMaze())


def test_a_damaged_entry_is_reported_and_retrained(tmp_path, trainings):
    cfg = config(tmp_path)
    env = WalkedMaze()
    fresh = build_policy(cfg.policy, cfg.seed)
    losses = warm_start(fresh, env, env.tasks("train"), cfg)
    (entry,) = (tmp_path / "cache").iterdir()
    weights = next(entry.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-3] + b"bad")
    again = build_policy(cfg.policy, cfg.seed)
    with pytest.warns(UserWarning, match="damaged"):
        assert warm_start(again, env, env.tasks("train"), cfg) == losses
    assert len(trainings) == 2
    torch.testing.assert_close(again.logits, fresh.logits, rtol=0, atol=0)


def test_a_cached_tiny_language_model_is_bit_identical(tmp_path, trainings):
    cfg = config(tmp_path, "policy.kind=hf", "policy.model=tiny", "policy.max_new_tokens=8", "warm_start.epochs=1",
                 "warm_start.lr=1e-3")
    env = WalkedMaze()
    policies = []
    for _ in range(2):
        torch.manual_seed(cfg.seed)
        policy = build_policy(cfg.policy, cfg.seed, env_corpus(env, env.tasks("train")))
        losses = warm_start(policy, env, env.tasks("train"), cfg)
        policies.append((policy, losses, torch.get_rng_state(), policy.rng_state()["generator"]))
    assert len(trainings) == 1
    (a, losses_a, rng_a, gen_a), (b, losses_b, rng_b, gen_b) = policies
    assert losses_a == losses_b and torch.equal(rng_a, rng_b) and torch.equal(gen_a, gen_b)
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
