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
