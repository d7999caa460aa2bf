"""The training loop: rollout -> statistics -> rewards -> advantages -> update, once per iteration.

    from spo3.config import load_config
    from spo3.training.loop import train
    run_dir = train(load_config("configs/textworld_tabular.yaml", ["algo.name=grpo"]))

GRPO and GiGPO roll out ``group_size`` episodes per task and update once per iteration. 3SPO runs the ranked
backtracking tree search against a frozen snapshot of the state store, updating after every expansion round
(``per_round``) or once per iteration; its finished trajectories are folded into the store only after the
iteration. Every method folds its trajectories into a store, so state statistics are comparable across methods.

Each task samples from its own random streams, derived from (seed, iteration, task index), so the same run can be
spread over several processes (torchrun, accelerate; :mod:`spo3.training.distributed`): each plays its share of the
tasks, rank 0 keeps the store, logs and checkpoints, and gradients are averaged over the processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml

from spo3.envs.workers import batch_envs
from spo3.training.builders import (
    build_env, build_policy, env_corpus, eval_episodes, eval_splits, eval_tasks, open_env_workers, task_list,
)
from spo3.training.checkpoint import checkpoints, load_checkpoint, save_checkpoint
from spo3.training.run_dir import ResumePoint, RunLock, fingerprint, log_config_changes, remove_leftovers, resume_point
from spo3.config import ConfigError, TrainConfig
from spo3.config.loading import to_dict
from spo3.training.credit import assign_advantages, loss_rows
from spo3.envs.base import TextEnv
from spo3.envs.guard import GuardedEnv
from spo3.training.evaluate import evaluate, mean_task_score
from spo3.metrics import MetricsLogger
from spo3.rollout.common import RolloutResult, StepSample, TaskStream
from spo3.rollout.group import group_rollout
from spo3.rollout.tree import TreeSearch, TreeSettings
from spo3.state.store import StateStore, StoreSnapshot
from spo3.training.distributed import Distributed, align_policy, gather_result, init_distributed, prepare_policy
from spo3.training.update import build_optimizer, ppo_update

__all__ = ["EXPANSIONS_FILE", "TaskSampler", "train"]

log = logging.getLogger(__name__)


class TaskSampler:
    """Cycles through a task list in seeded shuffled passes (every task once per pass), resumable exactly.

    A draw that holds a task more than once (it spans two passes, or asks for more tasks than there are) lists
    the copies side by side, in order of first appearance: the same tasks, ordered so that an environment running
    one game at a time (ALFWorld's shared engine) switches games less often during the iteration.
    """

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
        first = {task: i for i, task in reversed(list(enumerate(out)))}
        return sorted(out, key=first.__getitem__)

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
    env_failures: int = 0
    wall_time: float = 0.0
    """Seconds in training iterations (rollout, statistics, update), evaluations excluded."""
    eval_time: float = 0.0
    """Seconds in evaluations (``eval.every`` sets how many)."""
    evaluations: int = 0


@dataclass
class _UpdateLog:
    diags: list[dict[str, float]] = field(default_factory=list)
    time: float = 0.0
    dropped_rows: int = 0
    """Step samples left out of the loss (3SPO singleton sibling groups)."""


EXPANSIONS_FILE = "expansions.jsonl"
"""3SPO's expansion trace (log.expansions): one JSON line per expansion (see :meth:`TreeSearch._trace`), with its
iteration."""


def _truncate_expansions(path: Path, after_iteration: int) -> None:
    """Drop the trace of iterations after the checkpoint a run resumes from (they run again)."""
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                if json.loads(line)["iteration"] <= after_iteration:
                    kept.append(line)
            except ValueError:  # cut off by a crash: its iteration runs again
                pass
        path.write_text("".join(kept), encoding="utf-8")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _sample_counts(cfg: TrainConfig, samples: list[StepSample]) -> tuple[int, int]:
    """Step samples, and sibling groups (3SPO expansions with more than one child)."""
    n_sibling = Counter(s.step_group for s in samples)
    return len(samples), sum(1 for c in n_sibling.values() if c > 1) if cfg.algo.name == "3spo" else 0


def _iteration_metrics(
    cfg: TrainConfig, iteration: int, result: RolloutResult, sample_counts: tuple[int, int], store: StateStore,
    updates: _UpdateLog, counters: Counters, wall: float, env_label: dict[str, Any],
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
    budget = {
        "finished_max": max(stats.task_finished, default=0),
        "finished_mean": float(np.mean(stats.task_finished)) if stats.task_finished else 0.0,
        "steps_max": max(stats.task_steps, default=0),
        "steps_mean": float(np.mean(stats.task_steps)) if stats.task_steps else 0.0,
    }
    if cfg.algo.name == "3spo":  # tasks whose search stopped because a budget was spent
        budget["trajectory_budget_hits"] = sum(f >= cfg.algo.max_trajectories for f in stats.task_finished)
        budget["step_budget_hits"] = sum(n >= cfg.algo.max_env_steps for n in stats.task_steps)
    sibling_groups = sample_counts[1]
    no_signal = {"no_sibling_group": int(sibling_groups == 0)} if cfg.algo.name == "3spo" else {}
    return {
        "iteration": iteration,
        "algorithm": cfg.algo.name,
        "seed": cfg.seed,
        **env_label,
        "success_rate": float(np.mean([t.won for t in trajs])) if trajs else 0.0,
        "success_by_type": {k: float(np.mean(v)) for k, v in sorted(by_type.items())},
        **({"task_score": score} if (score := mean_task_score(trajs)) is not None else {}),
        "episode_length": float(np.mean([t.length for t in trajs])) if trajs else 0.0,
        "finished_trajectories": len(trajs),
        "env_steps": stats.env_steps,
        "env_steps_total": counters.env_steps,
        "generated_tokens": stats.generated_tokens,
        "generated_tokens_total": counters.generated_tokens,
        "policy_calls": stats.policy_calls,
        "per_task": budget,
        "step_samples": sample_counts[0],
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
        "unseen_allocations": stats.unseen_allocations,
        "truncations": stats.truncations,
        "env_failures": stats.env_failures,
        "env_failures_total": counters.env_failures,
        "truncation_retries": stats.retries,
        "truncation_retries_won": stats.retries_won,
        "valid_action_ratio": stats.valid_actions / stats.decisions if stats.decisions else 1.0,
        "loss": loss,
        **no_signal,
    }


def _rollout_and_update(
    cfg: TrainConfig, envs: list, tasks: list[str], policy, optimizer, snapshot: StoreSnapshot | StateStore,
    streams: list[TaskStream], dist: Distributed | None = None, task_offset: int = 0,
) -> tuple[RolloutResult, _UpdateLog]:
    """One iteration's rollout, rewards, advantages and update(s) of this process's share of the tasks (the
    ``task_offset``-th task of the global batch onwards), each task sampling from its own ``streams`` entry."""
    algo, updates, dist = cfg.algo, _UpdateLog(), dist or Distributed()

    def update(samples: list[StepSample], outcomes=None) -> None:
        assign_advantages(samples, algo, outcomes)  # groups never span tasks: each process does its own
        rows = loss_rows(samples, algo, outcomes)  # without rows ppo_update makes no step
        t0 = time.perf_counter()
        updates.dropped_rows += int(dist.sum_over_ranks({"dropped": len(samples) - len(rows)})["dropped"])
        align_policy(dist, policy)
        batch = dist.gather_samples(rows, task_offset)  # every process's rows, in the one-process order
        updates.diags.append(ppo_update(policy, optimizer, batch, cfg.optim, dist))
        updates.time += time.perf_counter() - t0

    if algo.name == "3spo":
        search = TreeSearch(
            envs, tasks, policy, snapshot, TreeSettings(
                max_trajectories=algo.max_trajectories, max_env_steps=algo.max_env_steps,
                adaptive_rollouts=algo.adaptive_rollouts, backtracking=algo.backtracking,
                forced_exploration=algo.forced_exploration, truncation=algo.truncation,
                truncation_retry=algo.truncation_retry, use_novelty=algo.use_novelty, novelty=algo.novelty,
                use_score_diff=algo.use_score_diff, fixed_omega=algo.fixed_omega, invalid_penalty=algo.invalid_penalty,
                truncated_as_unresolved=algo.truncated_as_unresolved, trace=cfg.log.expansions,
            ), None, temperature=cfg.policy.temperature, scope=algo.state_scope, history_length=cfg.env.history_length,
            streams=streams,
        )
        for round_samples in dist.lockstep(search.rounds(), policy):
            if algo.schedule == "per_round":
                update(round_samples)
        result = search.result
        assert result is not None
        if algo.schedule == "per_iteration":
            update(result.samples, search.outcomes)
    else:
        with dist.unsharded(policy):
            result = group_rollout(
                envs, tasks, policy, group_size=algo.group_size, temperature=cfg.policy.temperature,
                scope=algo.state_scope, history_length=cfg.env.history_length, streams=streams,
            )
        update(result.samples)
    return result, updates


def train(
    cfg: TrainConfig,
    resume: bool | str = False,
    run_dir: str | Path | None = None,
    env: TextEnv | None = None,
    allow_config_change: Sequence[str] = (),
) -> Path:
    """Train according to ``cfg``; return the run directory (metrics, checkpoints, config).

    Args:
      cfg: the configuration.
      resume: continue the run in the run directory (exactly: same metrics as a straight run). ``True`` or
        ``"auto"``: from the newest intact checkpoint, or from the beginning if there is none; a checkpoint name
        (``"iter_000010"``): from that one. See :mod:`spo3.training.run_dir`.
      run_dir: the run directory (default ``cfg.log.output_dir / cfg.run_name``).
      env: an environment to train in instead of building ``cfg.env`` (custom environments, tests); the task
        lists still come from ``cfg.env.train_split`` / ``cfg.env.eval_split``.
      allow_config_change: fingerprint fields (``algo.alpha``...) that may differ from the checkpoint's.

    Launched with several processes (torchrun, accelerate) every process calls this; rank 0 holds the run
    directory's lock and writes into it. See :mod:`spo3.training.distributed`.

    Raises:
      RunLockedError: another process is training in the run directory.
      ResumeError: the checkpoint belongs to another run, or none is intact.
      FileExistsError: the directory already holds a run and ``resume`` is off.
    """
    run_dir = Path(run_dir) if run_dir is not None else Path(cfg.log.output_dir) / cfg.run_name
    if not resume and ((run_dir / "metrics.jsonl").exists() or checkpoints(run_dir)):
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose log.run_name")
    dist, local_cfg = init_distributed(cfg)
    try:
        with RunLock(run_dir) if dist.is_main else contextlib.nullcontext():
            if dist.is_main:
                remove_leftovers(run_dir)
            dist.barrier()  # every process has checked the run directory before rank 0 writes into it
            return _train(cfg, local_cfg, dist, "auto" if resume is True else resume or None, run_dir, env, allow_config_change)
    finally:
        dist.close()


def _train(
    cfg: TrainConfig, local_cfg: TrainConfig, dist: Distributed, resume: str | None, run_dir: Path,
    env: TextEnv | None, allow_config_change: Sequence[str],
) -> Path:
    """The run itself: ``cfg`` is the run's configuration, ``local_cfg`` this process's share of it."""
    run_cfg, cfg = cfg, local_cfg
    _seed_everything(cfg.seed)
    engine = env if env is not None else build_env(cfg.env, cfg.seed)
    env_label = {"env": cfg.env.name, **({"catalogue": engine.catalogue} if hasattr(engine, "catalogue") else {})}
    # Every engine call of training and evaluation goes through the guard (sanitised commands, bounded calls).
    env = GuardedEnv(
        (lambda: engine) if env is not None else (lambda: build_env(cfg.env, cfg.seed)), cfg.env.step_timeout_s,
    )
    train_tasks = task_list(env, cfg.env, cfg.env.train_split, cfg.seed)
    evaluated = {split: eval_tasks(env, cfg, split) for split in eval_splits(cfg)}
    run_fingerprint = fingerprint(run_cfg, train_tasks)
    point = ResumePoint(None)
    if resume:  # rank 0 first: it sets damaged checkpoints aside, the others then find the same intact one
        if dist.is_main:
            point = resume_point(run_dir, run_fingerprint, resume, allow_config_change)
        dist.barrier()
        if not dist.is_main:
            point = resume_point(run_dir, run_fingerprint, resume, allow_config_change)
    corpus = env_corpus(env, train_tasks) if cfg.policy.kind == "hf" else ()
    pool = open_env_workers(cfg.env, env)  # forked before the policy exists: the workers stay small
    policy = build_policy(cfg.policy, cfg.seed, corpus)
    store = StateStore(cfg.algo.score_params())
    sampler = TaskSampler(train_tasks, cfg.seed)
    counters = Counters()

    start, warm_losses, ckpt = 0, None, None
    if point.checkpoint is not None:
        # Into the whole model, before FSDP shards it (checkpoints hold whole weights, as one process writes them).
        # The configuration's score parameters: equal to the checkpoint's unless a change was allowed.
        ckpt, store = load_checkpoint(point.checkpoint, policy, None, cfg.algo.score_params())
        written_by = ckpt.trainer.get("world_size", 1)
        if written_by != dist.world:
            raise ConfigError(
                f"--resume: {point.checkpoint} was written by {written_by} training process(es), this run has "
                f"{dist.world}; relaunch with the same number (e.g. torchrun --nproc_per_node={written_by} -m spo3.cli train ...)"
            )
    elif cfg.warm_start.epochs > 0:  # also on the whole model: every process trains alike (FSDP would need collectives)
        from spo3.training.warm_start import warm_start

        warm_losses = warm_start(policy, env, train_tasks, cfg)
    prepare_policy(dist, policy)
    optimizer = build_optimizer(policy, cfg.optim)
    if ckpt is not None:
        dist.load_optimizer(policy, optimizer, ckpt.optimizer_state())  # FSDP: each rank keeps its shard
        torch.set_rng_state(ckpt.rng["torch"])
        start = ckpt.trainer["iteration"]
        counters = Counters(**ckpt.trainer["counters"])
        sampler.set_state(ckpt.trainer["sampler"])
        if dist.is_main:
            log_config_changes(run_dir, point.checkpoint, point.changes)
            _truncate_expansions(run_dir / EXPANSIONS_FILE, start)
    logger = None
    if dist.is_main:
        logger = MetricsLogger(run_dir, cfg.log.tensorboard, cfg.log.wandb, to_dict(run_cfg))
        if resume:
            logger.truncate(start if point.checkpoint is not None else -1)
        # Only now, with the resume done: a failed resume leaves the run's config.yaml as it was.
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(run_cfg), sort_keys=False))

    def evaluation(iteration: int) -> tuple[dict[str, Any], float]:
        """The evaluation fields of a record (``eval``: the first split's report; with ``eval.splits`` also
        ``eval_splits``: every split's, by split) and their cost in seconds (also added to the counters)."""
        t0 = time.perf_counter()
        reports = {}
        with dist.unsharded(policy):  # FSDP: rank 0 evaluates on weights the other ranks lend it
            for split, tasks in evaluated.items():
                reports[split] = evaluate(
                    policy, env, tasks, eval_episodes(cfg, tasks), temperature=cfg.eval.temperature,
                    seed=cfg.seed + 10_000 + iteration, scope=cfg.algo.state_scope, history_length=cfg.env.history_length,
                    pool=pool,
                ).to_dict()
        seconds = time.perf_counter() - t0
        counters.eval_time += seconds
        counters.evaluations += 1
        fields = {"eval": next(iter(reports.values()))}
        if cfg.eval.splits:
            fields["eval_splits"] = reports
        return fields, seconds

    if start == 0 and cfg.eval.every and logger is None:
        dist.lend(policy, optimizer, evaluating=True, saving=False)
    if start == 0 and cfg.eval.every and logger is not None:  # the starting point of every learning curve
        reports, seconds = evaluation(0)
        logger.write({
            "iteration": 0, "algorithm": cfg.algo.name, "seed": cfg.seed, **env_label,
            "env_steps_total": 0, "generated_tokens_total": 0, **reports, "time": {"eval": seconds},
            **({"warm_start_loss": warm_losses} if warm_losses else {}),
        })

    progress = None
    if cfg.log.progress and dist.is_main:
        from tqdm.auto import tqdm

        progress = tqdm(total=cfg.iterations, initial=start, desc=cfg.run_name, unit="it")
    for iteration in range(start + 1, cfg.iterations + 1):
        t_start, cpu_start = time.perf_counter(), time.process_time()
        offset, tasks = dist.shard(sampler.next(cfg.tasks_per_iteration))  # this process's share of the batch
        streams = [TaskStream.derive(cfg.seed, iteration, offset + i) for i in range(len(tasks))]
        snapshot = dist.broadcast(store.snapshot() if dist.is_main else None)  # rank 0 owns the store

        # rollout -> rewards -> advantages -> update (3SPO scores against a frozen store snapshot)
        envs = batch_envs(env, tasks, pool)
        result, updates = _rollout_and_update(cfg, envs, tasks, policy, optimizer, snapshot, streams, dist, offset)
        if pool is not None:
            pool.release()

        # statistics: rank 0 folds every process's finished trajectories into the store, logs and checkpoints
        gathered = gather_result(dist, result, _sample_counts(cfg, result.samples))
        evaluating = bool(cfg.eval.every and iteration % cfg.eval.every == 0) or iteration == cfg.iterations
        saving = iteration % cfg.log.checkpoint_every == 0 or iteration == cfg.iterations
        if gathered is None or logger is None:
            dist.lend(policy, optimizer, evaluating, saving)
            continue
        result, sample_counts = gathered
        truncated_before = store.all_scores() == 0
        for traj in result.trajectories:
            if traj.keys:  # a task whose reset failed reached no state: it counts as lost, but not in the store
                store.record_trajectory(traj.keys, traj.won, traj.anchors)
        recovered = int(np.count_nonzero(truncated_before & (store.all_scores()[: truncated_before.size] > 0)))

        counters.env_steps += result.stats.env_steps
        counters.generated_tokens += result.stats.generated_tokens
        counters.trajectories += len(result.trajectories)
        counters.env_failures += result.stats.env_failures
        counters.optimizer_steps += sum(d.get("optimizer_steps", 0) for d in updates.diags)
        wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
        counters.wall_time += wall
        record = _iteration_metrics(cfg, iteration, result, sample_counts, store, updates, counters, wall, env_label)
        record["recovered_states"] = recovered  # truncated before this iteration, untruncated after it
        # CPU seconds, which other load on the machine distorts far less than wall time: the trainer's process, and
        # each environment worker's on resets and steps (how evenly the tasks were dealt).
        record["time"]["cpu"] = cpu
        if pool is not None:
            record["time"]["env_workers_cpu"] = list(pool.worker_cpu)
        if record.get("no_sibling_group"):
            log.warning("iteration %d: 3SPO produced no sibling group (every expansion had n <= 1): no learning signal", iteration)
        record["time"]["eval"] = 0.0
        if evaluating:
            reports, record["time"]["eval"] = evaluation(iteration)
            record.update(reports)
        logger.write(record)
        if cfg.log.expansions and result.expansions:
            with (run_dir / EXPANSIONS_FILE).open("a", encoding="utf-8") as f:
                f.writelines(json.dumps({"iteration": iteration, **e}) + "\n" for e in result.expansions)
        if saving:
            with dist.full_state(policy, optimizer):  # FSDP: the whole weights, gathered from every process
                save_checkpoint(
                    run_dir, iteration, policy, optimizer, store,
                    {"counters": counters.__dict__, "sampler": sampler.state(), "world_size": dist.world},
                    keep=cfg.log.keep_checkpoints, fingerprint=run_fingerprint,
                )
        if progress is not None:
            progress.update(1)
            # the rollouts' success (sampling at policy.temperature, searched by 3SPO), not the evaluation's
            progress.set_postfix({"train success": f"{record['success_rate']:.2f}", "states": record["unique_states"]})
    if progress is not None:
        progress.close()
    if pool is not None:
        pool.close()
    if logger is not None:
        logger.close()
        cost = {
            "every": cfg.eval.every, "evaluations": counters.evaluations,
            "episodes": sum(eval_episodes(cfg, tasks) for tasks in evaluated.values()),  # per evaluation
            "time": counters.eval_time, "share_of_time": counters.eval_time / max(counters.eval_time + counters.wall_time, 1e-9),
        }
        summary = {"iterations": cfg.iterations, "counters": counters.__dict__, "evaluation": cost}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        if progress is not None:  # the cadence is a choice with a price: say what it cost
            print(f"{cfg.run_name}: {counters.evaluations} evaluations (eval.every={cfg.eval.every}) took "
                  f"{counters.eval_time:.1f} s, {100 * cost['share_of_time']:.0f}% of training and evaluation time")
    return run_dir
