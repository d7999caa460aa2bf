"""Tree-search semantics on a hand-built deterministic environment with a scripted policy.

Graph (fresh store: every S = 1, so n = G_max = 2 everywhere and R_3SPO = 0.5 novel + 0.5 won)::

    A --go b--> B --go win--> WIN (goal)
    |           '--go d--> D --go f--> F --go g/go h--> G, H (step limit 4)
    '--go c--> C --go e--> E

The scripted policy answers, at each state, with that state's two listed replies ("jump" is not an action: a
no-op that keeps the state key).
"""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spo3.config import AlgoConfig
from spo3.core.score import ScoreParams
from spo3.training.credit import assign_advantages
from spo3.rollout.group import group_rollout
from spo3.rollout.tree import TreeSearch, TreeSettings
from spo3.state import StateStore, state_key
from tests.fakes import GraphEnv, ScriptedPolicy

GRAPH = {
    "A": {"go b": "B", "go c": "C"},
    "B": {"go win": "WIN", "go d": "D"},
    "C": {"go e": "E"},
    "D": {"go f": "F"},
    "E": {"go a": "A"},
    "F": {"go g": "G", "go h": "H"},
}
REPLIES = {
    ("go b", "go c"): ["go b", "go c"],
    ("go d", "go win"): ["go win", "go d"],
    ("go e",): ["go e", "go e"],
    ("go f",): ["jump", "go f"],
    ("go a",): ["go a", "go a"],
    ("go g", "go h"): ["go g", "go h"],
}


def key(state):
    return state_key(GraphEnv.text(state))


def make(max_steps=4, params=ScoreParams(g_max=2), store=None, **settings):
    env = GraphEnv(GRAPH, {"t0": "A"}, goals={"WIN"}, max_steps=max_steps)
    policy = ScriptedPolicy(lambda inp, i: REPLIES[inp.actions][i % 2])
    store = store or StateStore(params)
    search = TreeSearch([env], ["t0"], policy, store.snapshot(), TreeSettings(**settings), np.random.default_rng(0))
    return env, policy, store, search


def expanded_states(policy):
    """The state each policy call expanded, read from the prompt's current observation."""
    out = []
    for call in policy.calls:
        for prompt, _ in call:
            obs = prompt.split("Your current observation is: ")[-1].split("current observation is: ")[-1]
            out.append(obs.split(".")[0].replace("You are in ", ""))
    return out


def test_expansion_order_backtracking_budget_and_counts():
    env, policy, store, search = make(max_trajectories=3)
    rounds = list(search.rounds())
    result = search.result
    # A, then the best child B; B's best child WIN ends a branch, so the search backtracks to the most recently
    # stored sibling D (not C); D's best child F (the no-op child D' is stored); F's children hit the step limit.
    assert [len(r) for r in rounds] == [2, 2, 2, 2]
    assert [call[0][1] for call in policy.calls] == [2, 2, 2, 2]
    assert expanded_states(policy) == ["A", "B", "D", "F"]
    assert result.stats.env_steps == 8 and result.stats.n_hist == {2: 4}
    assert [(t.keys, t.won, t.step_limit) for t in result.trajectories] == [
        ((key("A"), key("B"), key("WIN")), True, False),
        ((key("A"), key("B"), key("D"), key("F"), key("G")), False, True),
        ((key("A"), key("B"), key("D"), key("F"), key("H")), False, True),
    ]
    # The no-op child keeps D's key and is not novel: R = 0; F is novel: R = 0.5; WIN: 0.5 + 0.5.
    rewards = {(s.key, s.action): s.reward for s in result.samples}
    assert rewards[(key("D"), "jump")] == 0.0 and rewards[(key("D"), "go f")] == 0.5
    assert rewards[(key("B"), "go win")] == 1.0
    # Sibling groups: one per expansion, two children each.
    groups = {}
    for s in result.samples:
        groups.setdefault(s.step_group, []).append(s.action)
    assert sorted(map(len, groups.values())) == [2, 2, 2, 2]

    for t in result.trajectories:
        store.record_trajectory(t.keys, t.won)
    n_total, n_success = store.counts([key(s) for s in ["A", "B", "WIN", "D", "F", "G", "H", "C"]])
    assert n_total.tolist() == [3, 3, 1, 2, 2, 1, 1, 0]
    assert n_success.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert store.t == 4


def test_scores_come_from_the_frozen_snapshot():
    env, policy, store, search = make(max_trajectories=3)
    snapshot_before = search.store
    gen = search.rounds()
    next(gen)
    store.record_trajectory([key("B")], won=True)  # a concurrent update must not leak into this iteration
    list(gen)
    assert search.store is snapshot_before and snapshot_before.t == 1
    assert all(r == 0.5 for s, r in [(s, s.reward) for s in search.result.samples if s.key == key("A")])


def test_truncated_state_ends_branch_without_expansion():
    store = StateStore(ScoreParams(g_max=2, xi=1))
    store.record_trajectory([key("B")], won=False)  # B: 1 failure >= xi and SR 0 <= zeta -> S = 0, n = 0
    env, policy, store, search = make(store=store, max_trajectories=2)
    list(search.rounds())
    result = search.result
    assert result.stats.truncations == 1
    assert expanded_states(policy)[:2] == ["A", "C"]  # B is never sent to the policy
    truncated = [t for t in result.trajectories if t.truncated]
    assert [(t.keys, t.won, t.length) for t in truncated] == [((key("A"), key("B")), False, 1)]
    assert result.stats.n_hist[0] == 1


def test_single_rollout_forms_no_sibling_group():
    store = StateStore(ScoreParams(g_max=2))
    store.record_trajectory([key("A")], won=True)  # t = 2: S(A) = 2^-50, n = 1
    env, policy, store, search = make(store=store, max_trajectories=1)
    list(search.rounds())
    first = [s for s in search.result.samples if s.key == key("A")]
    assert len(first) == 1 and policy.calls[0] == [(policy.calls[0][0][0], 1)]
    adv = assign_advantages(search.result.samples, AlgoConfig(name="3spo"))
    assert first[0].advantage == 0.0 and np.all(np.isfinite(adv))


def test_env_step_budget():
    env, policy, store, search = make(max_trajectories=100, max_env_steps=3)
    list(search.rounds())
    # A gets its 2 children, B only 1 (the steps left); the stacked child C is never finished.
    assert search.result.stats.env_steps == 3
    assert [call[0][1] for call in policy.calls] == [2, 1]
    assert search.result.stats.n_hist == {2: 2}  # Eq. 3's n, before the budget cap
    assert search.result.stats.task_steps == [3] and search.result.stats.task_finished == [1]  # B's child won


def test_one_expansion_cannot_finish_more_than_the_trajectory_budget():
    # Every child of A wins at once: with G_max = 4 and a budget of 2 trajectories, A gets only 2 children.
    env = GraphEnv({"A": {"go w": "W"}}, {"t": "A"}, goals={"W"}, max_steps=5)
    policy = ScriptedPolicy(lambda inp, i: "go w")
    search = TreeSearch([env], ["t"], policy, StateStore(ScoreParams(g_max=4)).snapshot(),
                        TreeSettings(max_trajectories=2), np.random.default_rng(0))
    list(search.rounds())
    assert len(search.result.trajectories) == 2 and policy.calls == [[(policy.calls[0][0][0], 2)]]


@given(
    max_trajectories=st.integers(1, 6), max_env_steps=st.integers(1, 14), g_max=st.integers(1, 3),
    backtracking=st.booleans(), adaptive=st.booleans(), truncate_b=st.booleans(),
)
def test_budgets_are_hard(max_trajectories, max_env_steps, g_max, backtracking, adaptive, truncate_b):
    store = StateStore(ScoreParams(g_max=g_max, xi=1))
    if truncate_b:
        store.record_trajectory([key("B")], won=False)  # truncated branches count as finished trajectories
    env = GraphEnv(GRAPH, {"t0": "A", "t1": "C"}, goals={"WIN"}, max_steps=4)
    policy = ScriptedPolicy(lambda inp, i: REPLIES[inp.actions][i % 2])
    settings = TreeSettings(max_trajectories=max_trajectories, max_env_steps=max_env_steps, backtracking=backtracking,
                            adaptive_rollouts=adaptive)
    search = TreeSearch([env, env], ["t0", "t1"], policy, store.snapshot(), settings, np.random.default_rng(0))
    list(search.rounds())
    result = search.result
    finished = Counter(t.task_id for t in result.trajectories)
    steps = Counter(s.group for s in result.samples)
    assert result.stats.task_finished == [finished["t0"], finished["t1"]]
    assert result.stats.task_steps == [steps[0], steps[1]]
    assert max(result.stats.task_finished) <= max_trajectories and max(result.stats.task_steps) <= max_env_steps


def test_without_backtracking_restarts_from_root():
    env, policy, store, search = make(max_trajectories=3, backtracking=False)
    list(search.rounds())
    assert expanded_states(policy)[:3] == ["A", "B", "A"]


def test_every_expansion_is_its_own_sibling_group():
    # Without backtracking the search re-expands the root A: each expansion's children compare only with each
    # other, so two expansions of one node must not share a label.
    env, policy, store, search = make(max_trajectories=3, backtracking=False)
    list(search.rounds())
    sizes = {}
    for s in search.result.samples:
        sizes[s.step_group] = sizes.get(s.step_group, 0) + 1
    assert expanded_states(policy).count("A") >= 2
    assert len(sizes) == search.result.stats.expansions
    assert sorted(sizes.values()) == sorted(n for call in policy.calls for _, n in call)


def test_without_adaptive_rollouts_n_is_g_max_even_when_truncated():
    store = StateStore(ScoreParams(g_max=2, xi=1))
    store.record_trajectory([key("B")], won=False)
    env, policy, store, search = make(store=store, max_trajectories=2, adaptive_rollouts=False)
    list(search.rounds())
    assert search.result.stats.truncations == 0 and set(search.result.stats.n_hist) == {2}


def test_restores_use_snapshots_not_replays():
    env, policy, store, search = make(max_trajectories=3)
    list(search.rounds())
    assert env.resets == 1  # only the root; every branch continues from a restored snapshot
    assert env.restores == env.steps == 8


def test_group_rollout_labels_and_lockstep():
    env = GraphEnv(GRAPH, {"t0": "A", "t1": "C"}, goals={"WIN"}, max_steps=3)
    policy = ScriptedPolicy(lambda inp, i: REPLIES[inp.actions][0])
    result = group_rollout([env, env], ["t0", "t1"], policy, group_size=3, temperature=1.0)
    assert len(result.trajectories) == 6
    assert {s.group for s in result.samples} == {0, 1}
    assert {s.traj for s in result.samples} == {(i, j) for i in range(2) for j in range(3)}
    # one batched call per step: t0 wins in 2 steps (A, B), t1 runs to the step limit (3 steps)
    assert [len(c) for c in policy.calls] == [6, 6, 3]
    t0 = [t for t in result.trajectories if t.task_id == "t0"]
    assert all(t.won and t.length == 2 for t in t0)


def test_group_rollout_steps_game_by_game_and_records_in_batch_order():
    class SwitchCounting(GraphEnv):
        """Counts game switches: restores of a task other than the one stepped last."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.switches, self.last_task = 0, None

        def restore(self, snapshot):
            self.switches += snapshot[0] != self.last_task
            self.last_task = snapshot[0]
            return super().restore(snapshot)

    env = SwitchCounting(GRAPH, {"t0": "A", "t1": "C"}, goals={"WIN"}, max_steps=3)
    plan = ["t0", "t1", "t0", "t1"]  # an evaluation cycling through two games
    policy = ScriptedPolicy(lambda inp, i: REPLIES[inp.actions][0])
    result = group_rollout([env] * 4, plan, policy, group_size=1, temperature=1.0)
    # batch order kept: step 1 of the four episodes, then step 2, ...; the t0 episodes win after two steps
    assert [s.task_id for s in result.samples] == plan + plan + ["t1", "t1"]
    assert [s.group for s in result.samples] == [0, 1, 2, 3, 0, 1, 2, 3, 1, 3]
    # step 1: t0 t0 | t1 t1, step 2: t0 | t1, step 3: t1 (no switch); in plan order it was 4 + 4 + 0
    assert env.switches == 2 + 2 + 0


def test_bad_budgets_are_config_errors():
    from spo3.config import ConfigError

    with pytest.raises(ConfigError, match="max_trajectories"):
        AlgoConfig(max_trajectories=0)


def test_frontier_pops_next_best_sibling():
    # Three children of A ranked W (won, 1.0) > Y (novel, 0.5) > A' (no-op, 0): after W's branch ends, the
    # search must continue at Y, the next best, not at the no-op child.
    graph = {"A": {"go y": "Y", "go w": "W"}, "Y": {"go z": "Z"}, "Z": {"go y": "Y"}}
    replies = {("go w", "go y"): ["jump", "go y", "go w"], ("go z",): ["go z"] * 3, ("go y",): ["go y"] * 3}
    env = GraphEnv(graph, {"t": "A"}, goals={"W"}, max_steps=10)
    policy = ScriptedPolicy(lambda inp, i: replies[inp.actions][i % 3])
    search = TreeSearch([env], ["t"], policy, StateStore(ScoreParams(g_max=3)).snapshot(),
                        TreeSettings(max_trajectories=3, max_env_steps=9), np.random.default_rng(0))
    list(search.rounds())
    assert expanded_states(policy)[:2] == ["A", "Y"]
    assert search.result.trajectories[0].won


def test_truncated_child_scored_as_unresolved_on_request():
    # B is truncated (S = 0): with the paper's dS, moving A -> B earns (0.5 - w)(S(A) - 0); scored as unresolved,
    # B earns no dS bonus over an unseen state.
    store = StateStore(ScoreParams(g_max=2, xi=1, alpha=0.0))
    store.record_trajectory([key("A"), key("B")], won=False)  # A, B: one failure each -> both truncated
    store.record_trajectory([key("A")], won=True)  # A: SR 0.5 > zeta -> kept, S(A) = 1 (alpha 0)
    rewards = {}
    for flag in (False, True):
        env, policy, _, search = make(store=store, max_trajectories=2, truncated_as_unresolved=flag)
        next(search.rounds())
        rewards[flag] = {s.action: s.reward for s in search.samples}
    w = 0.5 * np.exp(-0.1 * 2)
    assert rewards[False]["go b"] == pytest.approx(w + (0.5 - w) * 1.0)  # into the truncated B
    assert rewards[True]["go b"] == pytest.approx(w)
    assert rewards[False]["go c"] == rewards[True]["go c"] == pytest.approx(w)  # C unseen: S = 1 either way


def test_novelty_changed_or_unseen():
    # The store has seen A and C (one failure each: S = 1 everywhere, so dS = 0) but never B. "changed" rewards
    # both moves out of A; "unseen" only the move into B. A no-op ("jump" at D) is novel under neither.
    store = StateStore(ScoreParams(g_max=2))
    store.record_trajectory([key("A"), key("C")], won=False)
    w = 0.5 * np.exp(-0.1 * 1)  # omega(N_total(A) = 1)
    rewards = {}
    for novelty in ("changed", "unseen"):
        env, policy, _, search = make(store=store, max_trajectories=3, novelty=novelty)
        list(search.rounds())
        rewards[novelty] = {(s.key, s.action): s.reward for s in search.samples}
    assert rewards["changed"][(key("A"), "go b")] == rewards["changed"][(key("A"), "go c")] == pytest.approx(w)
    assert rewards["unseen"][(key("A"), "go b")] == pytest.approx(w)
    assert rewards["unseen"][(key("A"), "go c")] == 0.0
    assert rewards["changed"][(key("D"), "jump")] == rewards["unseen"][(key("D"), "jump")] == 0.0


# ----------------------------------------------------------------- beyond the paper (issue 9)
def solved_store(params):
    store = StateStore(params)
    store.record_trajectory([key("A")], won=True)  # t = 2: S(A) = 2^-50, Eq. 3 gives n = 1
    return store


def test_min_siblings_turns_a_single_rollout_into_a_comparison():
    for k, expected in ((1, 1), (2, 2)):
        params = ScoreParams(g_max=2, min_siblings=k)
        env, policy, store, search = make(store=solved_store(params), max_trajectories=2)
        list(search.rounds())
        assert policy.calls[0][0][1] == expected


def test_forced_exploration_expands_an_under_explored_child_with_two():
    params = ScoreParams(g_max=2)
    store = StateStore(params)
    for _ in range(20):  # A visited 20 times and solved: n(A) = 1; B once and solved: n(B) = 1
        store.record_trajectory([key("A")], won=True)
    store.record_trajectory([key("A"), key("B")], won=True)
    for c, expected in ((0.0, [1, 1]), (1.0, [1, 2])):  # N(B) = 1 < 1 * ln(1 + 21) = 3.09; A is the root
        env, policy, _, search = make(store=store, max_trajectories=2, forced_exploration=c)
        list(search.rounds())
        assert [call[0][1] for call in policy.calls][:2] == expected


def test_recoverable_truncation_retries_without_counting_unretried_visits():
    params = ScoreParams(g_max=2, xi=1)
    store = StateStore(params)
    store.record_trajectory([key("B")], won=False)  # B truncated: 1 failure >= xi, SR 0
    # absorbing (the paper): B is never expanded and its truncated branch counts at B
    env, policy, _, search = make(store=store, max_trajectories=2)
    list(search.rounds())
    assert "B" not in expanded_states(policy) and search.result.stats.retries == 0
    assert any(t.truncated and t.keys[-1] == key("B") for t in search.result.trajectories)
    # recoverable with retry probability min(1, rho xi / N) = 1: B is expanded with n = 1, reaches WIN
    env, policy, _, search = make(store=store, max_trajectories=2, truncation="recoverable", truncation_retry=1.0)
    list(search.rounds())
    assert expanded_states(policy)[:2] == ["A", "B"]
    assert search.result.stats.retries == 1 and search.result.stats.retries_won == 1
    assert not any(t.truncated for t in search.result.trajectories)


def test_recoverable_truncation_visit_not_retried_leaves_the_state_uncounted():
    params = ScoreParams(g_max=2, xi=1)
    store = StateStore(params)
    for _ in range(10):
        store.record_trajectory([key("B")], won=False)  # N(B) = 10: retry probability 0.5 * 1 / 10 = 0.05
    hits = []
    for seed in range(40):
        env = GraphEnv(GRAPH, {"t0": "A"}, goals={"WIN"}, max_steps=4)
        policy = ScriptedPolicy(lambda inp, i: REPLIES[inp.actions][i % 2])
        settings = TreeSettings(max_trajectories=2, truncation="recoverable", truncation_retry=0.5)
        search = TreeSearch([env], ["t0"], policy, store.snapshot(), settings, np.random.default_rng(seed))
        list(search.rounds())
        truncated = [t for t in search.result.trajectories if t.truncated]
        assert all(key("B") not in t.keys for t in truncated)  # an unretried visit counts at A only
        hits.append(search.result.stats.retries)
    assert 0 < sum(hits) < 10  # about 0.05 * 40 = 2 retries
