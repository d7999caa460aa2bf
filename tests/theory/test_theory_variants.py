"""Property checks of the claims V1-V4 about the allocation variants beyond the paper (theory/THEORY.md).

Each claim that needs its variant has a power check: the same check, run with the variant switched off (the
paper's rule), must fail. Simulated frequencies are judged with the Clopper-Pearson limits of
``test_theory_claims`` (confidence 1 - 1e-6 per tail); the suite's "ci" hypothesis profile fixes the examples.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spo3.core import ScoreParams, num_rollouts, state_score
from theory import bounds
from theory.bandit import simulate, visit_state
from tests.theory.test_theory_claims import assert_not_above

counts_st = st.lists(st.integers(0, 500).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))), min_size=1,
                     max_size=40)


# ---------------------------------------------------------------- V1: min_siblings
def check_every_kept_state_is_compared(params: ScoreParams, counts, t: float) -> None:
    n_total, n_success = np.array(counts).T
    s = state_score(n_total, n_success, t, params)
    n = num_rollouts(s, params.g_max, params.min_siblings)
    assert np.all(n[s > 0] >= 2), f"kept states with n = 1: {int(np.sum(n[s > 0] < 2))}"


@settings(max_examples=60)
@given(st.floats(0.0, 200.0), st.integers(1, 60), st.floats(0.0, 1.0), st.integers(2, 32), counts_st,
       st.floats(1.0, 1e6), st.data())
def test_v1_min_siblings_makes_every_kept_state_a_comparison(alpha, xi, zeta, g_max, counts, t, data):
    k = data.draw(st.integers(2, g_max))
    check_every_kept_state_is_compared(ScoreParams(alpha=alpha, xi=xi, zeta=zeta, g_max=g_max, min_siblings=k), counts, t)


def test_v1_power_the_paper_leaves_solved_states_without_comparison():
    counts = [(n, s) for n in range(1, 30) for s in range(0, n + 1)]
    with pytest.raises(AssertionError, match="n = 1"):
        check_every_kept_state_is_compared(ScoreParams(), counts, 100)


# ---------------------------------------------------------------- V2: forced exploration (allocator A)
def check_forced_exploration_regret(k: int, gap: float, alpha: float, c: float, seed: int) -> None:
    """R(I) <= 2 c (K - 1) ln I + K at I = 2000, and a_w starved in at most 1% of the seeds."""
    probs = [0.3 + j * gap for j in range(k)]
    visits, seeds = 2000, 200
    run = simulate(probs, visits, allocator="proportional", params=ScoreParams(alpha=alpha, xi=10**18),
                   seeds=seeds, explore=c, seed=seed)
    others = np.delete(run.n_total, run.target, axis=0)
    starved = int(np.sum(run.n_total[run.target] < others.max(axis=0)))
    assert_not_above(starved, seeds, 0.01, f"V2 starvation K={k} gap={gap} alpha={alpha} c={c}")
    bound = 2 * 10.0 * (k - 1) * math.log(visits) + k
    assert run.mean_regret[-1] <= bound, f"V2 R(I) = {run.mean_regret[-1]:.0f} > {bound:.0f}"


@settings(max_examples=6)
@given(st.integers(2, 3), st.floats(0.2, 0.3), st.floats(10.0, 60.0), st.integers(0, 2**16))
def test_v2_forced_exploration_gives_logarithmic_regret(k, gap, alpha, seed):
    assume(alpha * gap >= 2)
    check_forced_exploration_regret(k, gap, alpha, 10.0, seed)


def test_v2_power_without_forced_exploration_a_w_starves():
    with pytest.raises(AssertionError, match="V2"):
        check_forced_exploration_regret(3, 0.2, 50.0, 0.0, 0)


# ---------------------------------------------------------------- V3: recoverable truncation
def check_learnable_state_not_truncated(xi: int, zeta: float, margin: float, seed: int, truncation: str) -> None:
    """A learnable state (p >= zeta + 0.1) is truncated after 1500 visits in at most 2% of the seeds."""
    seeds = 2000
    r = visit_state(zeta + margin, 1500, seeds, ScoreParams(xi=xi, zeta=zeta), np.random.default_rng(seed), truncation)
    assert_not_above(int(r.truncated_at_end.sum()), seeds, 0.02, f"V3 xi={xi} zeta={zeta} p={zeta + margin}")


@settings(max_examples=8)
@given(st.integers(3, 20), st.floats(0.05, 0.2), st.floats(0.1, 0.4), st.integers(0, 2**16))
def test_v3_recoverable_truncation_releases_learnable_states(xi, zeta, margin, seed):
    check_learnable_state_not_truncated(xi, zeta, margin, seed, "recoverable")


def test_v3_power_absorbing_truncation_keeps_them():
    with pytest.raises(AssertionError, match="V3"):
        check_learnable_state_not_truncated(10, 0.1, 0.1, 0, "absorbing")


@settings(max_examples=5)
@given(st.integers(3, 30), st.floats(0.2, 1.0), st.integers(0, 2**16))
def test_v3_a_hopeless_state_costs_sqrt_visits(xi, rho, seed):
    visits = 1500
    r = visit_state(0.0, visits, 500, ScoreParams(xi=xi), np.random.default_rng(seed), "recoverable", rho)
    expected = float(bounds.recoverable_rollouts(visits, xi, rho))
    assert r.rollouts.mean() == pytest.approx(expected, rel=0.05)
    assert np.all(r.truncated_at_end)


# ---------------------------------------------------------------- V4: per-state clock
@settings(max_examples=60)
@given(st.floats(0.5, 200.0), st.integers(1, 60), st.floats(0.01, 0.6), st.integers(1, 32), counts_st)
def test_v4_visits_clock_is_binary_per_state(alpha, xi, zeta, g_max, counts):
    """Exact: under score_clock=visits, a state with 1 + N_total >= G^(1 / (alpha min(zeta, 1/xi))) has
    n in {0, 1, G}: the collapse happens per state, after its first visits."""
    params = ScoreParams(alpha=alpha, xi=xi, zeta=zeta, g_max=g_max, score_clock="visits")
    n_total, n_success = np.array(counts).T
    mature = 1 + n_total >= bounds.binary_allocation_t(params)
    assume(mature.any())
    n = num_rollouts(state_score(n_total, n_success, 1, params), g_max)[mature]
    n_total, n_success = n_total[mature], n_success[mature]
    truncated = (n_total - n_success >= xi) & (n_success / (n_total + params.eps) <= zeta)
    np.testing.assert_array_equal(n, np.where(truncated, 0, np.where(n_success == 0, g_max, 1)))


def test_v4_the_threshold_is_needed():
    params = ScoreParams(alpha=5.0, score_clock="visits")  # threshold 1 + N >= 64
    assert num_rollouts(state_score(10, 1, 1, params), 8) == 3  # 11^(-0.5) * 8 = 2.4
