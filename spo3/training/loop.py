"""The training loop: rollout -> statistics -> rewards -> advantages -> update, once per iteration.

    from spo3.config import load_config
    from spo3.training.loop import train
    run_dir = train(load_config("configs/textworld_tabular.yaml", ["algo.name=grpo"]))

GRPO and GiGPO roll out ``group_size`` episodes per task and update once per iteration. 3SPO runs the ranked
backtracking tree search against a frozen snapshot of the state store, updating after every expansion round
(``per_round``) or once per iteration; its finished trajectories are folded into the store only after the
iteration. Every method folds its trajectories into a store, so state statistics are comparable across methods.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from spo3.training.builders import build_env, build_policy, env_corpus, task_list
from spo3.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from spo3.config import TrainConfig
from spo3.config.loading import to_dict
from spo3.training.credit import assign_advantages, loss_rows
from spo3.envs.base import TextEnv
from spo3.training.evaluate import evaluate
from spo3.metrics import MetricsLogger
from spo3.rollout.common import RolloutResult, StepSample
from spo3.rollout.group import group_rollout
from spo3.rollout.tree import TreeSearch, TreeSettings
from spo3.state.store import StateStore
from spo3.training.update import build_optimizer, ppo_update

__all__ = ["TaskSampler", "train"]

log = logging.getLogger(__name__)


class TaskSampler:
    """Cycles through a task list in seeded shuffled passes (every task once per pass), resumable exactly."""

    def __init__(self, tasks: list[str], seed: int) -> None:
        self.tasks = list(tasks)
        self.rng = np.random.default_rng(seed)
        self.order: list[int] = []

    def next(self, k: int) -> list[str]:
        out = []
        while len(out) < k:
            if not self.order:
                self.order = self.rng.permutation(len(self.tasks)).tolist()
            out.append(self.tasks[self.order.pop(0)])
        return out

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "order": self.order}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = list(state["order"])


@dataclass
class Counters:
    """Cumulative costs, for comparing methods at equal budgets."""

    env_steps: int = 0
    generated_tokens: int = 0
    trajectories: int = 0
    optimizer_steps: int = 0
    wall_time: float = 0.0


@dataclass
class _UpdateLog:
    diags: list[dict[str, float]] = field(default_factory=list)
    time: float = 0.0
    dropped_rows: int = 0
    """Step samples left out of the loss (3SPO singleton sibling groups)."""


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _iteration_metrics(
    cfg: TrainConfig, iteration: int, result: RolloutResult, store: StateStore, updates: _UpdateLog,
    counters: Counters, wall: float, env_label: dict[str, Any],
) -> dict[str, Any]:
    trajs, stats = result.trajectories, result.stats
    by_type: dict[str, list[bool]] = defaultdict(list)
    for t in trajs:
        by_type[t.task_type].append(t.won)
    summary = store.summary()
    diag_keys = sorted({k for d in updates.diags for k in d})
    loss = {k: float(np.mean([d[k] for d in updates.diags if k in d])) for k in diag_keys}
    loss["optimizer_steps"] = int(sum(d.get("optimizer_steps", 0) for d in updates.diags))
    loss["dropped_rows"] = updates.dropped_rows
    n_sibling = Counter(s.step_group for s in result.samples)
    budget = {
        "finished_max": max(stats.task_finished, default=0),
        "finished_mean": float(np.mean(stats.task_finished)) if stats.task_finished else 0.0,
        "steps_max": max(stats.task_steps, default=0),
        "steps_mean": float(np.mean(stats.task_steps)) if stats.task_steps else 0.0,
    }
    if cfg.algo.name == "3spo":  # tasks whose search stopped because a budget was spent
        budget["trajectory_budget_hits"] = sum(f >= cfg.algo.max_trajectories for f in stats.task_finished)
        budget["step_budget_hits"] = sum(n >= cfg.algo.max_env_steps for n in stats.task_steps)
    sibling_groups = sum(1 for c in n_sibling.values() if c > 1) if cfg.algo.name == "3spo" else 0
    no_signal = {"no_sibling_group": int(sibling_groups == 0)} if cfg.algo.name == "3spo" else {}
    return {
        "iteration": iteration,
        "algorithm": cfg.algo.name,
        "seed": cfg.seed,
        **env_label,
        "success_rate": float(np.mean([t.won for t in trajs])) if trajs else 0.0,
        "success_by_type": {k: float(np.mean(v)) for k, v in sorted(by_type.items())},
        "episode_length": float(np.mean([t.length for t in trajs])) if trajs else 0.0,
        "finished_trajectories": len(trajs),
        "env_steps": stats.env_steps,
        "env_steps_total": counters.env_steps,
        "generated_tokens": stats.generated_tokens,
        "generated_tokens_total": counters.generated_tokens,
        "policy_calls": stats.policy_calls,
        "per_task": budget,
        "step_samples": len(result.samples),
        "sibling_groups": sibling_groups,
        "time": {
            "generate": stats.time_generate, "env": stats.time_env, "score": stats.time_score,
            "update": updates.time, "iteration": wall,
        },
        "unique_states": summary["unique_states"],
        "mean_state_score": summary["mean_score"],
        "high_score_share": summary["high_score_share"],
        "truncated_state_share": summary["truncated_share"],
        "n_hist": {str(k): v for k, v in sorted(stats.n_hist.items())},
        "truncations": stats.truncations,
        "truncation_retries": stats.retries,
        "truncation_retries_won": stats.retries_won,
        "valid_action_ratio": stats.valid_actions / stats.decisions if stats.decisions else 1.0,
        "loss": loss,
        **no_signal,
    }


def _rollout_and_update(
    cfg: TrainConfig, envs: list, tasks: list[str], policy, optimizer, store: StateStore, rng: np.random.Generator,
) -> tuple[RolloutResult, _UpdateLog]:
    """One iteration's rollout, rewards, advantages and update(s)."""
    algo, updates = cfg.algo, _UpdateLog()

    def update(samples: list[StepSample], outcomes=None) -> None:
        assign_advantages(samples, algo, outcomes)
        rows = loss_rows(samples, algo, outcomes)  # without rows ppo_update makes no step
        updates.dropped_rows += len(samples) - len(rows)
        t0 = time.perf_counter()
        updates.diags.append(ppo_update(policy, optimizer, rows, cfg.optim))
        updates.time += time.perf_counter() - t0

    if algo.name == "3spo":
        search = TreeSearch(
            envs, tasks, policy, store.snapshot(), TreeSettings(
                max_trajectories=algo.max_trajectories, max_env_steps=algo.max_env_steps,
                adaptive_rollouts=algo.adaptive_rollouts, backtracking=algo.backtracking,
                forced_exploration=algo.forced_exploration, truncation=algo.truncation,
                truncation_retry=algo.truncation_retry, use_novelty=algo.use_novelty, novelty=algo.novelty,
                use_score_diff=algo.use_score_diff, fixed_omega=algo.fixed_omega, invalid_penalty=algo.invalid_penalty,
                truncated_as_unresolved=algo.truncated_as_unresolved,
            ), rng, temperature=cfg.policy.temperature, scope=algo.state_scope, history_length=cfg.env.history_length,
        )
        for round_samples in search.rounds():
            if algo.schedule == "per_round":
                update(round_samples)
        result = search.result
        assert result is not None
        if algo.schedule == "per_iteration":
            update(result.samples, search.outcomes)
    else:
        result = group_rollout(
            envs, tasks, policy, group_size=algo.group_size, temperature=cfg.policy.temperature,
            scope=algo.state_scope, history_length=cfg.env.history_length,
        )
        update(result.samples)
    return result, updates


def train(cfg: TrainConfig, resume: bool = False, run_dir: str | Path | None = None, env: TextEnv | None = None) -> Path:
    """Train according to ``cfg``; return the run directory (metrics, checkpoints, config).

    Args:
      cfg: the configuration.
      resume: continue from the newest checkpoint in the run directory (exactly: same metrics as a straight run).
      run_dir: the run directory (default ``cfg.log.output_dir / cfg.run_name``).
      env: an environment to train in instead of building ``cfg.env`` (custom environments, tests); the task
        lists still come from ``cfg.env.train_split`` / ``cfg.env.eval_split``.
    """
    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.log.output_dir) / cfg.run_name
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if resume and checkpoint is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
    if not resume and (run_dir / "metrics.jsonl").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose log.run_name")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))

    _seed_everything(cfg.seed)
    env = env if env is not None else build_env(cfg.env, cfg.seed)
    train_tasks = task_list(env, cfg.env, cfg.env.train_split, cfg.seed)
    eval_tasks = task_list(env, cfg.env, cfg.env.eval_split, cfg.seed)
    corpus = env_corpus(env, train_tasks) if cfg.policy.kind == "hf" else ()
    policy = build_policy(cfg.policy, cfg.seed, corpus)
    optimizer = build_optimizer(policy, cfg.optim)
    store = StateStore(cfg.algo.score_params())
    sampler = TaskSampler(train_tasks, cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    counters = Counters()
    env_label = {"env": cfg.env.name, **({"catalogue": env.catalogue} if hasattr(env, "catalogue") else {})}
    logger = MetricsLogger(run_dir, cfg.log.tensorboard, cfg.log.wandb, to_dict(cfg))

    start, warm_losses = 0, None
    if checkpoint is not None:
        ckpt, store = load_checkpoint(checkpoint, policy, optimizer)
        torch.set_rng_state(ckpt.rng["torch"])
        start = ckpt.trainer["iteration"]
        counters = Counters(**ckpt.trainer["counters"])
        sampler.set_state(ckpt.trainer["sampler"])
        rng.bit_generator.state = ckpt.trainer["rng"]
        logger.truncate(start)
    elif cfg.warm_start.epochs > 0:
        from spo3.training.warm_start import warm_start

        warm_losses = warm_start(policy, env, train_tasks, cfg)

    def evaluation(iteration: int) -> dict[str, Any]:
        return evaluate(
            policy, env, eval_tasks, cfg.eval.episodes, temperature=cfg.eval.temperature,
            seed=cfg.seed + 10_000 + iteration, scope=cfg.algo.state_scope, history_length=cfg.env.history_length,
        ).to_dict()

    if start == 0 and cfg.eval.every:  # the starting point of every learning curve
        logger.write({
            "iteration": 0, "algorithm": cfg.algo.name, "seed": cfg.seed, **env_label,
            "env_steps_total": 0, "generated_tokens_total": 0, "eval": evaluation(0),
            **({"warm_start_loss": warm_losses} if warm_losses else {}),
        })

    progress = None
    if cfg.log.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=cfg.iterations, initial=start, desc=cfg.run_name, unit="it")
    for iteration in range(start + 1, cfg.iterations + 1):
        t_start = time.perf_counter()
        tasks = sampler.next(cfg.tasks_per_iteration)

        # rollout -> rewards -> advantages -> update (3SPO scores against a frozen store snapshot)
        result, updates = _rollout_and_update(cfg, [env] * len(tasks), tasks, policy, optimizer, store, rng)

        # statistics: fold the iteration's finished trajectories into the store
        truncated_before = store.all_scores() == 0
        for traj in result.trajectories:
            store.record_trajectory(traj.keys, traj.won, traj.anchors)
        recovered = int(np.count_nonzero(truncated_before & (store.all_scores()[: truncated_before.size] > 0)))

        counters.env_steps += result.stats.env_steps
        counters.generated_tokens += result.stats.generated_tokens
        counters.trajectories += len(result.trajectories)
        counters.optimizer_steps += sum(d.get("optimizer_steps", 0) for d in updates.diags)
        wall = time.perf_counter() - t_start
        counters.wall_time += wall
        record = _iteration_metrics(cfg, iteration, result, store, updates, counters, wall, env_label)
        record["recovered_states"] = recovered  # truncated before this iteration, untruncated after it
        if record.get("no_sibling_group"):
            log.warning("iteration %d: 3SPO produced no sibling group (every expansion had n <= 1): no learning signal", iteration)
        if (cfg.eval.every and iteration % cfg.eval.every == 0) or iteration == cfg.iterations:
            record["eval"] = evaluation(iteration)
        logger.write(record)
        if iteration % cfg.log.checkpoint_every == 0 or iteration == cfg.iterations:
            save_checkpoint(
                run_dir, iteration, policy, optimizer, store,
                {
                    "counters": counters.__dict__, "sampler": sampler.state(), "rng": rng.bit_generator.state,
                },
                keep=cfg.log.keep_checkpoints,
            )
        if progress is not None:
            progress.update(1)
            progress.set_postfix(success=f"{record['success_rate']:.2f}", states=record["unique_states"])
    if progress is not None:
        progress.close()
    logger.close()
    (run_dir / "summary.json").write_text(json.dumps({"iterations": cfg.iterations, "counters": counters.__dict__}, indent=1))
    return run_dir
