"""Stratified choices of tasks (evaluation by split and task type, the warm start by task type), and training records
with a report per split."""

import json

import pytest

from spo3.config import ConfigError, load_config
from spo3.metrics import read_metrics
from spo3.training.builders import eval_tasks, stratified_subset
from spo3.training.loop import train
from tests.fakes import GraphEnv

TYPES = ("heat", "look", "pick")


class SplitGraphEnv(GraphEnv):
    """The maze of tests/test_train.py with tasks ``<split>/<type>/<i>``: per split, 5 of type heat, 2 of look and
    8 of pick (sorted, so a split's first tasks are all of type heat)."""

    SIZES = {"heat": 5, "look": 2, "pick": 8}

    def __init__(self) -> None:
        graph = {f"S{i}": {"right": f"S{i + 1}" if i < 3 else "G", "wait": f"S{i}"} for i in range(4)}
        starts = {f"{split}/{kind}/{i}": "S0" for split in ("train", "valid", "test") for kind, n in self.SIZES.items() for i in range(n)}
        super().__init__(graph, starts, goals={"G"}, max_steps=6)

    def tasks(self, split: str) -> list[str]:
        return sorted(t for t in self.starts if t.startswith(f"{split}/"))

    def task_type(self, task_id: str) -> str:
        return task_id.split("/")[1]


def kind(task: str) -> str:
    return task.split("/")[1]


def test_stratified_subset_takes_k_of_every_type_seeded_and_order_free():
    env = SplitGraphEnv()
    tasks = env.tasks("valid")
    chosen = stratified_subset(tasks, kind, 3, seed=0)
    assert [sum(kind(t) == k for t in chosen) for k in TYPES] == [3, 2, 3]  # look has only 2
    assert set(chosen) <= set(tasks) and len(set(chosen)) == len(chosen)
    assert stratified_subset(list(reversed(tasks)), kind, 3, seed=0) == chosen
    assert {tuple(stratified_subset(tasks, kind, 3, seed=s)) for s in range(8)} != {tuple(chosen)}  # the seed matters
    assert stratified_subset(tasks, kind, 100, seed=0) == tasks  # k above every type's size: the whole split


def test_eval_tasks_follow_the_config():
    env = SplitGraphEnv()
    cfg = load_config(None, ["eval.per_type=2", "eval.subset_seed=3"])
    assert eval_tasks(env, cfg, "valid") == stratified_subset(env.tasks("valid"), kind, 2, 3)
    assert eval_tasks(env, load_config(None), "valid") == env.tasks("valid")


@pytest.mark.parametrize("overrides, message", [
    (["eval.splits=[valid,nowhere]"], "eval.splits"),
    (["env.name=alfworld", "env.eval_split=valid_unseen", "eval.splits=[valid]"], "eval.splits"),
    (["eval.splits=[valid,valid]"], "twice"),
    (["eval.per_type=-1"], "per_type"),
])
def test_bad_eval_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_training_records_a_stratified_report_per_split(tmp_path):
    cfg = load_config(None, [
        "algo.name=grpo", "iterations=2", "tasks_per_iteration=2", "algo.group_size=2", "eval.every=2",
        "eval.splits=[valid,test]", "eval.per_type=2", "log.progress=false", f"log.output_dir={tmp_path}", "log.run_name=r",
    ])
    run = train(cfg, env=SplitGraphEnv())
    records = read_metrics(run)
    assert json.loads((run / "summary.json").read_text())["evaluation"]["episodes"] == 12  # per evaluation: 2 splits x 6
    evaluated = [r for r in records if "eval" in r]
    assert [r["iteration"] for r in evaluated] == [0, 2]
    for record in evaluated:
        assert set(record["eval_splits"]) == {"valid", "test"}
        assert record["eval"] == record["eval_splits"]["valid"]
        for report in record["eval_splits"].values():
            assert {t: v["episodes"] for t, v in report["per_type"].items()} == {"heat": 2, "look": 2, "pick": 2}
            assert report["episodes"] == 6
            for v in report["per_type"].values():
                assert v["ci_low"] <= v["success_rate"] <= v["ci_high"]


def test_without_eval_splits_records_hold_one_report(tmp_path):
    cfg = load_config(None, [
        "algo.name=grpo", "iterations=1", "tasks_per_iteration=1", "algo.group_size=2", "eval.episodes=3",
        "log.progress=false", f"log.output_dir={tmp_path}", "log.run_name=r",
    ])
    record = read_metrics(train(cfg, env=SplitGraphEnv()))[-1]
    assert "eval_splits" not in record and record["eval"]["episodes"] == 3
    assert set(record["eval"]["per_type"]) == {"heat"}  # the sorted split's first 3 tasks: why per_type exists


class WalkedSplitEnv(SplitGraphEnv):
    def walkthrough(self, task_id):
        return ["right"] * 4


@pytest.mark.parametrize("overrides, expected", [
    (["warm_start.per_type=1"], lambda tasks: stratified_subset(tasks, kind, 1, 0)),
    (["warm_start.tasks=3"], lambda tasks: tasks[:3]),
])
def test_the_warm_start_takes_k_tasks_of_every_type(tmp_path, monkeypatch, overrides, expected):
    import spo3.training.warm_start as warm_module

    seen = []
    original = warm_module.expert_decisions
    monkeypatch.setattr(warm_module, "expert_decisions", lambda env, tasks, *a: seen.append(list(tasks)) or original(env, tasks, *a))
    cfg = load_config(None, [
        "algo.name=grpo", "iterations=1", "tasks_per_iteration=1", "algo.group_size=2", "eval.every=0",
        "warm_start.epochs=1", "warm_start.cache=false", "log.progress=false", f"log.output_dir={tmp_path}",
        "log.run_name=r", *overrides,
    ])
    env = WalkedSplitEnv()
    train(cfg, env=env)
    assert seen == [expected(env.tasks("train"))]
    if "warm_start.per_type=1" in overrides:
        assert sorted(kind(t) for t in seen[0]) == sorted(TYPES)
