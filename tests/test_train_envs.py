"""The trainer on the real environment families (tiny budgets): ALFWorld games and WebShop run end to end."""

import pytest

from spo3.config import load_config
from spo3.metrics import read_metrics
from spo3.training.loop import train
from tests._data import shared_data_dir


@pytest.mark.parametrize("algo", ["3spo", "gigpo"])
def test_alfworld_panel_trains(algo, tmp_path, alfworld_data_dir):
    cfg = load_config("configs/alfworld_panel_tabular.yaml", [
        f"algo.name={algo}", "iterations=1", "tasks_per_iteration=1", "env.max_steps=6", "env.alfworld.max_tasks=1",
        f"env.alfworld.data_dir={alfworld_data_dir}", "algo.group_size=2", "algo.g_max=2", "algo.max_env_steps=24", "warm_start.epochs=1",
        "eval.every=1", "eval.episodes=1", f"log.output_dir={tmp_path}", "log.progress=false",
    ])
    records = read_metrics(train(cfg))
    last = records[-1]
    assert last["env_steps"] > 0 and last["finished_trajectories"] > 0
    assert set(last["success_by_type"]) <= {
        "pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
        "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place",
    }
    assert records[0]["warm_start_loss"]


def test_webshop_trains_and_labels_the_synthetic_catalogue(tmp_path):
    cfg = load_config("configs/webshop_tabular.yaml", [
        "iterations=1", "tasks_per_iteration=2", f"env.webshop.data_dir={shared_data_dir() / 'webshop'}",
        "env.webshop.max_tasks=2", "algo.max_env_steps=30", "eval.every=1", "eval.episodes=2",
        f"log.output_dir={tmp_path}", "log.progress=false",
    ])
    records = read_metrics(train(cfg))
    assert all(r["catalogue"] == "synthetic" for r in records)
    assert records[-1]["env_steps"] > 0
    assert records[-1]["eval"]["mean_score"] is not None
    header = (tmp_path / "webshop-3spo-s0" / "metrics.csv").read_text().splitlines()[0]
    assert "catalogue" in header.split(",")


def test_webshop_pool_config_logs_the_papers_score_beside_success(tmp_path):
    cfg = load_config("configs/webshop_pool_linear.yaml", [
        "iterations=1", "tasks_per_iteration=2", f"env.webshop.data_dir={shared_data_dir() / 'webshop'}", "eval.every=1",
        "eval.per_type=1", "warm_start.per_type=1", "warm_start.epochs=2", "warm_start.cache=false",
        f"log.output_dir={tmp_path}", "log.progress=false",
    ])
    records = read_metrics(train(cfg))
    last = records[-1]
    assert 0.0 <= last["task_score"] <= 1.0 and last["task_score"] >= last["success_rate"]  # a win scores 1
    per_type = last["eval"]["per_type"]
    assert len(per_type) == 5 and all(0.0 <= r["mean_score"] <= 1.0 for r in per_type.values())
    assert sum(r["mean_score"] * r["episodes"] for r in per_type.values()) / last["eval"]["episodes"] == pytest.approx(last["eval"]["mean_score"])
