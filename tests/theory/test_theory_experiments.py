"""The experiments T1-T4 on a tiny profile: they run, save small figures, and show their headline effects."""

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from theory import experiments
from theory.experiments import Profile, binned_share, loglog_slope, run_all

TINY = Profile("tiny", t1_visits=300, t1_seeds=40, t2_seeds=200, t3_seeds=200, t4_seeds=400, t4_hopeless_visits=400,
               v_visits=300, v_seeds=40, v_state_visits=300, v_state_seeds=200)
THEORY_DIR = Path(__file__).resolve().parents[2] / "theory"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("theory")
    return out, run_all(TINY, seed=1, out=out)


def test_every_experiment_returns_data_summary_and_figure(results):
    out, res = results
    assert sorted(res) == ["T1", "T2", "T3", "T4", "V"]
    for name, result in res.items():
        assert isinstance(result.figure, Figure) and result.summary and result.data
        png = out / f"{name.lower()}.png"
        assert png.stat().st_size < 150_000, f"{png} is too large for the repository"
    saved = json.loads((out / "results.json").read_text())
    assert saved["profile"] == "tiny" and set(saved) >= {"T1", "T2", "T3", "T4", "V", "command"}


def test_t1_references_and_integer_allocation(results):
    runs = results[1]["T1"].summary["runs"]
    assert runs["oracle"]["regret_at_I"] == 0
    assert runs["uniform"]["regret_at_I"] == pytest.approx(300 * 2 / 3)
    # alpha = 50 makes every solved arm's n equal to 1: integer allocation is uniform allocation.
    assert runs["integer a=50"]["regret_at_I"] == pytest.approx(300 * 2 / 3, rel=0.02)
    assert runs["proportional a=50"]["starved_fraction"] > runs["proportional+explore a=50"]["starved_fraction"]


def test_t3_default_allocation_is_binary(results):
    summary = results[1]["T3"].summary
    assert all(v == 0 for v in summary["max_intermediate_share_after_binary_t"].values())
    population = summary["defaults_population_at_t_100"]
    assert population["0"] + population["1"] + population["8"] == pytest.approx(1.0)


def test_t4_never_solved_state_is_truncated_after_exactly_xi_visits(results):
    summary = results[1]["T4"].summary
    assert summary["hopeless_mean_visits"]["0.0"] == [float(xi) for xi in summary["xis"]]


def test_binned_share_keeps_tiny_late_shares():
    # A share of 1 for 100 visits, then 1e-30: a running-sum difference would return 0 for the late bins.
    centres, means = binned_share(np.r_[np.ones(100), np.full(900, 1e-30)], 1, bins=5)
    assert means[0] == 1.0 and means[-1] == pytest.approx(1e-30)
    centres, means = binned_share(np.arange(1, 11.0), 1, bins=3)
    np.testing.assert_allclose(means, [1.0, 3.0, 7.5])  # visits {1}, {2, 3, 4}, {5..10}
    share = np.arange(1, 10_001.0) ** -1.5
    assert loglog_slope(*binned_share(share, 100)) == pytest.approx(-1.5, abs=0.02)


def test_unknown_profile_and_experiment_are_named():
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        experiments.t2_action_identification("huge")
    with pytest.raises(ValueError, match="unknown experiments"):
        run_all(TINY, only=("T9",))


def test_committed_figures_exist_and_are_small():
    for name in ("t1", "t2", "t3", "t4"):
        png = THEORY_DIR / "figures" / f"{name}.png"
        assert png.is_file() and png.stat().st_size < 150_000, png
        assert f"figures/{name}.png" in (THEORY_DIR / "THEORY.md").read_text()


def test_v_variants_headline_effects(results):
    summary = results[1]["V"].summary
    population = summary["population_n"]
    assert population["min_siblings=2"]["1"] == 0 and population["paper"]["1"] > 0.5
    assert population["clock=visits"] == population["paper"]  # the per-state clock collapses just the same
    t4 = summary["t4"]
    assert t4["absorbing"]["0.0"]["mean_rollouts"] == summary["t4"]["absorbing"]["0.0"]["mean_rollouts"] == 10.0
    assert t4["recoverable"]["0.2"]["truncated_at_end"] < t4["absorbing"]["0.2"]["truncated_at_end"]
