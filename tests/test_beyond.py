"""paper_figures.beyond: the per-regime verdict against paper 3SPO and the cross-regime rule for a recommended
setting (issue 9: beats paper 3SPO on at least one regime, loses on none)."""

from __future__ import annotations

from paper_figures import beyond


def _summary(variant_iqm, p_improvement, seeds=5):
    rows = {
        "3SPO": {"seeds": seeds, "success_at_budget_iqm": [0.30, 0.25, 0.35]},
        "v": {"seeds": seeds, "success_at_budget_iqm": variant_iqm},
    }
    return {"rows": rows, "comparisons": {"v vs 3SPO": {"p_improvement_at_budget": p_improvement}}}


def test_a_variant_beats_or_loses_only_with_its_intervals_apart():
    assert beyond.verdict(_summary([0.5, 0.4, 0.6], [0.9, 0.7, 1.0]), "v") == beyond.BEATS
    assert beyond.verdict(_summary([0.1, 0.05, 0.2], [0.1, 0.0, 0.3]), "v") == beyond.LOSES
    # P(improvement) above 1/2 but IQM intervals overlapping, and the reverse: ties
    assert beyond.verdict(_summary([0.4, 0.3, 0.5], [0.9, 0.7, 1.0]), "v") == beyond.TIES
    assert beyond.verdict(_summary([0.5, 0.4, 0.6], [0.6, 0.2, 1.0]), "v") == beyond.TIES
    assert beyond.verdict(_summary([0.5, 0.4, 0.6], [0.9, 0.7, 1.0], seeds=3), "v") == beyond.FEW


def test_a_recommended_setting_beats_somewhere_loses_nowhere_and_ran_everywhere():
    verdicts = {
        "A": {"good": beyond.BEATS, "mixed": beyond.BEATS, "flat": beyond.TIES, "once": beyond.BEATS},
        "B": {"good": beyond.TIES, "mixed": beyond.LOSES, "flat": beyond.TIES},
    }
    lines, winners = beyond.recommended(verdicts)
    assert winners == ["good"]
    assert "| once | beats | not run | no |" in lines
    assert "| good | beats | ties | **yes** |" in lines
