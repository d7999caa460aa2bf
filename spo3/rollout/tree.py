"""3SPO's adaptive, ranked backtracking tree search (paper Sec. 3.3-3.4, Fig. 2).

Per task, per iteration, starting at the task's reset state s:

1. n = num_rollouts(S(s)) with S from the *frozen* store snapshot of the iteration (Eq. 1, 3).
2. n = 0: the branch is truncated and ends as a failed finished trajectory (it counts against the trajectory
   budget and enters the store, but takes no environment step). Beyond the paper (``theory/THEORY.md``): under
   ``truncation="recoverable"`` a truncated state is retried with probability ``retry_probability`` (and a visit
   that is not retried records no count at the state itself); with ``forced_exploration`` c > 0 a kept state with
   N_total(s) < c ln(1 + N_total(parent)) gets n >= 2; the store's ``min_siblings`` floors every kept n. n >= 1: n' = min(n, trajectories left, steps
   left) responses are sampled in one batched policy call, so that no child is stepped past a budget even if
   every child ends the episode; each is applied to a restored snapshot of s, giving n' children that are scored
   with R_3SPO (Eq. 2; novelty = the state key changed, or with ``novelty="unseen"`` changed into a state the
   frozen store has never recorded; success = won) minus the invalid-action penalty.
3. The children are ranked by reward; the search descends into the best one and pushes the other unfinished ones
   (already stepped, never re-generated) on a stack, so that the next-best is on top.
4. A child that ends the episode (won or step limit) is a finished trajectory. When the branch being followed
   finishes, the search backtracks to the top of the stack by restoring that child's snapshot.
5. The search stops when the task's budget of finished trajectories (``max_trajectories``) or environment steps
   (``max_env_steps``) is spent, both hard limits, or when the stack is empty. Children still on the stack then
   were stepped (their steps count) but never finished: they are no trajectory and do not enter the store.
6. A task whose reset failed (``Node.reset_failed``) finishes at once with one lost trajectory without states.

Expansions of all tasks in a round go to the policy as one batch. After each round the search yields the round's
step samples, so the trainer can update the policy between rounds (the paper's post-step optimisation) or collect
them for one update per iteration. The n' children of one expansion form a sibling group (their advantage is
relative to each other; a node expanded twice gives two groups); a single child forms no comparison: advantage 0,
and by default its row stays out of the update (``algo.singleton_rows``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterator, Literal, Sequence

import numpy as np

from spo3.core.reward import step_reward
from spo3.core.score import forced_rollouts, retry_probability, under_explored
from spo3.envs.base import TextEnv
from spo3.policies.base import Policy, PolicyInput
from spo3.rollout.common import Node, Outcome, RolloutResult, RolloutStats, StepSample, Stepper, TaskStream, Trajectory
from spo3.state.keys import Scope
from spo3.state.store import StoreSnapshot

__all__ = ["TreeSearch", "TreeSettings"]


@dataclass(frozen=True)
class TreeSettings:
    """The knobs of one search (taken from :class:`spo3.config.AlgoConfig`)."""

    max_trajectories: int = 8
    max_env_steps: int = 400
    adaptive_rollouts: bool = True
    backtracking: bool = True
    forced_exploration: float = 0.0
    truncation: Literal["absorbing", "recoverable"] = "absorbing"
    truncation_retry: float = 0.5
    use_novelty: bool = True
    novelty: Literal["changed", "unseen"] = "changed"
    use_score_diff: bool = True
    fixed_omega: float | None = None
    invalid_penalty: float = 0.1
    truncated_as_unresolved: bool = False
    trace: bool = False
    """Record one :attr:`TreeSearch.expansions` entry per expansion (``log.expansions``); off, nothing is built."""


@dataclass
class _Tree:
    index: int
    task_id: str
    task_type: str
    env: TextEnv
    root: Node
    current: Node | None
    rng: np.random.Generator | None
    stream: TaskStream | None
    frontier: list[Node] = field(default_factory=list)
    finished: int = 0
    steps: int = 0


class TreeSearch:
    """Ranked backtracking DFS over all tasks of an iteration.

    Args:
      envs: one environment per task.
      tasks: task ids.
      policy: samples the children's responses.
      store: frozen snapshot of the state store, used for every score of this iteration.
      settings: budgets and ablation switches.
      rng: randomness of recoverable truncation's retries (shared by all tasks unless ``streams`` are given).
      temperature: sampling temperature.
      scope: state-key scope.
      history_length: K of the prompt memory.
      streams: one per task: the task's sampling and truncation-escape randomness (default: the policy's own
        generator and ``rng``).

    Iterate :meth:`rounds` to run the search; afterwards :attr:`result` holds every sample and finished
    trajectory, :attr:`outcomes` the (wins, finished) count of the trajectories through each node, and
    :attr:`expansions` one compact record per expansion in search order (the run's
    ``expansions.jsonl``, for tracing how the search treated a state: see :meth:`_trace`).
    """

    def __init__(
        self,
        envs: Sequence[TextEnv],
        tasks: Sequence[str],
        policy: Policy,
        store: StoreSnapshot,
        settings: TreeSettings,
        rng: np.random.Generator | None,
        *,
        temperature: float = 1.0,
        scope: Scope = "global",
        history_length: int = 2,
        streams: Sequence[TaskStream] | None = None,
    ) -> None:
        if len(envs) != len(tasks):
            raise ValueError(f"TreeSearch: {len(envs)} environments for {len(tasks)} tasks")
        if streams is not None and len(streams) != len(tasks):
            raise ValueError(f"TreeSearch: {len(streams)} random streams for {len(tasks)} tasks")
        if streams is None and rng is None:
            raise ValueError("TreeSearch: needs an rng or per-task streams")
        self.streams = streams
        self.envs, self.tasks, self.policy, self.store = list(envs), list(tasks), policy, store
        self.settings, self.rng, self.temperature = settings, rng, temperature
        self.stats = RolloutStats()
        self.stepper = Stepper(envs[0].family if envs else "generic", scope, history_length, self.stats)
        self.samples: list[StepSample] = []
        self.trajectories: list[Trajectory] = []
        self.outcomes: dict[int, list[int]] = {}
        self.expansions: list[dict] = []
        """One record per expansion, in search order (the run's expansions.jsonl; see :meth:`_trace`)."""
        self.retried: list[int] = []
        """Node ids of truncated states expanded anyway (truncation="recoverable")."""
        self.result: RolloutResult | None = None

    # ------------------------------------------------------------------ the search
    def rounds(self) -> Iterator[list[StepSample]]:
        """Run the search, yielding each expansion round's step samples."""
        roots = self.stepper.roots(self.envs, self.tasks)
        trees = []
        for i, (env, task, root) in enumerate(zip(self.envs, self.tasks, roots)):
            stream = self.streams[i] if self.streams is not None else None
            rng = stream.search if stream is not None else self.rng
            tree = _Tree(i, task, env.task_type(task), env, root, current=root, rng=rng, stream=stream)
            if root.reset_failed:  # one lost trajectory without states; the search of the other tasks goes on
                self._finish(tree, root)
                tree.current = None
            trees.append(tree)

        while True:
            requests = [(tree, *req) for tree in trees if (req := self._next_expansion(tree)) is not None]
            if not requests:
                break
            generators = [tree.stream.sampling for tree, _, _ in requests] if self.streams is not None else None
            expanded = self.stepper.expand(
                self.policy, [(tree.env, node, n) for tree, node, n in requests], self.temperature, generators
            )
            round_samples: list[StepSample] = []
            for (tree, node, _), (inp, outcomes) in zip(requests, expanded):
                round_samples += self._expand(tree, node, inp, outcomes)
            self.samples += round_samples
            yield round_samples
        self.stats.task_finished = [tree.finished for tree in trees]
        self.stats.task_steps = [tree.steps for tree in trees]
        self.stats.retries = len(self.retried)
        self.stats.retries_won = sum(1 for i in self.retried if any(self.outcomes.get(i, ())))
        self.result = RolloutResult(self.samples, self.trajectories, self.stats, self.expansions)

    def _allocation(self, tree: _Tree, node: Node) -> int:
        """n(s) of Eq. 3 (with the sibling floor) from the frozen store, or G_max without adaptive rollouts; then
        recoverable truncation's retry and forced exploration."""
        s, params = self.settings, self.store.params
        if not s.adaptive_rollouts:
            return params.g_max
        n = self.store.rollouts_of(node.key)
        n_total = self.store.counts_of(node.key)[0]
        if n == 0 and s.truncation == "recoverable" and tree.rng.random() < retry_probability(n_total, params.xi, s.truncation_retry):
            self.retried.append(node.node_id)
            n = params.min_siblings
        if s.forced_exploration > 0 and len(node.path_keys) > 1:
            parent_total = self.store.counts_of(node.path_keys[-2])[0]
            n = int(forced_rollouts(n, under_explored(n_total, parent_total, s.forced_exploration)))
        return n

    def _budget_left(self, tree: _Tree) -> int:
        """Children the tree may still sample: each may finish a trajectory and takes one environment step."""
        s = self.settings
        return min(s.max_trajectories - tree.finished, s.max_env_steps - tree.steps)

    def _next_expansion(self, tree: _Tree) -> tuple[Node, int] | None:
        """The node the tree expands next and its n' (n capped by the budget), finishing truncated branches on the
        way; None when done."""
        while tree.current is not None and self._budget_left(tree) > 0:
            node = tree.current
            t0 = time.perf_counter()
            n = self._allocation(tree, node)
            self.stats.time_score += time.perf_counter() - t0
            self.stats.n_hist[n] += 1
            self.stats.unseen_allocations += int(self.store.counts_of(node.key)[0] == 0)
            if n > 0:
                return node, min(n, self._budget_left(tree))
            self.stats.truncations += 1
            self._finish(tree, node, truncated=True)
            tree.current = None if node is tree.root else self._after_branch(tree)
        tree.current = None
        return None

    def _expand(self, tree: _Tree, node: Node, inp: PolicyInput, outcomes: list[Outcome]) -> list[StepSample]:
        # The sibling group is this expansion, not the node: a node expanded twice (the root, without
        # backtracking) gives two groups whose children were never compared with each other.
        siblings = (tree.index, self.stats.expansions)
        self.stats.expansions += 1
        children, samples = [], []
        for out in outcomes:
            self.stats.generated_tokens += len(out.response.token_ids)
            children.append(out.child)
            samples.append(
                StepSample(
                    task_id=tree.task_id, input=inp, response=out.response, action=out.action, valid=out.valid,
                    key=node.key, next_key=out.child.key, anchor=node.obs.text, env_reward=out.transition.reward,
                    won=out.transition.won, done=out.transition.done, group=tree.index, traj=out.child.node_id,
                    step_group=siblings, call=out.call,
                )
            )
        tree.steps += len(children)

        t0 = time.perf_counter()
        rewards = self._rewards(node, children, samples)
        self.stats.time_score += time.perf_counter() - t0
        for sample, r in zip(samples, rewards):
            sample.reward = float(r)
        order = np.argsort(-rewards, kind="stable")
        if self.settings.trace:
            self._trace(tree, node, children, samples, rewards, order)
        ranked = [children[j] for j in order]
        for child in ranked:
            if child.done:
                self._finish(tree, child)
        best, others = ranked[0], [c for c in ranked[1:] if not c.done]
        if self.settings.backtracking:
            tree.frontier.extend(reversed(others))  # next-best on top of the stack
            tree.current = best if not best.done else self._after_branch(tree)
        else:
            tree.current = best if not best.done else tree.root
        return samples

    def _rewards(self, node: Node, children: list[Node], samples: list[StepSample]) -> np.ndarray:
        """R_3SPO (Eq. 2) of each child from the frozen store, minus the invalid-action penalty."""
        s = self.settings
        score_t = self.store.score_of(node.key)
        n_total_t, _ = self.store.counts_of(node.key)
        score_next = np.array([self.store.score_of(c.key) for c in children], dtype=np.float64)
        if s.truncated_as_unresolved:  # S == 0 exactly on truncated states (Eq. 1)
            score_next = np.where(score_next == 0.0, 1.0, score_next)
        novel = np.array([c.key != node.key for c in children])
        if s.novelty == "unseen":  # entering a state the frozen store has never recorded
            novel &= np.array([self.store.counts_of(c.key)[0] == 0 for c in children])
        success = np.array([c.won for c in children])
        r = step_reward(
            score_t, score_next, n_total_t, novel, success, self.store.params,
            use_novelty=s.use_novelty, use_score_diff=s.use_score_diff, fixed_omega=s.fixed_omega,
        )
        invalid = np.array([not smp.valid for smp in samples])
        return r - s.invalid_penalty * invalid

    def _after_branch(self, tree: _Tree) -> Node | None:
        """Where the search continues once the followed branch has finished."""
        if not self.settings.backtracking:
            return tree.root
        return tree.frontier.pop() if tree.frontier else None

    def _trace(
        self, tree: _Tree, node: Node, children: list[Node], samples: list[StepSample], rewards: np.ndarray,
        order: np.ndarray,
    ) -> None:
        """Record an expansion: the state (node id, key, text, S and n from the frozen store; the children actually
        sampled are n capped by the budget, one per action), each child's key, action, reward and outcome (for case
        studies such as the paper's Fig. 9), and the search order (child indices, best first: the first is
        followed, the others are stacked for backtracking)."""
        self.expansions.append({
            "task": tree.task_id, "node": node.node_id, "depth": node.depth, "key": node.key, "text": node.state_anchor,
            "score": float(self.store.score_of(node.key)), "n": int(self.store.rollouts_of(node.key)),
            "children": [c.key for c in children],
            "actions": [smp.action for smp in samples], "rewards": [round(float(r), 6) for r in rewards],
            "won": [smp.won for smp in samples], "done": [smp.done for smp in samples],
            "order": [int(j) for j in order],
        })

    def _finish(self, tree: _Tree, node: Node, truncated: bool = False) -> None:
        tree.finished += 1
        trajectory = Stepper.trajectory(node, tree.task_type, truncated=truncated)
        if truncated and self.settings.truncation == "recoverable":
            # The state was not rolled out: its own counts stay its real rollouts, so a retry can un-truncate it.
            trajectory = replace(trajectory, keys=trajectory.keys[:-1], anchors=trajectory.anchors[:-1])
        self.trajectories.append(trajectory)
        for node_id in node.path_ids:
            self.outcomes.setdefault(node_id, []).append(int(node.won))
