"""The allocation variants beyond the paper (issue 9): golden values, defaults equal the paper, and invariants."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spo3.config import AlgoConfig, ConfigError
from spo3.core import ScoreParams, forced_rollouts, num_rollouts, retry_probability, state_score, under_explored

counts_st = st.integers(0, 5_000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n)))


def test_golden_values():
    # S = 2^-5 at t = 2 after one success in one visit: ceil(8 S) = 1, floored to 3.
    s = state_score(1, 1, 2, ScoreParams(alpha=5.0))
    assert s == pytest.approx(2 ** -5 * math.exp(5 * math.log(2) * 1e-6), rel=1e-9)
    assert num_rollouts(s, 8) == 1 and num_rollouts(s, 8, min_siblings=3) == 3
    assert num_rollouts(0.0, 8, min_siblings=3) == 0  # truncated stays truncated
    assert num_rollouts(1.0, 8, min_siblings=3) == 8
    # forced exploration: 3 < 2 ln(1 + 9) = 4.61; 5 is not
    assert under_explored(np.array([3, 5]), 9, 2.0).tolist() == [True, False]
    assert forced_rollouts(np.array([1, 1, 0, 8]), np.array([True, False, True, True])).tolist() == [2, 1, 0, 8]
    # retry probability min(1, rho xi / N)
    assert retry_probability(np.array([10, 20, 40]), 10, 0.5).tolist() == [0.5, 0.25, 0.125]
    assert retry_probability(4, 10, 1.0) == 1.0


def test_visits_clock_uses_the_states_own_count():
    p = ScoreParams(score_clock="visits")
    # t argument ignored: lambda = 50 ln(1 + 4) for a state with 4 visits
    expected = math.exp(-50 * math.log(5) * 1 / (4 + 1e-6))
    assert state_score(4, 1, 10**6, p) == pytest.approx(expected)
    assert state_score(4, 1, 3, p) == state_score(4, 1, 10**6, p)
    assert state_score(0, 0, 10**6, p) == 1.0


@given(counts_st, st.integers(1, 10**6), st.integers(1, 8), st.integers(1, 16))
def test_sibling_floor(counts, t, k, g_extra):
    n_total, n_success = counts
    g = k + g_extra - 1
    params = ScoreParams(g_max=g, min_siblings=k)
    s = state_score(n_total, n_success, t, params)
    n, paper = num_rollouts(s, g, k), num_rollouts(s, g)
    assert (n == 0) == (s == 0)  # the floor never revives a truncated state
    assert n == (max(k, paper) if s > 0 else 0) and k <= n <= g or n == 0


@given(st.lists(counts_st, min_size=1, max_size=20), st.integers(1, 10**6))
def test_defaults_are_the_paper(counts, t):
    n_total, n_success = np.array(counts).T
    paper = ScoreParams(alpha=50.0, xi=10, zeta=0.1, eps=1e-6, g_max=8, omega_k=0.1)
    assert ScoreParams() == paper and AlgoConfig().score_params() == paper
    s = state_score(n_total, n_success, t)
    assert np.array_equal(num_rollouts(s, 8), num_rollouts(s, 8, 1))
    assert not under_explored(n_total, n_total + 10**6, 0.0).any()


@given(st.lists(st.integers(0, 10**5), min_size=1, max_size=10), st.integers(0, 10**5), st.floats(0, 20))
def test_forced_exploration_keeps_truncation_and_floors_at_two(n_total, parent, c):
    n_total = np.array(n_total)
    n = np.resize(np.array([0, 1, 3, 8]), n_total.size)
    forced = under_explored(n_total, parent, c)
    out = forced_rollouts(n, forced)
    assert np.array_equal(out == 0, n == 0)
    assert np.all(out >= n) and np.all(out[forced & (n > 0)] >= 2)
    assert np.array_equal(out[~forced], n[~forced])


@given(st.integers(1, 10**6), st.integers(1, 60), st.floats(0.01, 1))
def test_retry_probability_decays_and_its_sum_diverges(n, xi, rho):
    p = retry_probability(np.array([n, n + 1]), xi, rho)
    assert 0 < p[1] <= p[0] <= 1
    # rho xi / N: a harmonic tail, so a learnable state is retried infinitely often
    assert p[0] == pytest.approx(min(1.0, rho * xi / n))


def test_config_checks():
    for bad in ("min_siblings=0", "min_siblings=9", "forced_exploration=-1", "truncation=sometimes",
                "truncation_retry=0", "score_clock=wall"):
        name, value = bad.split("=")
        with pytest.raises((ConfigError, ValueError), match=name):
            AlgoConfig(**{name: type(getattr(AlgoConfig(), name))(value) if name != "truncation" and name != "score_clock" else value})
    cfg = AlgoConfig(min_siblings=2, score_clock="visits")
    assert cfg.score_params().min_siblings == 2 and cfg.score_params().score_clock == "visits"
