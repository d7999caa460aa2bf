"""The paper-figures pipeline: run reuse by config hash, profiles that never touch committed results, curves that
end at the reported figure, and figures drawn from a log without training."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import yaml

from paper_figures import make_figures, run as runner
from spo3.config import load_config
from spo3.config.loading import to_dict
from spo3.metrics import curves_on_grid


def _methods_run(monkeypatch, tmp_path, profile="full"):
    monkeypatch.setattr(runner, "RUNS", tmp_path / "runs")
    return runner.experiment_runs("methods", profile)[0]


def _record_run(run, profile, overrides=(), finished=True):
    run_dir = run.directory(profile)
    run_dir.mkdir(parents=True)
    cfg = load_config(run.base, run.overrides + tuple(overrides))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    if finished:
        (run_dir / "summary.json").write_text("{}")


def test_a_run_is_reused_only_if_its_full_config_matches(monkeypatch, tmp_path):
    run = _methods_run(monkeypatch, tmp_path)
    _record_run(run, "full", ["iterations=3"])  # a short run sitting where the full one belongs
    assert runner.status(run, "full") == "new"


def test_a_finished_run_with_the_same_config_is_reused_whatever_its_log_settings(monkeypatch, tmp_path):
    run = _methods_run(monkeypatch, tmp_path)
    _record_run(run, "full", ["log.output_dir=elsewhere", "log.checkpoint_every=1"])
    assert runner.status(run, "full") == "done"
    assert runner.config_hash(load_config(run.base, run.overrides + ("seed=99",))) != run.hash


def test_identical_runs_of_two_experiments_are_trained_once():
    queue = runner.queue(["methods", "ablations", "alpha"], "full")
    assert len({r.hash for r in queue}) == len(queue)
    three_spo_seed0 = [r for r in runner.experiment_runs("alpha", "full") if r.variant.label == "alpha=50.0" and r.seed == 0][0]
    assert three_spo_seed0.hash in {r.hash for r in runner.experiment_runs("methods", "full")}


def test_the_small_profile_never_writes_committed_results(monkeypatch, tmp_path):
    run = _methods_run(monkeypatch, tmp_path, "small")
    assert runner.data_dir("small") != runner.DATA and runner.DATA not in runner.data_dir("small").parents
    assert run.directory("small").parent == tmp_path / "runs" / "small"
    assert run.config.iterations == 2 and run.hash != runner.experiment_runs("methods", "full")[0].hash


def _records(final_success: float, steps_per_iteration: int, iterations: int, rng) -> list[dict]:
    records = [{"iteration": 0, "env_steps_total": 0, "eval": {"success_rate": 0.0, "per_type": {
        "L2": {"success_rate": 0.0}, "L4": {"success_rate": 0.0}}}}]
    for i in range(1, iterations + 1):
        s = final_success * i / iterations
        records.append({
            "iteration": i, "env_steps_total": i * steps_per_iteration, "success_rate": s, "unique_states": 10 * i,
            "mean_state_score": 1 - s, "high_score_share": 1 - s, "sibling_groups": int(rng.integers(0, 5)),
            "n_hist": {"1": 3, "8": 2}, "eval": {"success_rate": s, "per_type": {
                "L2": {"success_rate": min(1.0, s + 0.1)}, "L4": {"success_rate": max(0.0, s - 0.1)}}},
        })
    return records


def test_curves_end_at_the_reported_final_figure():
    rng = np.random.default_rng(0)
    runs = [_records(0.5, 100, 4, rng), _records(0.9, 100, 6, rng)]  # seeds that finished at different budgets
    grid, curves = curves_on_grid(runs, hold_final=True)
    assert grid[-1] == 600 and curves.mean(0)[-1] == pytest.approx((0.5 + 0.9) / 2)
    grid, _ = curves_on_grid(runs)  # the default stops where every run is still measured
    assert grid[-1] == 400


def _draw(tmp_path, experiment: str, lines: list[dict]) -> None:
    """Write ``lines`` as the experiment's committed log and run make_figures on it into ``tmp_path / "out"``."""
    data = tmp_path / "data"
    data.mkdir()
    with gzip.open(data / f"{experiment}.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(x) for x in lines))
    make_figures.main(["--data", str(data), "--out", str(tmp_path / "out")])


def test_figures_and_summaries_are_drawn_from_a_log(tmp_path):
    rng = np.random.default_rng(0)
    lines = [
        {"experiment": "methods", "variant": v, "seed": s, "command": "python -m spo3.cli train x", "git_commit": "abc",
         "records": _records(f, 100, 6, rng)}
        for v, f in (("GRPO", 0.4), ("3SPO", 0.8)) for s in range(3)
    ]
    _draw(tmp_path, "methods", lines)
    for ext in ("png", "pdf"):
        assert (tmp_path / "out" / f"methods.{ext}").stat().st_size > 0
    summary = json.loads((tmp_path / "out" / "methods.json").read_text())
    assert summary["rows"]["3SPO"]["final_success_iqm"][0] == pytest.approx(0.8)
    assert summary["rows"]["3SPO"]["steps_to_threshold"] == [500.0] * 3  # 0.8 * 5/6 >= 0.6 first at iteration 5
    assert summary["rows"]["GRPO"]["steps_to_threshold"] == [None] * 3
    assert summary["comparisons"]["3SPO vs GRPO"]["p_improvement_final"][0] == 1.0


def _split_report(wins: dict[str, int], k: int) -> dict:
    per_type = {t: {"episodes": k, "successes": w, "success_rate": w / k} for t, w in wins.items()}
    total = sum(wins.values())
    return {"episodes": k * len(wins), "successes": total, "success_rate": total / (k * len(wins)), "per_type": per_type}


def test_evaluation_by_split_and_task_type_is_summarised_and_drawn(tmp_path):
    """ALFWorld-style logs (eval_splits): per split and variant, before RL and final, with per-type pooled counts."""
    def records(final_wins):
        start = {"valid_unseen": _split_report({"heat": 0, "look": 1}, 4), "valid_seen": _split_report({"heat": 1, "look": 1}, 4)}
        final = {"valid_unseen": _split_report(final_wins, 4), "valid_seen": _split_report({"heat": 2, "look": 2}, 4)}
        return [
            {"iteration": 0, "env_steps_total": 0, "eval": start["valid_unseen"], "eval_splits": start},
            {"iteration": 1, "env_steps_total": 100, "success_rate": 0.1, "unique_states": 10, "mean_state_score": 1.0,
             "high_score_share": 1.0, "sibling_groups": 0, "n_hist": {}},
            {"iteration": 2, "env_steps_total": 200, "success_rate": 0.3, "unique_states": 20, "mean_state_score": 0.9,
             "high_score_share": 0.9, "sibling_groups": 1, "n_hist": {}, "eval": final["valid_unseen"], "eval_splits": final},
        ]

    lines = [{"experiment": "alfworld", "variant": v, "seed": s, "command": "c", "git_commit": "abc", "records": records(w)}
             for v, w in (("GRPO", {"heat": 0, "look": 2}), ("3SPO", {"heat": 4, "look": 4})) for s in range(3)]
    _draw(tmp_path, "alfworld", lines)
    assert (tmp_path / "out" / "alfworld_by_type.png").stat().st_size > 0
    summary = json.loads((tmp_path / "out" / "alfworld.json").read_text())
    unseen = summary["splits"]["valid_unseen"]
    assert set(summary["splits"]) == {"valid_unseen", "valid_seen"}
    assert unseen["GRPO"]["final"]["per_type"]["look"]["successes"] == 6 and unseen["GRPO"]["final"]["per_type"]["look"]["episodes"] == 12
    assert unseen["GRPO"]["final"]["per_type"]["look"]["rate"][0] == pytest.approx(0.5)
    lo, hi = unseen["GRPO"]["final"]["per_type"]["look"]["rate"][1:]
    assert 0 < lo < 0.5 < hi < 1
    assert unseen["3SPO"]["final"]["iqm"][0] == pytest.approx(1.0) and unseen["3SPO"]["start"]["iqm"][0] == pytest.approx(0.125)
    assert unseen["3SPO"]["start"]["iteration"] == [0, 0, 0]
    assert summary["rows"]["3SPO"]["train_success_iqm"][0] == pytest.approx(0.2)
    assert summary["split_order"] == ["valid_unseen", "valid_seen"]  # the records' eval split first
    assert unseen["GRPO"]["final"]["successes"] == 6 and unseen["GRPO"]["final"]["episodes"] == 24
    assert unseen["GRPO"]["final"]["pooled"][0] == pytest.approx(0.25)


def test_webshop_scores_are_summarised_per_category_at_equal_steps_and_drawn(tmp_path):
    """WebShop logs (a mean score per product category in every evaluation, a task score per iteration): the paper's
    score, 100 x the mean purchase score, at the first evaluation, at the budget every run reached and at the end."""
    def records(final_score, steps):
        def evaluation(score):
            per_type = {t: {"episodes": 4, "successes": 0, "success_rate": 0.0, "mean_score": score} for t in ("beauty", "food")}
            return {"episodes": 8, "successes": 0, "success_rate": 0.0, "mean_score": score, "per_type": per_type}
        return [
            {"iteration": 0, "env_steps_total": 0, "eval": evaluation(0.4)},
            {"iteration": 1, "env_steps_total": steps, "success_rate": 0.1, "task_score": 0.5, "unique_states": 10,
             "mean_state_score": 1.0, "high_score_share": 1.0, "sibling_groups": 0, "n_hist": {}, "eval": evaluation(final_score)},
        ]

    lines = [{"experiment": "webshop", "variant": v, "seed": s, "command": "c", "git_commit": "abc", "records": records(f, steps)}
             for v, f, steps in (("GRPO", 0.5, 200), ("3SPO", 0.8, 100)) for s in range(3)]
    lines[3]["expansions"] = [  # 3SPO seed 0's trace: an item page's children
        {"actions": ["click[buy now]", "click[blue]", "click[b000000001]"], "rewards": [1.5, 0.0, 0.5], "won": [True, False, False]},
        {"actions": ["click[buy now]", "click[description]"], "rewards": [0.5, 0.5], "won": [False, False]},
    ]
    _draw(tmp_path, "webshop", lines)
    assert (tmp_path / "out" / "webshop_score.png").stat().st_size > 0
    summary = json.loads((tmp_path / "out" / "webshop.json").read_text())
    assert summary["budget_env_steps"] == 100
    rows, c = summary["scores"]["rows"], summary["scores"]["comparisons"]
    assert rows["3SPO"]["start_score_iqm"][0] == pytest.approx(40) and rows["3SPO"]["final_score_iqm"][0] == pytest.approx(80)
    assert rows["GRPO"]["score_at_budget_iqm"][0] == pytest.approx(45)  # halfway from 40 to 50 at 100 of its 200 steps
    assert rows["GRPO"]["train_score_iqm"][0] == pytest.approx(50)
    assert c["3SPO vs GRPO"]["score_at_budget_difference"] == pytest.approx(35)
    assert c["3SPO vs GRPO"]["p_improvement_score_at_budget"][0] == 1.0
    assert "scores" not in make_figures.summarise({"A": [_records(0.5, 100, 2, np.random.default_rng(0))]})  # no scores logged
    rewards = summary["action_rewards"]
    assert rewards["source"] == "3SPO seed 0" and set(rewards) == {"source", "buy", "option", "product", "page"}
    assert rewards["buy"] == {"children": 2, "mean_reward": 1.0, "won": 0.5} and rewards["option"]["mean_reward"] == 0.0
