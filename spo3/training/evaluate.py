"""Evaluation: per-episode success with a confidence interval, per task type.

Episodes cycle through the given tasks; each is one sampled episode (upstream samples at temperature 0.4 during
validation). The success rate is per episode (not a mean of batch means), with a Wilson interval. Evaluation
samples from its own seed and puts the policy's RNG back afterwards, so evaluating does not change training.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spo3.envs.base import TextEnv
from spo3.envs.workers import EnvWorkerPool, batch_envs
from spo3.policies.base import Policy
from spo3.metrics import wilson_interval
from spo3.rollout.common import Trajectory
from spo3.rollout.group import group_rollout
from spo3.state.keys import Scope

__all__ = ["EvalReport", "evaluate", "evaluate_run", "mean_task_score"]


@dataclass
class EvalReport:
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_length: float
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per task type: episodes, successes, success_rate, ci_low, ci_high, and mean_score where scores are reported."""
    mean_score: float | None = None
    """Mean task score where the environment reports one (WebShop), else None."""
    per_episode: list[dict[str, Any]] = field(default_factory=list)
    """task_id, task_type, won, length, score of every episode."""
    env_failures: int = 0
    """Episodes ended by an engine failure (a failed reset or step, see :mod:`spo3.envs.guard`); they count as
    lost episodes (a failed reset as one of length 0)."""

    def to_dict(self, with_episodes: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not with_episodes:
            d.pop("per_episode")
        return d


def mean_task_score(trajectories: Sequence[Trajectory]) -> float | None:
    """The mean task score of the trajectories where the environment reports one (WebShop: the purchase's score in
    [0, 1], 0 when nothing was bought; the paper's WebShop score is 100x this), else None."""
    scores = [t.score for t in trajectories if t.score is not None]
    return float(np.mean(scores)) if scores else None


def evaluate(
    policy: Policy,
    env: TextEnv,
    tasks: Sequence[str],
    episodes: int,
    *,
    temperature: float = 0.4,
    seed: int = 0,
    scope: Scope = "global",
    history_length: int = 2,
    pool: EnvWorkerPool | None = None,
) -> EvalReport:
    """Play ``episodes`` episodes (cycling through ``tasks``) with ``policy`` and report success.

    All episodes run in lockstep, one batched policy call per step, on one environment instance (each step
    restores its episode's snapshot), or in the workers of ``pool`` (``env.workers``), the episodes dealt by
    :meth:`~spo3.envs.base.TextEnv.step_cost` as in training; the pool's snapshots are dropped afterwards. In
    workers the report is the same for a softmax (tabular, linear) policy; a language model draws one engine seed
    per half-batch, so its samples differ (:meth:`spo3.rollout.common.Stepper.expand`).
    """
    if not tasks:
        raise ValueError("evaluate: no tasks to evaluate on")
    plan = [tasks[i % len(tasks)] for i in range(episodes)]
    envs = batch_envs(env, plan, pool)
    saved = policy.rng_state()
    policy.reseed(seed)
    try:
        result = group_rollout(
            envs, plan, policy, group_size=1, temperature=temperature, scope=scope, history_length=history_length,
        )
    finally:
        policy.set_rng_state(saved)
        if pool is not None:
            pool.release()
    trajectories = result.trajectories
    wins = sum(t.won for t in trajectories)
    lo, hi = wilson_interval(wins, len(trajectories))
    by_type: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_type[t.task_type].append(t)
    per_type = {}
    for task_type, group in sorted(by_type.items()):
        won = sum(t.won for t in group)
        tlo, thi = wilson_interval(won, len(group))
        score = mean_task_score(group)
        per_type[task_type] = {
            "episodes": len(group), "successes": won, "success_rate": won / len(group), "ci_low": tlo, "ci_high": thi,
            **({"mean_score": score} if score is not None else {}),
        }
    return EvalReport(
        episodes=len(trajectories),
        successes=wins,
        success_rate=wins / len(trajectories),
        ci_low=lo,
        ci_high=hi,
        mean_length=float(np.mean([t.length for t in trajectories])),
        per_type=per_type,
        mean_score=mean_task_score(trajectories),
        per_episode=[
            {"task_id": t.task_id, "task_type": t.task_type, "won": t.won, "length": t.length, "score": t.score}
            for t in trajectories
        ],
        env_failures=result.stats.env_failures,
    )


def evaluate_run(
    run: str | Path,
    split: str | None = None,
    episodes: int | None = None,
    *,
    temperature: float | None = None,
    seed: int = 0,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate a run's newest checkpoint (or a given checkpoint directory) on ``split``, as `spo3 eval` does.

    Args:
      run: a run directory or one of its ``checkpoints/iter_*`` directories.
      split: split to evaluate (default: the run's ``env.eval_split``).
      episodes: episodes (default: one per task of the split, after the config's task filters, or of its
        stratified subset with the run's ``eval.per_type``).
      temperature: sampling temperature (default: the run's ``eval.temperature``).
      seed: evaluation sampling seed.
      overrides: config overrides applied to the run's config (e.g. a data directory on another machine).
      out: JSON report path (default ``<run>/eval-<split>-<checkpoint>.json``).

    Returns:
      The report written to ``out``: checkpoint, env, split, catalogue (WebShop), temperature, seed, the
      :class:`EvalReport` fields with every episode, and ``path``.
    """
    from spo3.config import load_config
    from spo3.envs.guard import GuardedEnv
    from spo3.training.builders import build_env, build_policy, env_corpus, eval_tasks, open_env_workers, task_list
    from spo3.training.checkpoint import latest_checkpoint, load_checkpoint

    target = Path(run)
    if (target / "manifest.json").exists():
        checkpoint, run_dir = target, target.parent.parent
    else:
        checkpoint, run_dir = latest_checkpoint(target), target
        if checkpoint is None:
            raise FileNotFoundError(f"{target}: no checkpoint under {target / 'checkpoints'}")
    cfg = load_config(run_dir / "config.yaml", overrides)
    env = GuardedEnv(lambda: build_env(cfg.env, cfg.seed), cfg.env.step_timeout_s)
    split = split or cfg.env.eval_split
    tasks = eval_tasks(env, cfg, split)
    corpus = env_corpus(env, task_list(env, cfg.env, cfg.env.train_split, cfg.seed)) if cfg.policy.kind == "hf" else ()
    pool = open_env_workers(cfg.env, env)  # forked before the policy exists, as in training
    try:
        policy = build_policy(cfg.policy, cfg.seed, corpus)
        load_checkpoint(checkpoint, policy, None)
        temperature = cfg.eval.temperature if temperature is None else temperature
        report = evaluate(
            policy, env, tasks, episodes or len(tasks), temperature=temperature, seed=seed, scope=cfg.algo.state_scope,
            history_length=cfg.env.history_length, pool=pool,
        )
    finally:
        if pool is not None:
            pool.close()
    record = {
        "checkpoint": str(checkpoint), "env": cfg.env.name, "split": split, "temperature": temperature, "seed": seed,
        **({"catalogue": env.inner.catalogue} if hasattr(env.inner, "catalogue") else {}), **report.to_dict(True),
    }
    path = Path(out) if out else run_dir / f"eval-{split}-{checkpoint.name}.json"
    path.write_text(json.dumps(record, indent=1))
    return {**record, "path": str(path)}
