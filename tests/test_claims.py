"""paper_figures/CLAIMS.md and README.md's results block say exactly what the committed summaries hold."""

from __future__ import annotations

from paper_figures import claims


def test_claims_and_readme_match_the_committed_summaries():
    assert claims.main(["--check"]) == 0, "run: python -m paper_figures.claims"


def test_a_changed_number_is_caught(tmp_path, monkeypatch):
    summaries = claims.load()
    if "methods" not in summaries:
        return
    methods = summaries["methods"]
    label = next(iter(methods["rows"]))
    before = claims.render_claims(summaries)
    methods["rows"][label]["success_at_budget_iqm"][0] += 0.01
    assert claims.render_claims(summaries) != before


def test_the_alfworld_section_shows_every_split_variant_and_type():
    def row(start, final):
        per_type = {t: {"successes": w, "episodes": 9, "rate": [w / 9, 0.0, 1.0]} for t, w in final.items()}
        return {"start": {"iqm": [start, 0.0, 0.2], "pooled": [start, 0.0, 0.2], "successes": 3, "per_type": per_type, "episodes": 54},
                "final": {"iqm": [0.1, 0.0, 0.3], "pooled": [0.1, 0.0, 0.3], "successes": 5, "per_type": per_type, "episodes": 54}}

    labels = ("GRPO", "GiGPO", "3SPO")
    summary = {
        "budget_env_steps": 1000.0, "variants": list(labels),
        "rows": {v: {"seeds": 3, "train_success_iqm": [0.1, 0.05, 0.2], "unique_states_at_budget": [10, 20, 30],
                     "success_at_budget_iqm": [0.1, 0.0, 0.2], "final_env_steps_mean": 4000.0,
                     "n_distribution": {"0": 0.25, "4": 0.75}, "sibling_groups_per_iteration": 50.0} for v in labels},
        "comparisons": {f"{a} vs {b}": {"p_improvement_at_budget": [0.5, 0.2, 0.8], "unique_states_ratio": [1.0, 0.9, 1.1],
                                         "final_env_steps_ratio": [0.6, 0.5, 0.7]}
                        for a in labels for b in labels if a != b},
        "splits": {split: {v: row(0.05, {"look_at_obj_in_light": 2, "pick_and_place": 1}) for v in labels}
                   for split in ("valid_seen", "valid_unseen")},
        "split_order": ["valid_unseen", "valid_seen"],
    }
    table = "\n".join(claims.alfworld_table({"alfworld": summary}))
    for split in ("valid_unseen", "valid_seen"):
        for v in labels:
            assert (f"| {split} | {v} | 3/54 = 0.05 [0.00, 0.20] | 0.05 [0.00, 0.20] | 5/54 = 0.10 [0.00, 0.30] | "
                    "0.10 [0.00, 0.30] | 2/9 | 1/9 |") in table
    assert table.index("| valid_unseen | GRPO") < table.index("| valid_seen | GRPO")  # the split order of the summary
    assert "| 3SPO vs GRPO | 0.50 [0.20, 0.80] | 1.00 [0.90, 1.10] |" in table
    assert "n = 0 (truncated: the branch ends as a failure) 25%, n = 1 0%, n = G_max = 4 75%; 50 sibling groups" in table
    assert "3SPO/GRPO = 0.60 [0.50, 0.70]" in table
    assert "- **valid_seen**: no method ended above the interval of the warm start; the methods' final intervals all overlap." in table
    summary["splits"]["valid_seen"]["3SPO"]["final"]["iqm"] = [0.6, 0.4, 0.8]
    assert "- **valid_seen**: no method" in "\n".join(claims.alfworld_table({"alfworld": summary}))  # the pooled intervals overlap
    summary["splits"]["valid_seen"]["3SPO"]["final"]["pooled"] = [0.5, 0.35, 0.65]
    assert "- **valid_seen**: 3SPO ended above the interval of the warm start; final intervals separate: 3SPO > GRPO, 3SPO > GiGPO." in "\n".join(claims.alfworld_table({"alfworld": summary}))
    assert claims.alfworld_table({}) == ["Not run."]
    readme = claims.alfworld_readme_lines(summary)
    assert "18 evaluation games per split" in readme[1] and "valid_unseen / valid_seen" in readme[1]
    assert readme[3] == "- before RL (the walkthrough warm start alone): 3/54 = 0.05 [0.00, 0.20] / 3/54 = 0.05 [0.00, 0.20]"
    assert [line.split(" after")[0] for line in readme[4:]] == ["- GRPO", "- GiGPO", "- 3SPO"]
    assert claims.alfworld_readme_lines(None) == []


def test_the_webshop_rows_judge_the_score_by_the_rule_of_the_other_table_1_rows():
    labels = ("GRPO", "GiGPO", "3SPO")
    score_rows = {v: {k: [50.0, 45.0, 55.0] for k in ("start_score_iqm", "score_at_budget_iqm", "final_score_iqm", "train_score_iqm")}
                  | {"start_success_iqm": [0.1, 0.0, 0.2]} for v in labels}
    summary = {
        "budget_env_steps": 1000.0, "variants": list(labels),
        "rows": {v: {"seeds": 5, "train_success_iqm": [0.1, 0.05, 0.2], "success_at_budget_iqm": [0.1, 0.0, 0.2],
                     "final_success_iqm": [0.1, 0.0, 0.2], "final_env_steps_mean": 4000.0, "n_distribution": {"8": 1.0},
                     "sibling_groups_per_iteration": 90.0} for v in labels},
        "comparisons": {f"{a} vs {b}": {"p_improvement_at_budget": [0.5, 0.2, 0.8], "unique_states_ratio": [1.0, 0.9, 1.1],
                                         "success_at_budget_difference": 0.0} for a in labels for b in labels if a != b},
        "scores": {"rows": score_rows, "comparisons": {f"{a} vs {b}": {"p_improvement_score_at_budget": [0.8, 0.6, 0.95],
                                                                        "score_at_budget_difference": 5.0}
                                                        for a in labels for b in labels if a != b}},
    }
    text, verdict = claims.beats_score(summary, "3SPO", "GRPO", 15.6)
    assert verdict == claims.DIRECTION and "difference +5.0 pts; P(3SPO > GRPO) = 0.80 [0.60, 0.95]" in text
    assert claims.beats_score(summary, "3SPO", "GiGPO", 6.4)[1] == claims.REPRODUCED  # +5.0 >= 6.4 / 2
    summary["scores"]["comparisons"]["3SPO vs GRPO"]["p_improvement_score_at_budget"] = [0.3, 0.1, 0.45]
    assert claims.beats_score(summary, "3SPO", "GRPO", 15.6)[1] == claims.NOT + " (reversed)"
    assert claims.beats_score(None, "3SPO", "GRPO", 15.6) == ("not run", claims.UNTESTABLE)
    table = "\n".join(claims.webshop_table({"webshop": summary}))
    assert "| 3SPO | 50.0 [45.0, 55.0] / 0.10 [0.00, 0.20] |" in table and "| 3SPO vs GRPO | 0.30 [0.10, 0.45] | +5.0 |" in table
    assert claims.webshop_table({}) == ["Not run."] and claims.webshop_readme_lines(None) == []
    summary["action_rewards"] = {"source": "3SPO seed 0", "option": {"children": 1470, "mean_reward": 0.0, "won": 0.0},
                                 "buy": {"children": 1280, "mean_reward": 0.53, "won": 0.03}}
    assert "option 0.00 over 1,470 children (0% won); buy 0.53 over 1,280 children (3% won)." in "\n".join(claims.webshop_table({"webshop": summary}))
