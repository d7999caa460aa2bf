"""A vectorised simulator of one 3SPO decision state seen as a K-armed Bernoulli bandit, over many seeds at once.

The per-state bandit of the paper (arXiv 2606.09961, Sec. 3.5, via the secondary notes in
``../shared/reference/theory.md``): each action a of a state is an arm whose rollouts succeed with a fixed probability
p_a, and the child state reached through a is scored with the trainer's own Eq. 1 from that child's counts,
N_total(a) = rollouts through a and N_success(a) = the successful ones. Scores and rollout counts come from
:func:`spo3.core.score.state_score` and :func:`spo3.core.score.num_rollouts`, the functions the trainer uses.

Clock. The score's t is ``1 + the rollouts this copy of the state has completed``, the trainer's
``t = 1 + trajectories folded into the store`` when the bandit's rollouts are the only trajectories. Under the
one-rollout-per-visit allocators ("proportional", "uniform", "oracle") t equals the visit index i, so
lambda = alpha ln i as in the formalisation. Under "integer" a visit launches sum_a n(a) rollouts and t grows
by that much.

Allocators (the rule that decides which arms get rollouts at visit i):

* ``"proportional"``: one rollout, through arm a with probability S(a) / sum_b S(b) (formalisation, variant A).
* ``"integer"``: n(a) = ceil(G_max S(a)) rollouts through every arm a (Eq. 3, variant B).
* ``"uniform"``: one rollout through an arm drawn uniformly (reference: linear regret).
* ``"oracle"``: one rollout through the target a_w = argmin p (reference: zero regret).

Truncation is absorbing by default: an arm with S = 0 gets no rollouts from the score-driven allocators, so its
counts and hence its score never change again. With ``truncation="recoverable"`` (the trainer's
``algo.truncation``) every truncated arm is retried at each visit with probability
:func:`spo3.core.score.retry_probability` (one extra rollout, or ``min_siblings`` under "integer"). Forced
exploration (``explore = c > 0``) uses the trainer's :func:`spo3.core.score.under_explored` with the parent's
count i - 1, i.e. N(a) < c ln i: under "proportional" the draw is replaced by a rollout through the
least-sampled such untruncated arm (the "N_i(a) >= c ln i" condition of T1); under "integer" such an arm gets
n >= 2 (:func:`spo3.core.score.forced_rollouts`, the trainer's rule). ``params.min_siblings`` and
``params.score_clock`` act through the core functions exactly as in the trainer.

The off-target share of a visit is the fraction of its rollouts sent to arms other than a_w; for the proportional
allocator on a free visit it is the expected fraction sum_{a != a_w} pi_i(a) (the regret R(I) = E sum_i of it is
then estimated with less noise than from the drawn arm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from spo3.core.score import (
    ScoreParams,
    forced_rollouts,
    num_rollouts_unchecked,
    retry_probability,
    state_score,
    state_score_unchecked,
    under_explored,
)

TRUNCATIONS = ("absorbing", "recoverable")

__all__ = [
    "ALLOCATORS",
    "ArmCounts",
    "BanditRun",
    "Visit",
    "checkpoint_visits",
    "first_truncation",
    "visit_state",
    "StateVisits",
    "sample_paths",
    "simulate",
    "target_arm",
    "visit",
]

ALLOCATORS = ("proportional", "integer", "uniform", "oracle")


def _check_probs(probs: object) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 1 or probs.size < 1:
        raise ValueError(f"probs must be a 1-d sequence of K >= 1 success probabilities, got shape {probs.shape}")
    if np.any(~np.isfinite(probs)) or np.any((probs < 0) | (probs > 1)):
        raise ValueError(f"probs must lie in [0, 1], got {probs.tolist()}")
    return probs


def target_arm(probs: np.ndarray) -> int:
    """Index of a_w = argmin_a p_a; the minimum must be unique so that the off-target share is well defined."""
    target = int(np.argmin(probs))
    if np.count_nonzero(probs == probs[target]) > 1:
        raise ValueError(f"the least successful arm must be unique, got probs {probs.tolist()}")
    return target


class ArmCounts:
    """Rollout statistics of ``seeds`` independent copies of one K-armed state.

    Arrays are arm-major, ``(K, seeds)``: reductions over the few arms then add whole contiguous rows, several
    times faster than reducing a short trailing axis. Counts are whole numbers held as float64 (exact below 2^53),
    the dtype the score arithmetic works in, so that no visit converts them.

    Attributes:
      n_total: float64 ``(K, seeds)``, rollouts through each arm (the child state's N_total).
      n_success: float64 ``(K, seeds)``, successful ones (N_success).
      rollouts_done: float64 ``(seeds,)``, rollouts completed by each copy; the score clock is t = 1 + this.
      params: score hyper-parameters.

    """

    def __init__(self, seeds: int, k: int, params: ScoreParams) -> None:
        if seeds < 1 or k < 1:
            raise ValueError(f"ArmCounts needs seeds >= 1 and k >= 1, got seeds={seeds}, k={k}")
        self.params = params
        self.n_total = np.zeros((k, seeds))
        self.n_success = np.zeros((k, seeds))
        self.rollouts_done = np.zeros(seeds)
        self._scratch = np.empty((2, k, seeds))  # the per-visit scores' work space (see unchecked_scores)
        self.visit_space = np.empty((2, k, seeds))
        """Where :func:`visit` writes a one-rollout visit's pulls and successes (float64 ``(K, seeds)``; writing
        into memory already in use is several times cheaper than converting into fresh arrays)."""

    @property
    def t(self) -> np.ndarray:
        """Score clock t = 1 + completed rollouts, shape ``(seeds,)``."""
        return 1 + self.rollouts_done

    def scores(self) -> np.ndarray:
        """Eq. 1 score of every arm's child state, float64 ``(K, seeds)``, with the inputs checked."""
        return state_score(self.n_total, self.n_success, self.t, self.params)

    def unchecked_scores(self) -> np.ndarray:
        """:meth:`scores` without the input checks, for the per-visit loop: counts that only :meth:`record` changed
        are valid by construction (it adds successes <= pulls), so checking them at every visit only costs time.
        The result lives in this object's work space: it is overwritten by the next call.

        While every copy has completed the same number of rollouts (under the one-rollout allocators, until a copy
        is entirely truncated) t is passed as one number: one logarithm per visit instead of one per seed, and the
        same floats (``np.log`` of a number equals its value in an array)."""
        done = self.rollouts_done
        t = 1 + done[0] if (done == done[0]).all() else 1 + done
        return state_score_unchecked(self.n_total, self.n_success, t, self.params, self._scratch)

    def rollouts(self) -> np.ndarray:
        """Eq. 3 rollout count ceil(G_max S) (with the sibling floor) of every arm, int64 ``(K, seeds)``."""
        return num_rollouts_unchecked(self.scores(), self.params.g_max, self.params.min_siblings)

    def record(self, pulls: np.ndarray, successes: np.ndarray, launched: np.ndarray | None = None) -> None:
        """Fold one visit's rollouts in: ``pulls`` and ``successes`` are ``(K, seeds)`` counts (int or float),
        successes <= pulls; ``launched`` is ``pulls.sum(axis=0)`` when the caller knows it already."""
        self.n_total += pulls
        self.n_success += successes
        if launched is None:
            launched = pulls.sum(axis=0)
        self.rollouts_done += launched.view(np.uint8) if launched.dtype == np.bool_ else launched  # (uint8: faster)


@dataclass(frozen=True)
class Visit:
    """What one visit did, for every seed.

    Attributes:
      pulls: ``(K, seeds)``, rollouts through each arm: int64 (integer allocator) or float64 0/1, one-hot per seed
        (the one-rollout allocators; the dtype of the counts, so recording them converts nothing). The one-rollout
        allocators' pulls and successes live in ``ArmCounts.visit_space``: the next visit overwrites them.
      successes: ``(K, seeds)``, successful ones, of the same dtype.
      launched: ``(seeds,)``, rollouts launched at this visit (``pulls.sum(axis=0)``).
      off_target: float64 ``(seeds,)``, share of the visit's allocation that went to arms != a_w (0 when the
        state is entirely truncated and gets no rollout).
      score_share: float64 ``(seeds,)``, sum_{a != a_w} S(a) / sum_b S(b) before the visit (0 when all S = 0).
      forced: bool ``(seeds,)``, the rollout was forced exploration.
    """

    pulls: np.ndarray
    successes: np.ndarray
    off_target: np.ndarray
    score_share: np.ndarray
    forced: np.ndarray
    launched: np.ndarray


def visit(
    counts: ArmCounts,
    probs: np.ndarray,
    allocator: str,
    i: int,
    rng: np.random.Generator,
    explore: float = 0.0,
    truncation: str = "absorbing",
    retry: float = 0.5,
    *,
    target: int | None = None,
) -> Visit:
    """Allocate and simulate the rollouts of visit ``i`` (1-based) for every seed; does not record them.

    Scores come from :meth:`ArmCounts.unchecked_scores`: ``counts`` must hold valid counts (0 <= successes <=
    pulls), as :meth:`ArmCounts.record` keeps them.

    Args:
      counts: statistics before the visit.
      probs: float64 ``(K,)`` success probabilities; the target is their unique argmin.
      allocator: one of :data:`ALLOCATORS`.
      i: visit index, >= 1 (forced exploration keeps N(a) >= explore * ln i).
      rng: random generator (the only source of randomness).
      explore: forced-exploration constant c >= 0 (proportional and integer allocators).
      truncation: "absorbing" or "recoverable" (truncated arms retried with ``retry_probability(N, xi, retry)``).
      retry: the rho of recoverable truncation.
      target: ``target_arm(probs)`` when the caller has already checked it (:func:`simulate` does, once).

    Returns:
      the :class:`Visit`.
    """
    k, seeds = counts.n_total.shape
    if target is None:
        target = target_arm(probs)
    scores = counts.unchecked_scores()
    # Running sums over the few arms, one contiguous row at a time (np.cumsum along axis 0 is ~20x slower); the
    # additions happen in the same order as np.cumsum's and np.sum's, so the results are the same floats.
    cumulative = [scores[0]]
    for a in range(1, k):
        cumulative.append(cumulative[-1] + scores[a])
    total = cumulative[-1]
    alive = total > 0
    all_alive = bool(alive.all())
    # Sum the off-target scores directly: total - S(a_w) cancels to 0 once they are 1e-16 of S(a_w). (With the
    # target last, that sum is the running sum before it.)
    off_rows = [a for a in range(k) if a != target]
    if not off_rows:
        off_scores = np.zeros(seeds)
    elif target == k - 1:
        off_scores = cumulative[-2]
    else:
        off_scores = scores[off_rows[0]] + scores[off_rows[1]] if len(off_rows) > 1 else scores[off_rows[0]]
        for a in off_rows[2:]:
            off_scores += scores[a]
    score_share = off_scores / total if all_alive else np.where(alive, off_scores / np.where(alive, total, 1.0), 0.0)
    forced = np.zeros(seeds, dtype=bool)

    retried = None
    if truncation == "recoverable":
        p_retry = retry_probability(counts.n_total, counts.params.xi, retry)
        retried = (scores == 0) & (counts.n_total > 0) & (rng.random((k, seeds)) < p_retry)

    if allocator == "integer":
        pulls = num_rollouts_unchecked(scores, counts.params.g_max, counts.params.min_siblings)
        if explore > 0:
            pulls = forced_rollouts(pulls, under_explored(counts.n_total, i - 1, explore))
        if retried is not None:
            pulls = np.where(retried, counts.params.min_siblings, pulls)
        successes = rng.binomial(pulls, probs[:, None])
        launched = pulls.sum(axis=0)
        off_target = np.where(launched > 0, (launched - pulls[target]) / np.maximum(launched, 1), 0.0)
        return Visit(pulls, successes, off_target, score_share, forced, launched)

    if allocator == "proportional":
        draw = rng.random(seeds)
        draw *= total
        # The first arm whose cumulative score exceeds the draw; zero-score (truncated) arms have empty intervals.
        # Counting only the first K - 1 running sums keeps the index <= K - 1 when a draw rounds up onto the total.
        # (int8 sums of the comparisons' bytes: 0/1, no conversion; K <= 127 arms fit.)
        if 1 < k <= 127:
            arm = (cumulative[0] <= draw).view(np.int8)
            for below in cumulative[1:-1]:
                arm += (below <= draw).view(np.int8)
        else:
            arm = np.zeros(seeds, dtype=np.int64)
            for below in cumulative[:-1]:
                arm += below <= draw
        off_target = score_share
        if explore > 0:
            starved = under_explored(counts.n_total, i - 1, explore) & (scores > 0)
            forced = starved.any(axis=0)
            least_sampled = np.argmin(np.where(starved, counts.n_total, np.inf), axis=0)
            arm = np.where(forced, least_sampled, arm)
            off_target = np.where(forced, (arm != target).astype(np.float64), score_share)
        launched, all_launched = alive, all_alive
    elif allocator == "uniform":
        arm = rng.integers(0, k, size=seeds)
        off_target = np.full(seeds, (k - 1) / k)
        launched, all_launched = np.ones(seeds, dtype=bool), True
    elif allocator == "oracle":
        arm = np.full(seeds, target)
        off_target = np.zeros(seeds)
        launched, all_launched = np.ones(seeds, dtype=bool), True
    else:
        raise ValueError(f"unknown allocator {allocator!r}; expected one of {ALLOCATORS}")

    # A seed's rollout succeeds when its draw falls below its arm's probability: compared with every arm's at
    # once, then kept on the pulled arm (cheaper than gathering each seed's probability).
    wins = rng.random(seeds) < probs[:, None]
    pulled = arm == np.arange(k, dtype=arm.dtype)[:, None]
    if not all_launched:
        pulled &= launched
    wins &= pulled
    pulls, successes = counts.visit_space
    np.copyto(pulls, pulled.view(np.uint8))  # (converting from uint8 is twice as fast as from bool)
    np.copyto(successes, wins.view(np.uint8))
    if retried is not None:  # recoverable truncation: each retry is one more rollout of the visit
        extra = retried.sum(axis=0)
        extra_off = extra - retried[target]
        n_launched = launched.astype(np.float64)
        off_target = np.where(extra > 0, (off_target * n_launched + extra_off) / np.maximum(n_launched + extra, 1), off_target)
        pulls += retried
        successes += retried & (rng.random((k, seeds)) < probs[:, None])
    return Visit(pulls, successes, off_target, score_share, forced, launched)


def checkpoint_visits(visits: int, count: int) -> np.ndarray:
    """About ``count`` log-spaced visit indices in [1, visits], unique and sorted, always including ``visits``."""
    return np.unique(np.round(np.geomspace(1, visits, count)).astype(np.int64))


@dataclass(frozen=True)
class BanditRun:
    """Result of :func:`simulate`. S = seeds, I = visits, C = number of checkpoints, K = arms; per-arm arrays are
    arm-major like :class:`ArmCounts`.

    Attributes:
      probs: ``(K,)`` success probabilities; ``target`` = a_w = their argmin.
      allocator, explore, params, seed: the settings.
      off_target: ``(I,)`` mean over seeds of each visit's off-target share (its cumulative sum estimates R(I)).
      score_share: ``(I,)`` mean over seeds of the score-proportional off-target share.
      checkpoints: ``(C,)`` 1-based visit indices.
      regret: ``(C, S)`` per-seed cumulative off-target allocation through each checkpoint visit.
      checkpoint_score_share: ``(C, S)`` per-seed score-proportional off-target share at each checkpoint visit.
      checkpoint_min_samples: ``(C, S)`` min_a N(a) before each checkpoint visit.
      forced_off_target: ``(S,)`` forced rollouts through off-target arms.
      n_total, n_success: ``(K, S)`` final counts.
      final_scores: ``(K, S)`` scores after the last visit.
      rollouts: total rollouts simulated (all seeds).
    """

    probs: np.ndarray
    target: int
    allocator: str
    explore: float
    params: ScoreParams
    seed: int
    off_target: np.ndarray
    score_share: np.ndarray
    checkpoints: np.ndarray
    regret: np.ndarray
    checkpoint_score_share: np.ndarray
    checkpoint_min_samples: np.ndarray
    forced_off_target: np.ndarray
    n_total: np.ndarray
    n_success: np.ndarray
    final_scores: np.ndarray
    rollouts: int

    @property
    def seeds(self) -> int:
        return self.n_total.shape[1]

    @property
    def visits(self) -> int:
        return self.off_target.shape[0]

    @property
    def mean_regret(self) -> np.ndarray:
        """``(C,)`` estimate of R(I) at each checkpoint (mean over seeds)."""
        return self.regret.mean(axis=1)

    @property
    def target_truncated(self) -> np.ndarray:
        """``(S,)`` bool: a_w ended truncated (S = 0), so every later rollout goes off-target."""
        return self.final_scores[self.target] == 0


def simulate(
    probs: object,
    visits: int,
    *,
    allocator: str = "proportional",
    params: ScoreParams | None = None,
    seeds: int = 1000,
    explore: float = 0.0,
    seed: int = 0,
    n_checkpoints: int = 64,
    truncation: str = "absorbing",
    retry: float = 0.5,
) -> BanditRun:
    """Run ``visits`` visits of one K-armed state for ``seeds`` independent copies at once.

    Args:
      probs: K success probabilities (a sequence or ``(K,)`` array) with a unique minimum (the target a_w).
      visits: number of visits I >= 1.
      allocator: one of :data:`ALLOCATORS`.
      params: score hyper-parameters (default: the paper's).
      seeds: number of independent copies S >= 1, simulated together (no Python loop over seeds).
      explore: forced-exploration constant c >= 0 (N(a) >= c ln i); for ``"proportional"`` and ``"integer"``.
      seed: seed of the random generator; the same arguments give the same result.
      n_checkpoints: about how many log-spaced visits keep per-seed records.
      truncation: one of :data:`TRUNCATIONS`; "recoverable" applies to the score-driven allocators.
      retry: the rho of recoverable truncation, in (0, 1].

    Returns:
      the :class:`BanditRun`.
    """
    probs = _check_probs(probs)
    target = target_arm(probs)
    params = params or ScoreParams()
    if allocator not in ALLOCATORS:
        raise ValueError(f"unknown allocator {allocator!r}; expected one of {ALLOCATORS}")
    if visits < 1 or seeds < 1:
        raise ValueError(f"simulate needs visits >= 1 and seeds >= 1, got visits={visits}, seeds={seeds}")
    if explore < 0 or (explore > 0 and allocator not in ("proportional", "integer")):
        raise ValueError(
            f"explore={explore!r}: forced exploration needs a constant >= 0 and applies to the proportional and "
            "integer allocators only"
        )
    if truncation not in TRUNCATIONS or not 0 < retry <= 1:
        raise ValueError(f"truncation={truncation!r}, retry={retry!r}: expected one of {TRUNCATIONS} and retry in (0, 1]")
    rng = np.random.default_rng(seed)
    counts = ArmCounts(seeds, probs.size, params)
    checkpoints = checkpoint_visits(visits, n_checkpoints)
    off_target = np.empty(visits)
    score_share = np.empty(visits)
    regret = np.zeros(seeds)
    kept_regret = np.empty((checkpoints.size, seeds))
    kept_share = np.empty((checkpoints.size, seeds))
    kept_min = np.empty((checkpoints.size, seeds), dtype=np.int64)
    forced_off_target = np.zeros(seeds, dtype=np.int64)
    next_checkpoint = 0
    for i in range(1, visits + 1):
        step = visit(counts, probs, allocator, i, rng, explore, truncation, retry, target=target)
        regret += step.off_target
        off_target[i - 1] = step.off_target.sum() / seeds  # the mean, without np.mean's Python-level overhead
        score_share[i - 1] = off_target[i - 1] if step.score_share is step.off_target else step.score_share.sum() / seeds
        if explore > 0:
            forced_off_target += step.forced & (step.pulls[target] == 0)
        if i == checkpoints[next_checkpoint]:
            kept_regret[next_checkpoint] = regret
            kept_share[next_checkpoint] = step.score_share
            kept_min[next_checkpoint] = counts.n_total.min(axis=0)
            next_checkpoint += 1
        counts.record(step.pulls, step.successes, step.launched)
    return BanditRun(
        probs=probs,
        target=target,
        allocator=allocator,
        explore=float(explore),
        params=params,
        seed=seed,
        off_target=off_target,
        score_share=score_share,
        checkpoints=checkpoints,
        regret=kept_regret,
        checkpoint_score_share=kept_share,
        checkpoint_min_samples=kept_min,
        forced_off_target=forced_off_target,
        n_total=counts.n_total.astype(np.int64),
        n_success=counts.n_success.astype(np.int64),
        final_scores=counts.scores(),
        rollouts=int(counts.rollouts_done.sum()),
    )


def sample_paths(
    probs: object, n_grid: Sequence[int], seeds: int, rng: np.random.Generator
) -> Iterator[tuple[int, np.ndarray]]:
    """Sample every arm N times, for each N of an increasing grid, along one sample path per seed.

    The successes at the next grid point add a Binomial(N' - N, p) increment to those at N, so the grid points of
    one seed share their samples (exactly as if the arm were sampled N' times one by one).

    Args:
      probs: K success probabilities.
      n_grid: strictly increasing sample counts N >= 1.
      seeds: number of independent paths S.
      rng: random generator.

    Yields:
      ``(N, successes)`` with ``successes`` int64 ``(K, S)``: successes among the first N samples of each arm.
    """
    probs = _check_probs(probs)
    grid = np.asarray(n_grid, dtype=np.int64)
    if grid.ndim != 1 or grid.size == 0 or grid[0] < 1 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"n_grid must be a strictly increasing sequence of counts >= 1, got {grid.tolist()[:8]}...")
    successes = np.zeros((probs.size, seeds), dtype=np.int64)
    done = 0
    for n in grid.tolist():
        successes = successes + rng.binomial(n - done, probs[:, None], size=successes.shape)
        done = n
        yield n, successes


def first_truncation(
    p: float,
    visits: int,
    seeds: int,
    params: Sequence[ScoreParams],
    rng: np.random.Generator,
    chunk: int = 256,
) -> np.ndarray:
    """Visit at which a single state with success probability ``p`` is first truncated (S = 0, hence n = 0).

    Each visit adds one rollout (success with probability p) to the state's counts; after visit N the state is
    scored by Eq. 1 with N_total = N at t = 1 + N (t does not affect truncation). Truncation is absorbing, so the
    first such N is the visit after which the state is never rolled out again. Every entry of ``params`` is
    evaluated on the same sample paths.

    Args:
      p: success probability in [0, 1].
      visits: horizon H >= 1.
      seeds: number of independent paths S.
      params: score hyper-parameters to compare (their xi and zeta matter).
      rng: random generator.
      chunk: visits simulated per vectorised block (memory ``chunk * S``).

    Returns:
      int64 ``(len(params), S)``: the 1-based visit of first truncation, or ``visits + 1`` if none within H.
    """
    if not 0 <= p <= 1 or visits < 1 or seeds < 1:
        raise ValueError(f"first_truncation needs p in [0, 1], visits >= 1, seeds >= 1; got {p}, {visits}, {seeds}")
    first = np.full((len(params), seeds), visits + 1, dtype=np.int64)
    successes = np.zeros(seeds, dtype=np.int64)
    done = 0
    while done < visits:
        block = min(chunk, visits - done)
        cumulative = successes + np.cumsum(rng.random((block, seeds)) < p, axis=0)
        n_total = np.arange(done + 1, done + block + 1)[:, None]
        for row, score_params in enumerate(params):
            truncated = state_score(n_total, cumulative, 1 + n_total, score_params) == 0
            hit = truncated.any(axis=0) & (first[row] > visits)
            first[row] = np.where(hit, done + 1 + np.argmax(truncated, axis=0), first[row])
        successes = cumulative[-1]
        done += block
    return first


@dataclass(frozen=True)
class StateVisits:
    """Result of :func:`visit_state`, for ``S`` seeds.

    Attributes:
      truncated_at_end: bool ``(S,)``, S = 0 after the last visit.
      ever_truncated: bool ``(S,)``, S = 0 after some visit.
      rollouts: int64 ``(S,)``, rollouts the state received (its final N_total).
      recovered: bool ``(S,)``, truncated at some visit and untruncated at the end.
    """

    truncated_at_end: np.ndarray
    ever_truncated: np.ndarray
    rollouts: np.ndarray
    recovered: np.ndarray


def visit_state(
    p: float,
    visits: int,
    seeds: int,
    params: ScoreParams,
    rng: np.random.Generator,
    truncation: str = "absorbing",
    retry: float = 0.5,
) -> StateVisits:
    """One state with success probability ``p`` visited ``visits`` times under the trainer's truncation rule.

    A visit to an untruncated state adds one rollout (success with probability p). A truncated state (Eq. 1,
    S = 0) gets none under "absorbing"; under "recoverable" it gets one with probability
    ``retry_probability(N_total, xi, retry)`` and a visit without a retry adds no count (the trainer's rule).

    Returns:
      the :class:`StateVisits`.
    """
    if truncation not in TRUNCATIONS or not 0 <= p <= 1 or visits < 1 or seeds < 1:
        raise ValueError(f"visit_state: bad arguments p={p}, visits={visits}, seeds={seeds}, truncation={truncation!r}")
    n_total = np.zeros(seeds, dtype=np.int64)
    n_success = np.zeros(seeds, dtype=np.int64)
    ever = np.zeros(seeds, dtype=bool)
    truncated = np.zeros(seeds, dtype=bool)
    for _ in range(visits):
        roll = ~truncated
        if truncation == "recoverable":
            roll |= truncated & (rng.random(seeds) < retry_probability(n_total, params.xi, retry))
        won = rng.random(seeds) < p
        n_total += roll
        n_success += roll & won
        truncated = state_score(n_total, n_success, 1 + n_total, params) == 0
        ever |= truncated
    return StateVisits(truncated, ever, n_total, ever & ~truncated)
