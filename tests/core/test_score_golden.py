"""Golden values for Eq. 1-3 with the paper's defaults (alpha 50, xi 10, zeta 0.1, eps 1e-6, G 8, omega_k 0.1).

Expected numbers were computed by hand from the formulas (e.g. (12, 2, t=2): lambda = 50 ln 2, SR = 2/12.000001,
S = 2^(-50 * SR) = 0.0031003942), not by the code under test.
"""

import math

import numpy as np
import pytest
import torch

from spo3.core import ScoreParams, lambda_t, novelty_weight, num_rollouts, state_score, step_reward

P = ScoreParams()

# (n_total, n_success, t) -> (score, rollouts, novelty weight of n_total)
GOLDEN = [
    ((0, 0, 1), 1.0, 8, 0.5),  # unseen, t == 1
    ((0, 0, 100), 1.0, 8, 0.5),  # unseen states keep S = 1 whatever t
    ((5, 0, 1), 1.0, 8, 0.3032653298563167),  # t == 1: lambda = 0
    ((1, 1, 1), 1.0, 8, 0.45241870901797976),  # t == 1 even for a solved state
    ((9, 0, 5), 1.0, 8, 0.20328482987029955),  # n_fail = xi - 1: not truncated
    ((10, 0, 5), 0.0, 0, 0.18393972058572117),  # truncation edge: n_fail == xi and SR = 0
    ((20, 2, 5), 0.0, 0, 0.06766764161830635),  # truncation edge: SR == zeta (2/20, minus eps)
    ((50, 0, 1), 0.0, 0, 0.0033689734995427335),  # truncated even at t == 1
    ((12, 2, 2), 0.003100394172006488, 1, 0.150597105956101),  # n_fail == xi but SR > zeta: kept
    ((10, 1, 11), 6.209220675116787e-06, 1, 0.18393972058572117),  # 11^(-5): alpha = 50 is nearly binary
    ((100, 1, 11), 0.0, 0, 2.2699964881242427e-05),
    ((200, 100, 2), 2.9802324969869846e-08, 1, 1.030576811219279e-09),
    ((3, 1, 3), 1.1168162866262408e-08, 1, 0.37040911034085894),
]


@pytest.mark.parametrize("counts,score,n,w", GOLDEN)
def test_golden_table(counts, score, n, w):
    n_total, n_success, t = counts
    assert state_score(n_total, n_success, t, P) == pytest.approx(score, rel=1e-12, abs=0)
    assert int(num_rollouts(state_score(n_total, n_success, t, P), P.g_max)) == n
    assert novelty_weight(n_total, P.omega_k) == pytest.approx(w, rel=1e-12)


def test_golden_table_vectorised():
    arr = np.array([c for c, *_ in GOLDEN])
    scores = state_score(arr[:, 0], arr[:, 1], arr[:, 2], P)
    np.testing.assert_allclose(scores, [g[1] for g in GOLDEN], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(num_rollouts(scores, 8), [g[2] for g in GOLDEN])
    assert num_rollouts(scores, 8).dtype == np.int64


def test_lambda():
    assert lambda_t(1, 50.0) == 0.0
    assert lambda_t(np.e, 2.0) == pytest.approx(2.0)
    np.testing.assert_allclose(lambda_t(np.array([1, 2, 4]), 50.0), [0.0, 50 * math.log(2), 100 * math.log(2)])
    with pytest.raises(ValueError, match="t must be"):
        lambda_t(0, 50.0)


# (score_t, score_next, n_total_t, novel, success) -> R_3SPO
REWARD_GOLDEN = [
    ((1.0, 0.003100394172006488, 5, 1, 0), 0.4993900449752549),  # novel step into a resolved state
    ((0.003100394172006488, 1.0, 12, 1, 0), -0.19772250139142208),  # resolved -> unseen: dS < 0
    ((1.0, 1.0, 0, 1, 1), 1.0),  # first-ever winning step
    ((1.1168162866262408e-08, 1.1168162866262408e-08, 3, 0, 0), 0.0),  # no-op
    ((6.209220675116787e-06, 0.0, 10, 1, 0), 0.1839416830737427),  # into a truncated state
]


@pytest.mark.parametrize("args,expected", REWARD_GOLDEN)
def test_step_reward_golden(args, expected):
    assert step_reward(*args, P) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_step_reward_ablations():
    # w/o R_novel and w/o dS drop one term each; a fixed omega replaces omega(N).
    st, sn, n, nov, suc = 1.0, 0.25, 5, 1, 0
    w = 0.5 * math.exp(-0.1 * 5)
    assert step_reward(st, sn, n, nov, suc, P, use_novelty=False) == pytest.approx((0.5 - w) * 0.75)
    assert step_reward(st, sn, n, nov, suc, P, use_score_diff=False) == pytest.approx(w)
    assert step_reward(st, sn, n, nov, suc, P, fixed_omega=0.25) == pytest.approx(0.25 + 0.25 * 0.75)
    with pytest.raises(ValueError, match="fixed_omega"):
        step_reward(st, sn, n, nov, suc, P, fixed_omega=0.7)


def test_torch_in_torch_out():
    s = state_score(torch.tensor([0, 12]), torch.tensor([0, 2]), 2, P)
    assert isinstance(s, torch.Tensor)
    torch.testing.assert_close(s, torch.tensor([1.0, 0.003100394172006488], dtype=torch.float64))
    n = num_rollouts(s, 8)
    assert isinstance(n, torch.Tensor) and n.tolist() == [8, 1]
    r = step_reward(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0]), torch.tensor([1]), torch.tensor([1]))
    assert isinstance(r, torch.Tensor) and r.tolist() == [1.0]


@pytest.mark.parametrize(
    "field,value,msg",
    [("alpha", -1.0, "alpha"), ("xi", 0, "xi"), ("zeta", 1.5, "zeta"), ("zeta", -0.1, "zeta"),
     ("g_max", 0, "g_max"), ("omega_k", -0.1, "omega_k"), ("eps", 0.0, "eps"), ("xi", 2.5, "xi")],
)
def test_params_validation(field, value, msg):
    with pytest.raises(ValueError, match=msg):
        ScoreParams(**{field: value})


def test_bad_counts_rejected():
    with pytest.raises(ValueError, match="counts"):
        state_score(3, 4, 2)
    with pytest.raises(ValueError, match="scores must lie"):
        num_rollouts(1.5, 8)


def test_kept_states_never_underflow_to_truncated():
    """exp(-lambda SR) underflows to 0 for lambda SR > ~708; a kept state is floored at the smallest normal float
    (so it never reads as truncated), on both sides of the lambda <= 700 bound below which no floor is applied."""
    params = ScoreParams(alpha=100.0)
    n_total = np.array([[20.0, 20.0, 20.0]])
    n_success = np.array([[19.0, 19.0, 1.0]])  # kept, kept, truncated (19 failures, SR = 0.05 <= zeta)
    for t in (1e3, 1e4):  # lambda = 690.8 (no floor needed) and 921.0 (exp underflows: floored)
        s = state_score(n_total, n_success, np.full(n_total.shape, t), params)[0]
        expected = np.exp(-(100.0 * np.log(t)) * (19 / (20 + 1e-6)))  # Eq. 1 in the order state_score computes it
        assert s[0] == s[1] == (expected if expected > 0 else np.finfo(np.float64).tiny) and s[0] > 0
        assert s[2] == 0.0
