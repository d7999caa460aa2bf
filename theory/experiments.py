"""Experiments T1-T4: simulations of the per-state bandit claims, each returning its data, summary numbers and figure.

Statements, bounds and verdicts are in ``theory/THEORY.md``; the figures there come from::

    python -m theory.experiments --profile full --out theory/figures

Profiles: ``small`` runs the whole module in well under a minute (tests, notebooks in CI); ``full`` is the one whose
figures and numbers THEORY.md quotes (a few minutes, single process). The same profile and seed give the same
numbers on any CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure

from spo3.core.score import ScoreParams, num_rollouts, state_score
from theory import bounds
from theory.bandit import BanditRun, first_truncation, sample_paths, simulate, visit_state

__all__ = [
    "EXPERIMENTS",
    "PROFILES",
    "ExperimentResult",
    "Profile",
    "binned_share",
    "log_fit",
    "loglog_slope",
    "main",
    "run_all",
    "t1_allocation_regret",
    "t2_action_identification",
    "t3_score_distinguishability",
    "t4_filtering_stability",
    "v_variants",
]

# A failure threshold no simulated state can reach: switches truncation off where an experiment isolates allocation.
NO_TRUNCATION_XI = 10**18
PAPER_SENSITIVITY = ((5, 0.05, 90.1), (10, 0.1, 95.4), (20, 0.2, 93.3), (50, 0.3, 92.1))  # (xi, zeta, ALFWorld %)


@dataclass(frozen=True)
class Profile:
    """Sizes of the simulations. ``*_seeds`` are independent copies; ``t1_visits`` is the horizon I of T1."""

    name: str
    t1_visits: int
    t1_seeds: int
    t2_seeds: int
    t3_seeds: int
    t4_seeds: int
    t4_hopeless_visits: int
    v_visits: int = 2_000
    """V: the horizon I of the T1 reruns of the variants."""
    v_seeds: int = 200
    """V: seeds of the T1 reruns."""
    v_state_visits: int = 1_000
    """V: visits of one state in the T4 reruns."""
    v_state_seeds: int = 1_000
    """V: seeds of the T4 reruns."""


PROFILES = {
    "small": Profile("small", t1_visits=2_000, t1_seeds=200, t2_seeds=500, t3_seeds=500, t4_seeds=1_000,
                     t4_hopeless_visits=1_500),
    "full": Profile("full", t1_visits=100_000, t1_seeds=1_000, t2_seeds=4_000, t3_seeds=4_000, t4_seeds=20_000,
                    t4_hopeless_visits=4_000, v_visits=10_000, v_seeds=300, v_state_visits=2_000, v_state_seeds=5_000),
}


@dataclass
class ExperimentResult:
    """One experiment's output.

    Attributes:
      name: "T1" .. "T4".
      data: the simulated arrays (and, for T1, the :class:`~theory.bandit.BanditRun` objects).
      summary: plain numbers (JSON-serialisable) quoted in THEORY.md.
      figure: the matplotlib figure.
      seconds: wall time of the experiment.
    """

    name: str
    data: dict[str, Any]
    summary: dict[str, Any]
    figure: Figure
    seconds: float = 0.0


def _profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    return PROFILES[profile]


# ---------------------------------------------------------------------------------------------------- analysis
def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ln y against ln x over the points with x > 0 and y > 0 (nan if fewer than 2)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def log_fit(visits: np.ndarray, regret: np.ndarray) -> tuple[float, float]:
    """Least-squares fit R = a + b ln I; returns ``(a, b)``."""
    b, a = np.polyfit(np.log(np.asarray(visits, dtype=np.float64)), np.asarray(regret, dtype=np.float64), 1)
    return float(a), float(b)


def binned_share(per_visit: np.ndarray, start: int, bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Average a per-visit series over log-spaced bins of visits in [start, I].

    Forced exploration makes the per-visit off-target share jump between 0 and 1 in step across seeds; the mean
    over a bin is the slope of R(I) there and is what a log-log fit should see.

    Args:
      per_visit: ``(I,)`` series, entry i-1 for visit i.
      start: first visit of the first bin (>= 1).
      bins: number of bins.

    Returns:
      ``(centres, means)``, each ``(bins',)``: geometric bin centres and the series' mean in each bin.
    """
    edges = np.unique(np.round(np.geomspace(start, per_visit.size + 1, bins + 1)).astype(np.int64))
    # Sum each bin directly: differences of a running sum would cancel late shares that are 1e-16 of early ones.
    means = np.add.reduceat(per_visit, edges[:-1] - 1) / np.diff(edges)
    return np.sqrt(edges[1:] * edges[:-1].astype(np.float64)), means


def _regime(share_slope: float) -> str:
    """Name the growth of R(I) from the log-log slope s of its per-visit share: R grows like I^(1+s)."""
    if not math.isfinite(share_slope):
        return "zero"
    if share_slope <= -0.9:
        return "logarithmic or bounded"
    if share_slope < -0.1:
        return "polynomial"
    return "linear"


def _first_at_least(grid: np.ndarray, curve: np.ndarray, level: float) -> float:
    """Smallest grid value whose curve value is >= level (nan if never)."""
    hit = np.flatnonzero(curve >= level)
    return float(grid[hit[0]]) if hit.size else math.nan


def _sample_grid(n_max: float, points: int = 150) -> np.ndarray:
    return np.unique(np.round(np.geomspace(1, max(n_max, 2), points)).astype(np.int64))


# ---------------------------------------------------------------------------------------------------------- T1
T1_PROBS = (0.5, 0.7, 0.9)
T1_ALPHAS = (2.5, 5.0, 10.0, 50.0)
T1_INTEGER_ALPHAS = (2.5, 50.0)  # integer allocation is linear whatever alpha; two values show it
T1_EXPLORE = 10.0


def _t1_summary(run: BanditRun, gap: float) -> dict[str, Any]:
    visits = run.visits
    start = max(visits // 100, 1)
    window = run.checkpoints >= start
    centres, shares = binned_share(run.off_target, start)
    score_centres, score_shares = binned_share(run.score_share, start)
    share_slope = loglog_slope(centres, shares)
    _, b = log_fit(run.checkpoints[window], run.mean_regret[window])
    target_samples = run.n_total[run.target]
    others = np.delete(run.n_total, run.target, axis=0)
    return {
        "allocator": run.allocator,
        "alpha": run.params.alpha,
        "alpha_gap": run.params.alpha * gap,
        "explore": run.explore,
        "truncation": run.params.xi < NO_TRUNCATION_XI,
        "regret_at_I": float(run.mean_regret[-1]),
        "regret_per_ln_I": b,
        "regret_growth_exponent": loglog_slope(run.checkpoints[window], run.mean_regret[window]),
        "share_slope": share_slope,
        "regime": _regime(share_slope),
        "mean_score_share_slope": loglog_slope(score_centres, score_shares),
        "median_score_share_slope": loglog_slope(
            run.checkpoints[window], np.median(run.checkpoint_score_share[window], axis=1)
        ),
        "claimed_share_slope": -run.params.alpha * gap / 2,
        "starved_fraction": float(np.mean(target_samples < others.max(axis=0))),
        "target_truncated_fraction": float(run.target_truncated.mean()),
        "forced_off_target_per_seed": float(run.forced_off_target.mean()),
    }


def t1_allocation_regret(profile: str | Profile = "small", seed: int = 0) -> ExperimentResult:
    """T1: allocation regret R(I) of the score-driven allocators on a 3-armed state, against ln I.

    Arms p = (0.5, 0.7, 0.9), so a_w = arm 0 and Delta = 0.2; alpha in {2.5, 5, 10, 50} gives alpha*Delta in
    {0.5, 1, 2, 10}. For each alpha: proportional allocation without and with forced exploration (c = 10); integer
    allocation (Eq. 3) at alpha 2.5 and 50. References: uniform, oracle, proportional at alpha = 50 with L1's
    exploration constant c = 16 / Delta^2, and c = 10 with the default truncation (xi = 10, zeta = 0.1). Truncation is
    otherwise off (``NO_TRUNCATION_XI``) so that T1 measures allocation alone; the default-truncation run shows
    what it adds.

    Args:
      profile: ``"small"``, ``"full"`` or a :class:`Profile`.
      seed: base seed; run j uses ``seed + j``.

    Returns:
      the :class:`ExperimentResult`; ``data["runs"]`` maps a label to its :class:`~theory.bandit.BanditRun`,
      ``summary["runs"]`` a label to its numbers.
    """
    prof = _profile(profile)
    started = time.perf_counter()
    gap = T1_PROBS[1] - T1_PROBS[0]
    explore_l1 = 16.0 / gap**2
    no_trunc = ScoreParams(xi=NO_TRUNCATION_XI)
    specs: list[tuple[str, str, ScoreParams, float]] = []
    for alpha in T1_ALPHAS:
        p = replace(no_trunc, alpha=alpha)
        specs += [
            (f"proportional a={alpha:g}", "proportional", p, 0.0),
            (f"proportional+explore a={alpha:g}", "proportional", p, T1_EXPLORE),
        ]
    specs += [(f"integer a={alpha:g}", "integer", replace(no_trunc, alpha=alpha), 0.0) for alpha in T1_INTEGER_ALPHAS]
    specs += [
        ("proportional+L1 explore a=50", "proportional", replace(no_trunc, alpha=50.0), explore_l1),
        ("proportional+explore a=50 truncation", "proportional", ScoreParams(), T1_EXPLORE),
        ("uniform", "uniform", no_trunc, 0.0),
        ("oracle", "oracle", no_trunc, 0.0),
    ]
    runs = {
        label: simulate(T1_PROBS, prof.t1_visits, allocator=alloc, params=params, seeds=prof.t1_seeds,
                        explore=explore, seed=seed + j)
        for j, (label, alloc, params, explore) in enumerate(specs)
    }
    summary = {
        "probs": list(T1_PROBS),
        "gap": gap,
        "visits": prof.t1_visits,
        "seeds": prof.t1_seeds,
        "explore": T1_EXPLORE,
        "explore_l1": explore_l1,
        "runs": {label: _t1_summary(run, gap) for label, run in runs.items()},
    }
    figure = _t1_figure(runs, gap)
    return ExperimentResult("T1", {"runs": runs}, summary, figure, time.perf_counter() - started)


def _t1_figure(runs: dict[str, BanditRun], gap: float) -> Figure:
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax_log, ax_all, ax_share = fig.subplots(1, 3)
    colors = dict(zip(T1_ALPHAS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for alpha in T1_ALPHAS:
        run = runs[f"proportional+explore a={alpha:g}"]
        ax_log.plot(run.checkpoints, run.mean_regret, color=colors[alpha],
                    label=f"c={T1_EXPLORE:g}, αΔ={alpha * gap:g}")
    ax_log.plot(runs["oracle"].checkpoints, runs["oracle"].mean_regret, color="k", label="oracle")
    ax_log.set(xscale="log", xlabel="visits I", ylabel="R(I) = E Σ off-target share")
    ax_log.set_title("(a) proportional + forced exploration", fontsize=9)
    ax_log.legend(fontsize=7)

    for alpha in T1_ALPHAS:
        ax_all.plot(runs[f"proportional a={alpha:g}"].checkpoints, runs[f"proportional a={alpha:g}"].mean_regret,
                    color=colors[alpha], label=f"proportional, no exploration, αΔ={alpha * gap:g}")
    for label, style in (("integer a=50", "-."), ("uniform", ":"), ("proportional+explore a=50 truncation", "--"),
                         ("proportional+L1 explore a=50", "-")):
        ax_all.plot(runs[label].checkpoints, runs[label].mean_regret, color="k", ls=style, lw=1, label=label)
    ax_all.set(xscale="log", yscale="log", xlabel="visits I", ylabel="R(I)")
    ax_all.set_title("(b) no exploration, integer, uniform, L1 exploration, truncation", fontsize=9)
    ax_all.legend(fontsize=7)

    for alpha in T1_ALPHAS:
        run = runs[f"proportional+explore a={alpha:g}"]
        centres, shares = binned_share(run.score_share, 1, bins=30)
        ax_share.plot(centres, shares, color=colors[alpha], label=f"mean score share, αΔ={alpha * gap:g}")
        median = np.median(run.checkpoint_score_share, axis=1)
        ax_share.plot(run.checkpoints, median, color=colors[alpha], ls=":", lw=1)
        ax_share.plot(run.checkpoints, bounds.share_bound(run.checkpoints, alpha, gap), color=colors[alpha],
                      ls="--", lw=0.8)
    ax_share.set(xscale="log", yscale="log", ylim=(1e-30, 2), xlabel="visit i", ylabel="Σ_{a≠a_w} S(a) / Σ_b S(b)")
    ax_share.set_title(f"(c) score share, c={T1_EXPLORE:g}: mean, median (dotted), i^(-αΔ/2) (dashed)", fontsize=9)
    ax_share.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------------------------- T2
T2_TARGET_P = 0.3
T2_GAPS = (0.05, 0.07, 0.1, 0.14, 0.2, 0.28, 0.4)
T2_KS = (2, 4, 8, 16, 32)
T2_DELTAS = (0.2, 0.1, 0.05, 0.02)


def _identification_curve(k: int, gap: float, n_max: float, seeds: int, params: ScoreParams,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """P(the score's unique argmax is a_w) after N samples of each of K arms (a_w: p = 0.3, the rest 0.3 + gap),
    scored at t = 1 + K N. Returns ``(grid, p_correct)``."""
    probs = [T2_TARGET_P] + [T2_TARGET_P + gap] * (k - 1)
    grid = _sample_grid(n_max)
    correct = np.empty(grid.size)
    for j, (n, successes) in enumerate(sample_paths(probs, grid, seeds, rng)):
        scores = state_score(n, successes, 1 + k * n, params)
        correct[j] = np.mean(scores[0] > scores[1:].max(axis=0))
    return grid, correct


def t2_action_identification(profile: str | Profile = "small", seed: int = 0) -> ExperimentResult:
    """T2: probability that the scores identify the least successful action a_w after N samples per arm, and the
    samples needed for 1 - delta against 1 / Delta^2 and ln(K / delta).

    Identification = a_w has the unique highest Eq. 1 score (default parameters, t = 1 + K N). a_w has p = 0.3,
    the K - 1 other arms p = 0.3 + Delta (all at the minimum gap: the hardest instance for a given Delta and K).

    Args:
      profile: ``"small"``, ``"full"`` or a :class:`Profile`.
      seed: seed of the random generator.

    Returns:
      the :class:`ExperimentResult`.
    """
    prof = _profile(profile)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    params = ScoreParams()
    k_main, delta_main = 4, 0.05
    curves = {
        gap: _identification_curve(k_main, gap, bounds.identification_samples(gap, k_main, min(T2_DELTAS)) * 1.2,
                                   prof.t2_seeds, params, rng)
        for gap in T2_GAPS
    }
    n_for_gap = np.array([_first_at_least(*curves[gap], 1 - delta_main) for gap in T2_GAPS])
    gap_k = 0.1
    k_curves = {
        k: _identification_curve(k, gap_k, bounds.identification_samples(gap_k, k, min(T2_DELTAS)) * 1.2,
                                 prof.t2_seeds, params, rng)
        for k in T2_KS
    }
    k_delta = [(k, d, _first_at_least(*k_curves[k], 1 - d)) for k in T2_KS for d in T2_DELTAS]
    log_k_delta = np.array([math.log(k / d) for k, d, _ in k_delta])
    n_needed = np.array([n for _, _, n in k_delta])
    ok = np.isfinite(n_needed)
    slope_kd, intercept_kd = np.polyfit(log_k_delta[ok], n_needed[ok], 1)
    worst_excess = max(
        float(np.max(1 - curve - bounds.identification_error_bound(grid, gap, k_main)
                     - bounds.truncation_at_bound(grid, T2_TARGET_P - params.zeta, params.xi)))
        for gap, (grid, curve) in curves.items()
    )
    summary = {
        "seeds": prof.t2_seeds,
        "k": k_main,
        "delta": delta_main,
        "target_p": T2_TARGET_P,
        "gaps": list(T2_GAPS),
        "n_needed_by_gap": n_for_gap.tolist(),
        "n_needed_bound_by_gap": bounds.identification_samples(np.array(T2_GAPS), k_main, delta_main).tolist(),
        "slope_vs_inv_gap_sq": loglog_slope(1 / np.array(T2_GAPS) ** 2, n_for_gap),
        "n_times_gap_sq": (n_for_gap * np.array(T2_GAPS) ** 2).tolist(),
        "gap_for_k_sweep": gap_k,
        "n_needed_by_k_delta": [[k, d, n] for k, d, n in k_delta],
        "slope_vs_ln_k_over_delta": float(slope_kd),
        "intercept_vs_ln_k_over_delta": float(intercept_kd),
        "bound_slope_vs_ln": 2 / gap_k**2,
        "max_error_minus_bound": worst_excess,
    }
    data = {"curves": curves, "k_curves": k_curves, "n_for_gap": n_for_gap, "k_delta": k_delta}
    figure = _t2_figure(curves, n_for_gap, k_delta, slope_kd, intercept_kd, k_main, delta_main, gap_k, params)
    return ExperimentResult("T2", data, summary, figure, time.perf_counter() - started)


def _t2_figure(curves, n_for_gap, k_delta, slope, intercept, k, delta, gap_k, params) -> Figure:
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax_curve, ax_gap, ax_kd = fig.subplots(1, 3)
    for gap, color in zip((0.05, 0.1, 0.2, 0.4), ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        grid, correct = curves[gap]
        ax_curve.plot(grid, correct, color=color, label=f"Δ={gap:g}")
        lower = 1 - bounds.identification_error_bound(grid, gap, k) - bounds.truncation_at_bound(
            grid, T2_TARGET_P - params.zeta, params.xi)
        ax_curve.plot(grid, np.maximum(lower, 0), color=color, ls="--", lw=0.9)
    ax_curve.set(xscale="log", ylim=(0, 1.02), xlabel="samples per arm N", ylabel="P(argmax S = a_w)")
    ax_curve.set_title(f"(a) identification, K={k} (dashed: bound)", fontsize=9)
    ax_curve.legend(fontsize=8)

    inv = 1 / np.array(T2_GAPS) ** 2
    ax_gap.plot(inv, n_for_gap, "o-", label="simulated")
    ax_gap.plot(inv, bounds.identification_samples(np.array(T2_GAPS), k, delta), "k--",
                label="bound (2/Δ²) ln((K-1)/δ)")
    ax_gap.set(xscale="log", yscale="log", xlabel="1/Δ²", ylabel=f"N for P(correct) ≥ {1 - delta:g}")
    ax_gap.set_title(f"(b) N needed vs 1/Δ², K={k}, δ={delta:g}: slope {loglog_slope(inv, n_for_gap):.2f}",
                     fontsize=9)
    ax_gap.legend(fontsize=8)

    for kk, marker in zip(T2_KS, "os^Dv"):
        pts = [(math.log(kk / d), n) for k2, d, n in k_delta if k2 == kk]
        ax_kd.plot(*zip(*pts), marker, label=f"K={kk}")
    xs = np.linspace(min(math.log(kk / d) for kk, d, _ in k_delta), max(math.log(kk / d) for kk, d, _ in k_delta), 10)
    ax_kd.plot(xs, intercept + slope * xs, "k-", lw=0.8, label=f"fit: {slope:.0f}·ln(K/δ) {intercept:+.0f}")
    ax_kd.plot([math.log(kk / d) for kk, d, _ in k_delta],
               [bounds.identification_samples(gap_k, kk, d) for kk, d, _ in k_delta], "kx", ms=4,
               label="bound (2/Δ²) ln((K-1)/δ)")
    ax_kd.set(xlabel="ln(K/δ)", ylabel="N for P(correct) ≥ 1-δ")
    ax_kd.set_title(f"(c) N needed vs ln(K/δ), Δ={gap_k:g}", fontsize=9)
    ax_kd.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------------------------- T3
T3_P1 = 0.3
T3_GAPS = (0.05, 0.1, 0.2)
T3_PAIRS = (0.005, 0.02, 0.1)  # p1 of (p1, 2 p1) pairs for integer separability
T3_PAIR_VISITS = 400
T3_ALPHAS = (1.0, 5.0, 15.0, 50.0)


def t3_score_distinguishability(profile: str | Profile = "small", seed: int = 0) -> ExperimentResult:
    """T3: whether scores, and the integer rollout counts built on them, tell two states apart.

    (a) P(S_1 > S_2) against N visits for states p1 = 0.3 and p1 + Delta (default parameters, t = 1 + 2N) with the
    Hoeffding bound. (b) P(n_1 > n_2), n = ceil(8 S), against lambda for pairs (p1, 2 p1) with 400 visits each,
    truncation off. (c) Share of a population of states (p ~ U(0, 1), N ~ U{1..50}) whose n is not in {0, 1, G}
    against t, for several alpha with the default xi, zeta, G; dotted lines mark
    :func:`theory.bounds.binary_allocation_t`.

    Args:
      profile: ``"small"``, ``"full"`` or a :class:`Profile`.
      seed: seed of the random generator.

    Returns:
      the :class:`ExperimentResult`.
    """
    prof = _profile(profile)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    params = ScoreParams()

    order_curves = {}
    for gap in T3_GAPS:
        grid = _sample_grid(12 / gap**2)
        above = np.empty(grid.size)
        for j, (n, successes) in enumerate(sample_paths([T3_P1, T3_P1 + gap], grid, prof.t3_seeds, rng)):
            scores = state_score(n, successes, 1 + 2 * n, params)
            above[j] = np.mean(scores[0] > scores[1])
        order_curves[gap] = (grid, above)
    n_for_95 = {gap: _first_at_least(grid, above, 0.95) for gap, (grid, above) in order_curves.items()}

    lambdas = np.geomspace(0.1, 3000, 120)
    no_trunc = replace(params, xi=NO_TRUNCATION_XI)
    t_of_lambda = np.exp(lambdas / no_trunc.alpha)
    pair_curves, pair_summary = {}, {}
    for p1 in T3_PAIRS:
        _, successes = next(sample_paths([p1, 2 * p1], [T3_PAIR_VISITS], prof.t3_seeds, rng))
        n = num_rollouts(state_score(T3_PAIR_VISITS, successes[None], t_of_lambda[:, None, None], no_trunc),
                         no_trunc.g_max)
        separated = np.mean(n[:, 0] > n[:, 1], axis=1)
        differ = np.mean(n[:, 0] != n[:, 1], axis=1)
        margin = bounds.integer_separation_margin(lambdas, p1, p1, no_trunc.g_max)
        pair_curves[p1] = (separated, differ, margin)
        pair_summary[str(p1)] = {
            "max_p_separated": float(separated.max()),
            "lambda_at_max": float(lambdas[np.argmax(separated)]),
            "max_separation_margin": float(margin.max()),
            "ln_g_over_p1": math.log(no_trunc.g_max) / p1,
            "p_separated_at_lambda_10_ln_g_over_p1": float(
                np.interp(10 * math.log(no_trunc.g_max) / p1, lambdas, separated)),
        }

    pop_p = rng.random(prof.t3_seeds * 4)
    pop_n = rng.integers(1, 51, size=pop_p.size)
    pop_s = rng.binomial(pop_n, pop_p)
    ts = np.unique(np.round(np.geomspace(1, 10_000, 80)))
    intermediate = {}
    for alpha in T3_ALPHAS:
        p_alpha = replace(params, alpha=alpha)
        n = num_rollouts(state_score(pop_n, pop_s, ts[:, None], p_alpha), p_alpha.g_max)
        intermediate[alpha] = np.mean((n != 0) & (n != 1) & (n != p_alpha.g_max), axis=1)
    default_n = num_rollouts(state_score(pop_n, pop_s, 100, params), params.g_max)
    summary = {
        "seeds": prof.t3_seeds,
        "p1": T3_P1,
        "n_for_p_order_95": {str(g): v for g, v in n_for_95.items()},
        "hoeffding_n_for_95": {str(g): float(2 * math.log(1 / 0.05) / g**2) for g in T3_GAPS},
        "pairs": pair_summary,
        "pair_visits": T3_PAIR_VISITS,
        "binary_allocation_t": {str(a): bounds.binary_allocation_t(replace(params, alpha=a)) for a in T3_ALPHAS},
        "max_intermediate_share_after_binary_t": {
            str(a): float(intermediate[a][ts >= bounds.binary_allocation_t(replace(params, alpha=a))].max(initial=0))
            for a in T3_ALPHAS
        },
        "intermediate_share_at_t_100": {str(a): float(np.interp(100, ts, intermediate[a])) for a in T3_ALPHAS},
        "defaults_population_at_t_100": {str(v): float(np.mean(default_n == v)) for v in range(params.g_max + 1)},
        "paper_sensitivity_binary_t": {
            f"xi={xi},zeta={zeta}": bounds.binary_allocation_t(replace(params, xi=xi, zeta=zeta))
            for xi, zeta, _ in PAPER_SENSITIVITY
        },
    }
    data = {"order_curves": order_curves, "lambdas": lambdas, "pair_curves": pair_curves, "ts": ts,
            "intermediate": intermediate}
    figure = _t3_figure(order_curves, lambdas, pair_curves, ts, intermediate, params)
    return ExperimentResult("T3", data, summary, figure, time.perf_counter() - started)


def _t3_figure(order_curves, lambdas, pair_curves, ts, intermediate, params) -> Figure:
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax_order, ax_pair, ax_pop = fig.subplots(1, 3)
    for (gap, (grid, above)), color in zip(order_curves.items(), ("tab:blue", "tab:orange", "tab:green")):
        ax_order.plot(grid, above, color=color, label=f"Δ={gap:g}")
        lower = 1 - bounds.order_error_bound(grid, gap) - bounds.truncation_at_bound(grid, T3_P1 - params.zeta,
                                                                                    params.xi)
        ax_order.plot(grid, np.maximum(lower, 0), color=color, ls="--", lw=0.9)
    ax_order.set(xscale="log", ylim=(0, 1.02), xlabel="visits per state N", ylabel="P(S₁ > S₂)")
    ax_order.set_title(f"(a) score order, p₁={T3_P1:g} (dashed: bound)", fontsize=9)
    ax_order.legend(fontsize=8)

    for (p1, (separated, differ, _)), color in zip(pair_curves.items(), ("tab:blue", "tab:orange", "tab:green")):
        ax_pair.plot(lambdas, separated, color=color, label=f"P(n₁>n₂), p=({p1:g}, {2 * p1:g})")
        ax_pair.plot(lambdas, differ, color=color, ls=":", lw=1)
        ax_pair.axvline(math.log(params.g_max) / p1, color=color, ls="--", lw=0.8)
    ax_pair.set(xscale="log", ylim=(0, 1.02), xlabel="λ = α ln t", ylabel="probability")
    ax_pair.set_title(f"(b) integer n, G={params.g_max}, N={T3_PAIR_VISITS} (dotted: n₁≠n₂; dashed: λ=ln G/p₁)",
                      fontsize=9)
    ax_pair.legend(fontsize=7)

    for (alpha, share), color in zip(intermediate.items(), ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        ax_pop.plot(ts, share, color=color, label=f"α={alpha:g}")
        t_bin = bounds.binary_allocation_t(replace(params, alpha=alpha))
        if t_bin <= ts[-1]:
            ax_pop.axvline(t_bin, color=color, ls=":", lw=1)
    ax_pop.set(xscale="log", xlabel="trajectory count t", ylabel="share of states with n ∉ {0, 1, G}")
    ax_pop.set_title(f"(c) collapse to {{0,1,G}}, ξ={params.xi}, ζ={params.zeta:g} (dotted: exact t)", fontsize=9)
    ax_pop.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------------------- T4
T4_ZETA = 0.1
T4_MARGINS = (0.05, 0.1, 0.2, 0.3)
T4_XIS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50)
T4_HOPELESS = (0.0, 0.03, 0.07)
T4_SWEEP_P = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
T4_SWEEP_VISITS = 1000


def _false_truncation_horizon(margin: float, tolerance: float = 1e-4) -> int:
    """Visits after which the Hoeffding tail sum of later truncations is below ``tolerance``."""
    rate = 2 * margin**2
    return max(3 * max(T4_XIS), math.ceil(math.log(1 / (tolerance * -math.expm1(-rate))) / rate))


def t4_filtering_stability(profile: str | Profile = "small", seed: int = 0) -> ExperimentResult:
    """T4: the truncation filter of Eq. 1 on a single state visited again and again.

    (a) P(a learnable state, p = zeta + margin, is ever truncated) against xi, with the union bound; the horizon
    is long enough for the bound's tail beyond it to be < 1e-4. (b) Visits before a hopeless state (p < zeta) is
    truncated, against xi, with xi / (1 - p). (c) The paper's (xi, zeta) sensitivity pairs: P(truncated within
    1000 visits) for a range of p.

    Args:
      profile: ``"small"``, ``"full"`` or a :class:`Profile`.
      seed: seed of the random generator.

    Returns:
      the :class:`ExperimentResult`.
    """
    prof = _profile(profile)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    xi_params = [ScoreParams(xi=xi, zeta=T4_ZETA) for xi in T4_XIS]

    false_trunc, horizons = {}, {}
    for margin in T4_MARGINS:
        horizons[margin] = _false_truncation_horizon(margin)
        first = first_truncation(T4_ZETA + margin, horizons[margin], prof.t4_seeds, xi_params, rng)
        false_trunc[margin] = (first <= horizons[margin]).sum(axis=1)

    hopeless_seeds = max(prof.t4_seeds // 4, 100)
    hopeless = {
        p: first_truncation(p, prof.t4_hopeless_visits, hopeless_seeds, xi_params, rng) for p in T4_HOPELESS
    }

    sweep_params = [ScoreParams(xi=xi, zeta=zeta) for xi, zeta, _ in PAPER_SENSITIVITY]
    sweep_seeds = max(prof.t4_seeds // 4, 100)
    sweep = np.array([
        (first_truncation(p, T4_SWEEP_VISITS, sweep_seeds, sweep_params, rng) <= T4_SWEEP_VISITS).mean(axis=1)
        for p in T4_SWEEP_P
    ]).T  # (pairs, p)

    xis = np.array(T4_XIS)
    default_row = T4_XIS.index(ScoreParams().xi)
    summary = {
        "seeds": prof.t4_seeds,
        "zeta": T4_ZETA,
        "xis": list(T4_XIS),
        "horizons": {str(m): h for m, h in horizons.items()},
        "false_truncation": {str(m): (false_trunc[m] / prof.t4_seeds).tolist() for m in T4_MARGINS},
        "false_truncation_bound": {
            str(m): bounds.false_truncation_bound(xis, T4_ZETA + m, T4_ZETA).tolist() for m in T4_MARGINS
        },
        "defaults_false_truncation": {
            f"p={T4_ZETA + m:g}": float(false_trunc[m][default_row] / prof.t4_seeds) for m in T4_MARGINS
        },
        "hopeless_seeds": hopeless_seeds,
        "hopeless_mean_visits": {
            str(p): [float(np.mean(row[row <= prof.t4_hopeless_visits])) for row in f] for p, f in hopeless.items()
        },
        "hopeless_untruncated_by_horizon": {
            str(p): [float(np.mean(row > prof.t4_hopeless_visits)) for row in f] for p, f in hopeless.items()
        },
        "hopeless_visits_horizon": prof.t4_hopeless_visits,
        "sweep_p": list(T4_SWEEP_P),
        "sweep_visits": T4_SWEEP_VISITS,
        "sweep_seeds": sweep_seeds,
        "sweep_truncated": {f"xi={xi},zeta={zeta} ({acc}%)": row.tolist()
                            for (xi, zeta, acc), row in zip(PAPER_SENSITIVITY, sweep)},
    }
    data = {"false_trunc_counts": false_trunc, "horizons": horizons, "hopeless": hopeless, "sweep": sweep}
    figure = _t4_figure(false_trunc, prof.t4_seeds, hopeless, prof.t4_hopeless_visits, sweep)
    return ExperimentResult("T4", data, summary, figure, time.perf_counter() - started)


def _t4_figure(false_trunc, seeds, hopeless, hopeless_visits, sweep) -> Figure:
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax_false, ax_hope, ax_sweep = fig.subplots(1, 3)
    xis = np.array(T4_XIS)
    for (margin, counts), color in zip(false_trunc.items(), ("tab:blue", "tab:orange", "tab:green", "tab:red")):
        freq = counts / seeds
        lo, hi = bounds.clopper_pearson(counts, seeds, 0.95)
        ax_false.errorbar(xis, np.maximum(freq, 0.5 / seeds), yerr=[np.maximum(freq - lo, 0), hi - freq], fmt="o-",
                          color=color, ms=3, label=f"p-ζ={margin:g}")
        ax_false.plot(xis, bounds.false_truncation_bound(xis, T4_ZETA + margin, T4_ZETA), color=color, ls="--", lw=0.9)
    ax_false.set(yscale="log", ylim=(0.3 / seeds, 1.5), xlabel="ξ", ylabel="P(ever truncated)")
    ax_false.set_title(f"(a) false truncation, ζ={T4_ZETA:g} (dashed: bound; 0 shown at 1/(2·seeds))", fontsize=9)
    ax_false.legend(fontsize=8)

    for (p, first), color in zip(hopeless.items(), ("tab:blue", "tab:orange", "tab:green")):
        done = np.where(first <= hopeless_visits, first, np.nan)
        mean = np.nanmean(done, axis=1)
        lo, hi = np.nanpercentile(done, [5, 95], axis=1)
        ax_hope.plot(xis, mean, "o-", color=color, ms=3, label=f"p={p:g}")
        ax_hope.fill_between(xis, lo, hi, color=color, alpha=0.15)
        ax_hope.plot(xis, xis / (1 - p), color=color, ls="--", lw=0.8)
    ax_hope.set(xscale="log", yscale="log", xlabel="ξ", ylabel="visits until truncated")
    ax_hope.set_title(f"(b) hopeless states, ζ={T4_ZETA:g} (band: 5-95%; dashed: ξ/(1-p))", fontsize=9)
    ax_hope.legend(fontsize=8)

    image = ax_sweep.imshow(sweep, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (r, c), value in np.ndenumerate(sweep):
        ax_sweep.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if value < 0.5 else "black")
    ax_sweep.set_xticks(range(len(T4_SWEEP_P)), [f"{p:g}" for p in T4_SWEEP_P])
    ax_sweep.set_yticks(range(len(PAPER_SENSITIVITY)),
                        [f"ξ={xi}, ζ={zeta:g}: {acc}%" for xi, zeta, acc in PAPER_SENSITIVITY])
    ax_sweep.set(xlabel="success probability p")
    ax_sweep.set_title(f"(c) P(truncated within {T4_SWEEP_VISITS} visits); paper's ALFWorld success", fontsize=9)
    fig.colorbar(image, ax=ax_sweep, shrink=0.8)
    return fig


# ----------------------------------------------------------------------------------------------------------- V
V_STATE_PROBS = (0.0, 0.03, 0.07, 0.15, 0.2, 0.3, 0.4)
V_RETRY = 0.5  # algo.truncation_retry's default
V_LOW_PROBS = (0.2, 0.4, 0.6)  # a_w close to zeta = 0.1: false truncation is frequent (T4: 0.38 at p = 0.2)


def v_variants(profile: str | Profile = "small", seed: int = 0) -> ExperimentResult:
    """V: T1 and T4 rerun for the allocation variants beyond the paper (algo.min_siblings, forced_exploration,
    truncation, score_clock), each through the trainer's own functions in ``spo3.core.score``.

    (a) T1's 3-armed state (p = 0.5, 0.7, 0.9, alpha = 50, alpha*Delta = 10): integer allocation (Eq. 3, the
    trainer's rule) as published and with each variant; proportional allocation with forced exploration c = 10
    under the default truncation, absorbing and recoverable; both allocators with the per-state clock. The same
    state with p = (0.2, 0.4, 0.6), where a_w is close to zeta, under both truncation rules.
    (b) T4's single state visited ``v_state_visits`` times (default xi, zeta): truncated at the end, ever truncated,
    recovered and rollouts spent, absorbing vs recoverable (retry scale 0.5).
    (c) T3's population (p ~ U(0, 1), N ~ U{1..50}, t = 100): the distribution of n under the paper's Eq. 3, with
    min_siblings = 2 and with the per-state clock.

    Returns:
      the :class:`ExperimentResult`.
    """
    prof = _profile(profile)
    started = time.perf_counter()
    gap = T1_PROBS[1] - T1_PROBS[0]
    paper, no_trunc = ScoreParams(), ScoreParams(xi=NO_TRUNCATION_XI)
    specs: list[tuple[str, str, ScoreParams, float, str]] = [
        ("integer (paper)", "integer", no_trunc, 0.0, "absorbing"),
        ("integer min_siblings=2", "integer", replace(no_trunc, min_siblings=2), 0.0, "absorbing"),
        ("integer forced c=10", "integer", no_trunc, T1_EXPLORE, "absorbing"),
        ("integer clock=visits", "integer", replace(no_trunc, score_clock="visits"), 0.0, "absorbing"),
        ("integer truncation absorbing", "integer", paper, 0.0, "absorbing"),
        ("integer truncation recoverable", "integer", paper, 0.0, "recoverable"),
        ("proportional+explore truncation absorbing", "proportional", paper, T1_EXPLORE, "absorbing"),
        ("proportional+explore truncation recoverable", "proportional", paper, T1_EXPLORE, "recoverable"),
        ("proportional+explore clock=visits", "proportional", replace(no_trunc, score_clock="visits"), T1_EXPLORE,
         "absorbing"),
        ("proportional clock=visits", "proportional", replace(no_trunc, score_clock="visits"), 0.0, "absorbing"),
        ("proportional (no exploration)", "proportional", no_trunc, 0.0, "absorbing"),
        ("low p: proportional+explore absorbing", "proportional", paper, T1_EXPLORE, "absorbing"),
        ("low p: proportional+explore recoverable", "proportional", paper, T1_EXPLORE, "recoverable"),
    ]
    runs = {
        label: simulate(V_LOW_PROBS if label.startswith("low p") else T1_PROBS, prof.v_visits, allocator=alloc, params=params, seeds=prof.v_seeds,
                        explore=explore, seed=seed + j, truncation=trunc, retry=V_RETRY)
        for j, (label, alloc, params, explore, trunc) in enumerate(specs)
    }
    t1 = {label: _t1_summary(run, gap) for label, run in runs.items()}
    for label, (_, _, _, _, trunc) in zip(runs, specs):
        t1[label]["truncation_rule"] = trunc

    rng = np.random.default_rng(seed)
    states = {
        rule: {p: visit_state(p, prof.v_state_visits, prof.v_state_seeds, paper, rng, rule, V_RETRY) for p in V_STATE_PROBS}
        for rule in ("absorbing", "recoverable")
    }
    t4 = {
        rule: {
            str(p): {
                "truncated_at_end": float(r.truncated_at_end.mean()),
                "ever_truncated": float(r.ever_truncated.mean()),
                "recovered": float(r.recovered.mean()),
                "mean_rollouts": float(r.rollouts.mean()),
            }
            for p, r in by_p.items()
        }
        for rule, by_p in states.items()
    }

    pop_rng = np.random.default_rng(seed + 100)
    pop_p = pop_rng.random(prof.t3_seeds * 4)
    pop_n = pop_rng.integers(1, 51, size=pop_p.size)
    pop_s = pop_rng.binomial(pop_n, pop_p)
    populations = {}
    for label, params in (("paper", paper), ("min_siblings=2", replace(paper, min_siblings=2)),
                          ("clock=visits", replace(paper, score_clock="visits"))):
        n = num_rollouts(state_score(pop_n, pop_s, 100, params), params.g_max, params.min_siblings)
        populations[label] = {str(v): float(np.mean(n == v)) for v in range(params.g_max + 1)}

    summary = {
        "probs": list(T1_PROBS), "low_probs": list(V_LOW_PROBS), "alpha": paper.alpha, "gap": gap, "visits": prof.v_visits, "seeds": prof.v_seeds,
        "explore": T1_EXPLORE, "retry": V_RETRY, "t1": t1,
        "state_visits": prof.v_state_visits, "state_seeds": prof.v_state_seeds, "t4": t4,
        "population_t": 100, "population_n": populations,
    }
    figure = _v_figure(runs, t4, populations)
    return ExperimentResult("V", {"runs": runs, "states": states}, summary, figure, time.perf_counter() - started)


def _v_figure(runs: dict[str, BanditRun], t4: dict, populations: dict) -> Figure:
    fig = Figure(figsize=(15, 4.4), layout="constrained")
    ax = fig.add_subplot(1, 3, 1)
    for label, run in runs.items():
        ax.plot(run.checkpoints, np.maximum(run.mean_regret, 1e-1), label=label, lw=1.2)
    ax.set(xscale="log", yscale="log", xlabel="visits I", ylabel="R(I) (mean over seeds)",
           title="(a) T1 rerun: regret of each variant (alpha*Delta = 10)")
    ax.legend(fontsize=6)
    ax = fig.add_subplot(1, 3, 2)
    probs = [float(p) for p in t4["absorbing"]]
    for rule, style in (("absorbing", "o-"), ("recoverable", "s-")):
        ax.plot(probs, [t4[rule][str(p)]["truncated_at_end"] for p in probs], style, label=f"{rule}: truncated at the end")
    ax.plot(probs, [t4["absorbing"][str(p)]["ever_truncated"] for p in probs], "k:", label="ever truncated")
    ax.axvline(0.1, color="grey", lw=0.8)
    ax.set(xlabel="success probability p (zeta = 0.1)", ylabel="fraction of seeds",
           title="(b) T4 rerun: absorbing vs recoverable truncation")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(1, 3, 3)
    width = 0.27
    for j, (label, dist) in enumerate(populations.items()):
        values = np.arange(len(dist))
        ax.bar(values + (j - 1) * width, [dist[str(v)] for v in values], width, label=label)
    ax.set(xlabel="n", ylabel="share of states", title="(c) n at t = 100 (T3 population)")
    ax.legend(fontsize=7)
    return fig


# -------------------------------------------------------------------------------------------------------- main
EXPERIMENTS: dict[str, Callable[..., ExperimentResult]] = {
    "T1": t1_allocation_regret,
    "T2": t2_action_identification,
    "T3": t3_score_distinguishability,
    "T4": t4_filtering_stability,
    "V": v_variants,
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def run_all(profile: str | Profile = "small", seed: int = 0, out: str | Path | None = None,
            only: tuple[str, ...] = tuple(EXPERIMENTS)) -> dict[str, ExperimentResult]:
    """Run the experiments named in ``only``; with ``out``, save ``<name>.png`` figures and ``results.json`` there.

    Args:
      profile: ``"small"``, ``"full"`` or a :class:`Profile`.
      seed: seed passed to every experiment.
      out: directory for figures and the summary (created if missing); ``None`` saves nothing.
      only: experiment names, a subset of :data:`EXPERIMENTS`.

    Returns:
      name -> :class:`ExperimentResult`.
    """
    unknown = set(only) - set(EXPERIMENTS)
    if unknown:
        raise ValueError(f"unknown experiments {sorted(unknown)}; expected names from {sorted(EXPERIMENTS)}")
    results = {name: EXPERIMENTS[name](profile, seed) for name in only}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for name, result in results.items():
            result.figure.savefig(out / f"{name.lower()}.png", dpi=72)
        path = out / "results.json"
        name = _profile(profile).name
        earlier = json.loads(path.read_text()) if path.exists() else {}
        # --only updates its experiments and keeps the others of the same profile and seed
        kept = earlier if (earlier.get("profile"), earlier.get("seed")) == (name, seed) else {}
        summary = {
            **kept,
            "profile": name,
            "seed": seed,
            "command": f"python -m theory.experiments --profile {name} --seed {seed} --out {out}",
            **{name: {"seconds": round(r.seconds, 2), **r.summary} for name, r in results.items()},
        }
        (out / "results.json").write_text(json.dumps(_jsonable(summary), indent=1) + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Run the theory experiments T1-T4 and V and save their figures.")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="directory for <name>.png and results.json (default: save nothing)")
    ap.add_argument("--only", nargs="+", choices=sorted(EXPERIMENTS), default=sorted(EXPERIMENTS))
    args = ap.parse_args(argv)
    results = run_all(args.profile, args.seed, args.out, tuple(args.only))
    for name, result in results.items():
        print(f"{name}: {result.seconds:.1f} s")
        print(json.dumps(_jsonable(result.summary), indent=1)[:4000])


if __name__ == "__main__":
    main()
