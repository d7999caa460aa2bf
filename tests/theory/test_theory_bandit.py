"""The bandit simulator: agreement with the trainer's StateStore, allocator rules, determinism, input errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spo3.core import ScoreParams, num_rollouts
from spo3.state import StateStore
from theory.bandit import ArmCounts, checkpoint_visits, first_truncation, sample_paths, simulate, visit

PARAMS = [ScoreParams(), ScoreParams(alpha=2.0, xi=3, zeta=0.3, g_max=5)]


def fold_into_stores(stores, keys, pulls, successes):
    """Record every rollout of a visit as one trajectory through its arm's child state, in the store of its seed."""
    for seed, store in enumerate(stores):
        for arm, key in enumerate(keys):
            won = int(successes[arm, seed])
            for outcome in [True] * won + [False] * (int(pulls[arm, seed]) - won):
                store.record_trajectory([key], outcome)


@pytest.mark.parametrize("params", PARAMS, ids=["defaults", "alpha2-xi3-zeta0.3-G5"])
@pytest.mark.parametrize("allocator,explore", [("proportional", 0.0), ("proportional", 3.0), ("integer", 0.0),
                                               ("uniform", 0.0), ("oracle", 0.0)])
def test_simulator_and_state_store_agree_visit_by_visit(params, allocator, explore):
    """The regression test: at every visit the simulator's t, scores and rollout counts equal the StateStore's
    after the same rollouts were recorded as trajectories."""
    probs = np.array([0.15, 0.4, 0.8])
    seeds = 4
    keys = [f"child-{a}" for a in range(probs.size)]
    counts = ArmCounts(seeds, probs.size, params)
    stores = [StateStore(params) for _ in range(seeds)]
    rng = np.random.default_rng(7)
    for i in range(1, 41):
        for seed, store in enumerate(stores):
            assert store.t == counts.t[seed]
            np.testing.assert_array_equal(store.scores(keys), counts.scores()[:, seed])
            np.testing.assert_array_equal(store.rollouts(keys), counts.rollouts()[:, seed])
        step = visit(counts, probs, allocator, i, rng, explore)
        if allocator == "integer":
            np.testing.assert_array_equal(step.pulls, counts.rollouts())
        counts.record(step.pulls, step.successes)
        fold_into_stores(stores, keys, step.pulls, step.successes)


@settings(max_examples=30)
@given(
    st.lists(st.integers(0, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))), min_size=1, max_size=6),
    st.sampled_from(PARAMS),
)
def test_scores_for_given_counts_equal_state_store(arm_counts, params):
    store = StateStore(params)
    keys = [f"arm{a}" for a in range(len(arm_counts))]
    for key, (n_total, n_success) in zip(keys, arm_counts):
        for j in range(n_total):
            store.record_trajectory([key], j < n_success)
    counts = ArmCounts(1, len(arm_counts), params)
    counts.n_total[:, 0] = [n for n, _ in arm_counts]
    counts.n_success[:, 0] = [s for _, s in arm_counts]
    counts.rollouts_done[0] = sum(n for n, _ in arm_counts)
    assert counts.t[0] == store.t
    np.testing.assert_array_equal(counts.scores()[:, 0], store.scores(keys))
    np.testing.assert_array_equal(counts.rollouts()[:, 0], store.rollouts(keys))


def test_same_seed_same_run_and_different_seed_differs():
    kwargs = dict(visits=300, allocator="proportional", seeds=50, explore=2.0, params=ScoreParams(alpha=5.0))
    a, b = simulate([0.2, 0.5], seed=3, **kwargs), simulate([0.2, 0.5], seed=3, **kwargs)
    c = simulate([0.2, 0.5], seed=4, **kwargs)
    for field in ("off_target", "score_share", "regret", "n_total", "n_success", "final_scores"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.n_success, c.n_success)


def test_reference_allocators():
    uniform = simulate([0.3, 0.5, 0.7, 0.9], 200, allocator="uniform", seeds=30)
    np.testing.assert_array_equal(uniform.off_target, np.full(200, 0.75))
    assert uniform.mean_regret[-1] == pytest.approx(150.0) and uniform.rollouts == 200 * 30
    oracle = simulate([0.3, 0.5, 0.7, 0.9], 200, allocator="oracle", seeds=30)
    assert oracle.mean_regret[-1] == 0 and np.all(oracle.n_total[1:] == 0) and np.all(oracle.n_total[0] == 200)


def test_proportional_without_exploration_can_starve_the_target():
    """Negative finding of T1 in miniature: at alpha = 50 an early lucky success of a_w sends every later rollout
    to the other arm in a sizeable share of the seeds."""
    run = simulate([0.4, 0.8], 400, allocator="proportional", seeds=400, params=ScoreParams(alpha=50.0, xi=10**18))
    starved = run.n_total[0] < run.n_total[1]
    assert 0.1 < starved.mean() < 0.9
    with_exploration = simulate([0.4, 0.8], 400, allocator="proportional", seeds=400, explore=10.0,
                                params=ScoreParams(alpha=50.0, xi=10**18))
    assert np.mean(with_exploration.n_total[0] < with_exploration.n_total[1]) < starved.mean() / 5


@settings(max_examples=12)
@given(st.integers(2, 4), st.floats(0.5, 20.0), st.integers(20, 400), st.integers(0, 2**16))
def test_exploration_cost_is_logarithmic(k, c, visits, seed):
    """A forced rollout goes to an arm with N(a) < c ln i <= c ln I, so each off-target arm gets at most
    ceil(c ln I) of them; once one rollout per visit can keep up, every untruncated arm holds about c ln I."""
    probs = np.linspace(0.2, 0.9, k)
    run = simulate(probs, visits, allocator="proportional", seeds=20, explore=c, seed=seed,
                   params=ScoreParams(alpha=20.0))
    assert np.all(run.forced_off_target <= (k - 1) * math.ceil(c * math.log(visits)))
    if k * c * math.log(visits) < visits / 2:
        untruncated = run.final_scores > 0
        assert np.all(run.n_total[untruncated] >= math.floor(c * math.log(visits)) - k)


@settings(max_examples=20)
@given(st.sampled_from(["proportional", "integer"]), st.integers(0, 2**16), st.floats(0.0, 0.3))
def test_truncation_is_absorbing(allocator, seed, p_low):
    probs = np.array([p_low, 0.5, 0.6])
    counts = ArmCounts(50, 3, ScoreParams(xi=3, zeta=0.2))
    rng = np.random.default_rng(seed)
    for i in range(1, 60):
        truncated = counts.scores() == 0
        step = visit(counts, probs, allocator, i, rng)
        assert np.all(step.pulls[truncated] == 0)
        counts.record(step.pulls, step.successes)


def test_sample_paths_are_cumulative():
    rng = np.random.default_rng(0)
    previous = None
    for n, successes in sample_paths([0.0, 0.5, 1.0], [1, 5, 50, 5000], 200, rng):
        assert successes.shape == (3, 200)
        assert np.all(successes[0] == 0) and np.all(successes[2] == n) and np.all(successes[1] <= n)
        if previous is not None:
            assert np.all(successes >= previous)
        previous = successes
    assert abs(previous[1].mean() / 5000 - 0.5) < 0.01


def test_first_truncation_exact_cases():
    rng = np.random.default_rng(0)
    params = [ScoreParams(xi=xi, zeta=0.1) for xi in (1, 10, 37)]
    never_wins = first_truncation(0.0, 100, 30, params, rng)
    np.testing.assert_array_equal(never_wins, np.array([[1], [10], [37]]) * np.ones((1, 30), dtype=int))
    always_wins = first_truncation(1.0, 100, 30, params, rng)
    assert np.all(always_wins == 101)


def test_checkpoint_visits():
    grid = checkpoint_visits(10_000, 50)
    assert grid[0] == 1 and grid[-1] == 10_000 and np.all(np.diff(grid) > 0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(probs=[0.5, 0.5, 0.9]), "least successful arm must be unique"),
        (dict(probs=[0.5, 1.2]), r"probs must lie in \[0, 1\]"),
        (dict(probs=[[0.1, 0.2]]), "1-d sequence"),
        (dict(allocator="greedy"), "unknown allocator 'greedy'"),
        (dict(allocator="uniform", explore=1.0), "forced exploration"),
        (dict(truncation="sometimes"), "truncation="),
        (dict(explore=-1.0), "forced exploration"),
        (dict(visits=0), "visits >= 1"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, match):
    args = dict(probs=[0.2, 0.5], visits=10, seeds=3) | kwargs
    with pytest.raises(ValueError, match=match):
        simulate(args.pop("probs"), args.pop("visits"), **args)


def test_integer_pulls_are_eq3_rollouts():
    counts = ArmCounts(5, 2, ScoreParams(alpha=1.0))
    counts.n_total[:] = [[3], [7]]
    counts.n_success[:] = [[1], [0]]
    counts.rollouts_done[:] = 10
    step = visit(counts, np.array([0.3, 0.6]), "integer", 1, np.random.default_rng(0))
    np.testing.assert_array_equal(step.pulls, num_rollouts(counts.scores(), 8))
    np.testing.assert_array_equal(step.pulls[:, 0], [4, 8])  # ceil(8 * 11^(-1/3)) = ceil(3.60); unsolved: 8
