"""The training loop end to end on a hand-built maze: 3SPO really active, determinism, exact resumption."""

import json
import shutil

import numpy as np
import pytest
import torch

import spo3.training.loop as train_module
from spo3.rollout.common import TaskStream
from spo3.training.checkpoint import CheckpointError, latest_checkpoint, verify_checkpoint
from spo3.config import load_config
from spo3.training.credit import assign_advantages
from spo3.metrics import read_metrics
from spo3.rollout.tree import TreeSearch, TreeSettings
from spo3.policies.base import PolicyInput
from spo3.state import StateStore, state_key
from spo3.training.loop import train
from spo3.training.run_dir import ResumeError
from spo3.training.update import build_optimizer
from tests.fakes import GraphEnv, ScriptedPolicy, ScriptedTabular


def maze() -> GraphEnv:
    """Go right four times; 'left' leads into a side room; 'wait' is a self-loop."""
    graph = {}
    for i in range(4):
        graph[f"S{i}"] = {"right": f"S{i + 1}" if i < 3 else "G", "left": f"X{i}", "wait": f"S{i}"}
        graph[f"X{i}"] = {"back": f"S{i}", "dig": f"X{i}"}
    return GraphEnv(graph, {"t0": "S0", "t1": "S1"}, goals={"G"}, max_steps=8)


def config(tmp_path, algo="3spo", name=None, *extra):
    return load_config(None, [
        f"algo.name={algo}", "iterations=4", "tasks_per_iteration=2", "optim.lr=0.02", "optim.weight_decay=0",
        "algo.group_size=4", "algo.max_trajectories=4", "eval.every=2", "eval.episodes=4", "env.eval_split=train",
        "log.progress=false", f"log.output_dir={tmp_path}", f"log.run_name={name or algo}", *extra,
    ])


def without_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


def test_3spo_is_really_active(tmp_path, monkeypatch):
    def no_fallback(*args, **kwargs):
        raise AssertionError("algorithm=3spo must not run group rollouts")

    monkeypatch.setattr(train_module, "group_rollout", no_fallback)
    run = train(config(tmp_path, "3spo", None, "algo.alpha=1.0"), env=maze())
    records = [r for r in read_metrics(run) if r["iteration"] > 0]
    assert records[0]["sibling_groups"] > 0
    n_values = set().union(*(r["n_hist"] for r in records))
    assert len(n_values) > 1, f"n never varied with the store: {n_values}"
    assert records[-1]["unique_states"] > 0
    for r in records:  # hard per-task budgets (max_trajectories=4), logged per iteration
        use = r["per_task"]
        assert use["finished_max"] <= 4 and use["steps_max"] <= 400
        assert use["finished_mean"] * 2 == r["finished_trajectories"] and use["steps_mean"] * 2 == r["env_steps"]
    assert sum(r["per_task"]["trajectory_budget_hits"] for r in records) > 0
    store = StateStore.load(latest_checkpoint(run) / StateStore.FILENAME)
    assert store.t == 1 + sum(r["finished_trajectories"] for r in records)


def test_3spo_advantages_differ_from_grpo_on_same_data():
    env, store = maze(), StateStore()
    policy = ScriptedPolicy(lambda inp, i: inp.actions[i % len(inp.actions)])
    search = TreeSearch([env], ["t0"], policy, store.snapshot(), TreeSettings(max_trajectories=4), np.random.default_rng(0))
    list(search.rounds())
    samples = search.result.samples
    cfg = config("/tmp", "3spo").algo
    spo3_adv = assign_advantages(samples, cfg).copy()
    grpo_adv = assign_advantages(samples, load_config(None, ["algo.name=grpo"]).algo)
    assert not np.allclose(spo3_adv, grpo_adv)
    assert np.any(spo3_adv != 0)


@pytest.mark.parametrize("algo", ["3spo", "grpo", "gigpo"])
def test_same_seed_same_run(tmp_path, algo):
    a = train(config(tmp_path, algo, "a"), env=maze())
    b = train(config(tmp_path, algo, "b"), env=maze())
    assert without_time(read_metrics(a)) == without_time(read_metrics(b))
    c = train(config(tmp_path, algo, "c", "seed=1"), env=maze())
    assert without_time(read_metrics(a)) != without_time(read_metrics(c))


@pytest.mark.parametrize("algo", ["3spo", "gigpo"])
def test_resume_continues_exactly(tmp_path, algo):
    straight = train(config(tmp_path, algo, "straight"), env=maze())
    half = train(config(tmp_path, algo, "half", "iterations=2"), env=maze())
    resumed = train(config(tmp_path, algo, "half"), resume=True, env=maze())
    assert resumed == half
    assert without_time(read_metrics(resumed)) == without_time(read_metrics(straight))
    s1 = StateStore.load(latest_checkpoint(straight) / StateStore.FILENAME).to_dict()
    s2 = StateStore.load(latest_checkpoint(resumed) / StateStore.FILENAME).to_dict()
    assert s1 == s2


def test_resume_refuses_overwrite(tmp_path):
    train(config(tmp_path, "grpo", "once", "iterations=1"), env=maze())
    with pytest.raises(FileExistsError, match="--resume"):
        train(config(tmp_path, "grpo", "once", "iterations=1"), env=maze())


def test_damaged_checkpoint_is_reported(tmp_path):
    run = train(config(tmp_path, "grpo", "dmg", "iterations=1"), env=maze())
    ckpt = latest_checkpoint(run)
    verify_checkpoint(ckpt)
    target = ckpt / "optimizer.pt"
    original = target.read_bytes()
    target.write_bytes(original[:-7] + b"garbage")
    with pytest.raises(ResumeError, match="optimizer.pt"):
        train(config(tmp_path, "grpo", "dmg", "iterations=2"), resume=True, env=maze())
    target.write_bytes(original)
    shutil.rmtree(ckpt / "policy")
    with pytest.raises(CheckpointError, match="missing"):
        verify_checkpoint(ckpt)


def test_metrics_record_schema(tmp_path):
    run = train(config(tmp_path, "3spo", "schema", "iterations=2"), env=maze())
    rec = read_metrics(run)[-1]
    for key in ("success_rate", "success_by_type", "episode_length", "finished_trajectories", "env_steps",
                "generated_tokens", "unique_states", "mean_state_score", "high_score_share", "n_hist",
                "truncations", "valid_action_ratio", "loss", "eval"):
        assert key in rec, key
    assert set(rec["time"]) == {"generate", "env", "score", "update", "iteration", "eval", "cpu"}  # no env_workers_cpu: workers 0
    assert rec["time"]["eval"] > 0 and read_metrics(run)[1]["time"]["eval"] == 0.0  # eval.every=2: not at 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["evaluation"]["evaluations"] == 2  # iterations 0 and 2
    assert summary["evaluation"]["time"] == pytest.approx(sum(r["time"]["eval"] for r in read_metrics(run)))
    assert summary["counters"]["eval_time"] == summary["evaluation"]["time"]
    assert set(rec["eval"]) >= {"success_rate", "ci_low", "ci_high", "per_type", "episodes"}
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "eval/success_rate" in header and "time/generate" in header
    assert json.loads((run / "summary.json").read_text())["iterations"] == 2


def skewed_policy(choose) -> ScriptedTabular:
    """A scripted tabular policy whose logits at t0's start S0 are [2, 0, 0] against a uniform reference, so that
    KL and entropy terms of S0's rows would pull them (the issue's [2.0, 0] -> [1.90, 0.10])."""
    policy = ScriptedTabular(choose)
    env = maze()
    obs = env.reset("t0")
    policy.set_logits(PolicyInput("", state_key(obs.text, "t0", "task"), obs.admissible_actions), [2.0, 0.0, 0.0])
    return policy


def s0_logits(policy):
    env = maze()
    obs = env.reset("t0")
    inp = PolicyInput("", state_key(obs.text, "t0", "task"), obs.admissible_actions)
    return policy.logits.detach()[policy._rows(inp)].clone()


@pytest.mark.parametrize("singleton_rows", ["drop", "keep"])
def test_round_of_single_rollouts_leaves_the_policy_bit_identical(tmp_path, singleton_rows):
    # g_max = 1: every expansion has n = 1, no sibling group. Even with verl's behaviour of stepping on KL/entropy
    # alone (skip_no_signal=false), dropping the singleton rows leaves nothing to update.
    cfg = config(tmp_path, "3spo", None, "algo.g_max=1", "optim.skip_no_signal=false", "optim.weight_decay=0.01",
                 f"algo.singleton_rows={singleton_rows}")
    policy = skewed_policy(lambda inp, i: "right")
    before = policy.logits.detach().clone()
    optimizer = build_optimizer(policy, cfg.optim)
    result, updates = train_module._rollout_and_update(
        cfg, [maze()], ["t0"], policy, optimizer, StateStore(cfg.algo.score_params()).snapshot(), [TaskStream.derive(0, 1, 0)]
    )
    assert set(result.stats.n_hist) == {1} and result.samples
    assert torch.equal(policy.logits.detach(), before) == (singleton_rows == "drop")
    assert sum(d["optimizer_steps"] for d in updates.diags) == (0 if singleton_rows == "drop" else len(updates.diags))


def test_singleton_rows_get_no_kl_or_entropy_pull_in_a_mixed_update(tmp_path):
    # One round, two tasks: t0 at the solved S0 (n = 1) and t1 at the unseen S1 (n = 4, different rewards). With the
    # default drop, S0's row is not in the loss, so S0's logits stay bit-identical while S1's rows are trained.
    cfg = config(tmp_path, "3spo")
    store = StateStore(cfg.algo.score_params())
    store.record_trajectory([state_key(GraphEnv.text("S0"))], won=True)  # t = 2: S(S0) = 2^-50, n = 1
    replies = ["right", "left", "wait", "right"]
    policy = skewed_policy(lambda inp, i: replies[i] if inp.actions == ("left", "right", "wait") else inp.actions[0])
    optimizer = build_optimizer(policy, cfg.optim)
    before = s0_logits(policy)
    result, updates = train_module._rollout_and_update(
        cfg, [maze(), maze()], ["t0", "t1"], policy, optimizer, store.snapshot(), [TaskStream.derive(0, 1, i) for i in range(2)]
    )
    assert updates.diags[0]["optimizer_steps"] == 1  # the first round did update (on t1's siblings)
    assert torch.equal(s0_logits(policy), before)


def test_iteration_without_sibling_group_warns_and_is_logged(tmp_path, caplog):
    run = train(config(tmp_path, "3spo", None, "algo.g_max=1", "iterations=2", "eval.every=0"), env=maze())
    records = read_metrics(run)
    assert [r["no_sibling_group"] for r in records] == [1, 1] and all(r["sibling_groups"] == 0 for r in records)
    warnings = [r for r in caplog.records if "no sibling group" in r.getMessage()]
    assert [w.levelname for w in warnings] == ["WARNING", "WARNING"]  # once per iteration
    normal = train(config(tmp_path, "3spo", "normal", "iterations=1", "eval.every=0"), env=maze())
    assert read_metrics(normal)[-1]["no_sibling_group"] == 0


def test_task_sampler_draws_every_task_once_per_pass_with_copies_side_by_side():
    tasks = [f"t{i}" for i in range(5)]
    sampler = train_module.TaskSampler(tasks, seed=3)
    first = sampler.next(3) + sampler.next(2)
    assert sorted(first) == tasks  # one pass
    draw = sampler.next(7)  # the rest of nothing, a pass, and two of the next: two tasks twice
    assert len(draw) == 7 and set(draw) == set(tasks)
    runs = [t for i, t in enumerate(draw) if i == 0 or draw[i - 1] != t]
    assert len(runs) == len(set(draw))  # every task's copies are adjacent
    state = sampler.state()
    again = train_module.TaskSampler(tasks, seed=0)
    again.set_state(state)
    assert again.next(4) == sampler.next(4)


def test_a_textworld_pool_is_described_by_levels_and_seed_ranges():
    from spo3.config import ConfigError

    cfg = load_config(None, ["env.textworld.levels=[2,4]", "env.textworld.train_seed_range=[0,50]", "env.textworld.valid_seed_range=[1000,1010]"])
    assert cfg.env.textworld.train_seeds == tuple(range(50)) and cfg.env.textworld.valid_seeds == tuple(range(1000, 1010))
    with pytest.raises(ConfigError, match="train_seed_range"):
        load_config(None, ["env.textworld.train_seed_range=[5,5]"])
    from spo3.training.builders import build_env, task_list

    pool = load_config(None, ["env.textworld.levels=[2,4]", "env.textworld.train_seed_range=[0,50]", "env.textworld.max_tasks=16"])
    env = build_env(pool.env)
    tasks = task_list(env, pool.env, "train", seed=3)
    assert len(tasks) == 16 and tasks != task_list(env, pool.env, "train", seed=4)  # a seeded subset of the 100 games
    assert task_list(env, pool.env, "valid", seed=3) == env.tasks("valid")  # evaluation keeps its whole split


def test_the_expansion_trace_records_s_and_n_and_changes_nothing(tmp_path):
    plain = train(config(tmp_path, "3spo", "plain", "algo.alpha=1.0"), env=maze())
    traced = train(config(tmp_path, "3spo", "traced", "algo.alpha=1.0", "log.expansions=true"), env=maze())
    assert without_time(read_metrics(plain)) == without_time(read_metrics(traced))
    assert not (plain / "expansions.jsonl").exists()
    trace = [json.loads(line) for line in (traced / "expansions.jsonl").read_text().splitlines()]
    expansions = sum(r.get("n_hist") and sum(v for k, v in r["n_hist"].items() if k != "0") or 0 for r in read_metrics(traced))
    assert len(trace) == expansions  # one line per expansion (every allocation with n > 0)
    first = trace[0]
    assert first["iteration"] == 1 and first["score"] == 1.0 and first["n"] == 8  # a new state: S = 1, n = G_max
    assert len(first["actions"]) == len(first["rewards"]) == len(first["won"]) <= first["n"]


def test_allocation_variants_in_training(tmp_path):
    """Issue 9's flags reach the search: recoverable truncation retries truncated states (absorbing never does),
    min_siblings removes n = 1, and retries and recovered states are logged every iteration."""
    common = ("algo.xi=1", "iterations=6", "eval.every=0")
    absorbing = read_metrics(train(config(tmp_path, "3spo", "absorbing", *common), env=maze()))
    recoverable = read_metrics(train(config(
        tmp_path, "3spo", "recoverable", *common, "algo.truncation=recoverable", "algo.truncation_retry=1.0"), env=maze()))
    assert sum(r["truncations"] for r in absorbing) > 0
    assert all(r["truncation_retries"] == 0 and r["recovered_states"] == 0 for r in absorbing)
    assert sum(r["truncation_retries"] for r in recoverable) > 0
    assert all(r["recovered_states"] >= 0 and r["truncation_retries_won"] <= r["truncation_retries"] for r in recoverable)
    floored = read_metrics(train(config(tmp_path, "3spo", "floored", *common, "algo.min_siblings=2"), env=maze()))
    assert not any("1" in r["n_hist"] for r in floored) and any("1" in r["n_hist"] for r in absorbing)


class BrokenResets(GraphEnv):
    """The maze, where every reset of the tasks in ``broken`` raises (a game file the engine cannot load)."""

    def __init__(self, broken):
        base = maze()
        super().__init__(base.graph, base.starts, base.goals, base.max_steps)
        self.broken = set(broken)

    def reset(self, task_id):
        if task_id in self.broken:
            raise RuntimeError(f"cannot load game {task_id}")
        return super().reset(task_id)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("algo", ["3spo", "grpo", "gigpo"])
def test_a_task_whose_reset_always_fails_ends_as_lost_episodes_and_training_continues(tmp_path, caplog, algo, workers):
    """Issue 12: a reset that fails on a fresh engine too ends that task's episodes as counted failures (logged
    once), in training and in evaluation, and the other task trains on; before, the error stopped the run."""
    with caplog.at_level("WARNING", logger="spo3.envs.guard"):
        run = train(config(tmp_path, algo, None, f"env.workers={workers}"), env=BrokenResets({"t1"}))
    records = read_metrics(run)
    assert [r["iteration"] for r in records] == [0, 1, 2, 3, 4]
    assert records[1]["env_steps"] > 0  # t0 was played (later 3SPO may truncate it at its root)
    for r in records[1:]:  # both tasks in every iteration: t1's reset failed
        assert r["env_failures"] == 1
        lost = 1 if algo == "3spo" else 4  # the search's one trajectory, or the whole group of t1
        assert r["success_rate"] <= 1 - lost / r["finished_trajectories"]
        assert algo == "3spo" or r["finished_trajectories"] == 8
    assert records[-1]["env_failures_total"] == 4
    for r in (records[0], records[2], records[4]):  # evaluations cycle t0, t1, t0, t1
        assert r["eval"]["episodes"] == 4 and r["eval"]["env_failures"] == 2 and r["eval"]["success_rate"] <= 0.5
    store = StateStore.load(latest_checkpoint(run) / StateStore.FILENAME)
    assert all(rec["key"] and rec["anchor"] for rec in store.records())  # the failed resets reached no state
    if workers == 0:  # with workers the guard logs in the worker processes
        assert len([rec for rec in caplog.records if "cannot load game" in rec.getMessage()]) == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_when_every_reset_fails_training_stops_with_one_line_naming_the_environment(tmp_path, workers):
    from spo3.envs.guard import EnvUnavailable

    cfg = config(tmp_path, "3spo", None, "eval.every=0", f"env.workers={workers}")
    with pytest.raises(EnvUnavailable) as failure:
        train(cfg, env=BrokenResets({"t0", "t1"}))
    message = str(failure.value)
    assert "\n" not in message and message.startswith("every reset of the batch failed (2 of 2 tasks)")
    assert "BrokenResets.reset: RuntimeError('cannot load game" in message
