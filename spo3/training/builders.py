"""Build environments, task lists and policies from configuration (the only place configs meet constructors)."""

from __future__ import annotations

import random
from typing import Callable, Sequence

from spo3.config import EnvConfig, PolicyConfig, TrainConfig
from spo3.envs.base import TextEnv
from spo3.envs.workers import EnvWorkerPool
from spo3.policies.base import Policy

__all__ = ["build_env", "build_policy", "env_corpus", "eval_episodes", "eval_splits", "eval_tasks", "open_env_workers", "stratified_subset", "task_list"]


def build_env(cfg: EnvConfig, seed: int = 0) -> TextEnv:
    """A fresh environment instance for ``cfg.name``."""
    if cfg.name == "textworld":
        from spo3.envs.textworld_games import TextWorldGamesEnv

        tw = cfg.textworld
        return TextWorldGamesEnv(
            challenge=tw.challenge, level=tw.levels or tw.level, train_seeds=tw.train_seeds, valid_seeds=tw.valid_seeds,
            test_seeds=tw.test_seeds, options=tw.options, cache_dir=tw.cache_dir, max_steps=cfg.max_steps,
            reward_scale=cfg.reward_scale,
        )
    if cfg.name == "alfworld":
        from spo3.envs.alfworld import AlfworldEnv

        return AlfworldEnv(data_dir=cfg.alfworld.data_dir, max_steps=cfg.max_steps, reward_scale=cfg.reward_scale)
    if cfg.name == "webshop":
        from spo3.envs.webshop import WebShopEnv

        return WebShopEnv(
            data_dir=cfg.webshop.data_dir, num_products=cfg.webshop.num_products, seed=seed,
            max_steps=cfg.max_steps, reward_scale=cfg.reward_scale, search_action=cfg.webshop.search_action,
        )
    raise ValueError(f"env.name: unknown environment {cfg.name!r}")


def open_env_workers(cfg: EnvConfig, env: TextEnv) -> EnvWorkerPool | None:
    """``cfg.workers`` worker processes, each holding a forked copy of ``env`` (as restarted workers do), or
    ``None`` for ``workers: 0``."""
    return EnvWorkerPool(lambda: env, cfg.workers) if cfg.workers > 0 else None


def task_list(env: TextEnv, cfg: EnvConfig, split: str, seed: int = 0) -> list[str]:
    """The tasks of ``split`` after the config's filters (ALFWorld task types; a seeded subset for panels)."""
    tasks = env.tasks(split)
    max_tasks = 0
    if cfg.name == "alfworld":
        if cfg.alfworld.task_types:
            unknown = set(cfg.alfworld.task_types) - {env.task_type(t) for t in tasks}
            if unknown:
                raise ValueError(f"env.alfworld.task_types: no tasks of type {sorted(unknown)} in split {split!r}")
            tasks = [t for t in tasks if env.task_type(t) in cfg.alfworld.task_types]
        max_tasks = cfg.alfworld.max_tasks
    elif cfg.name == "webshop":
        max_tasks = cfg.webshop.max_tasks
    elif cfg.name == "textworld" and split == cfg.train_split:
        max_tasks = cfg.textworld.max_tasks
    if max_tasks:
        tasks = sorted(random.Random(seed).sample(tasks, min(max_tasks, len(tasks))))
    if not tasks:
        raise ValueError(f"env: split {split!r} of {cfg.name} has no tasks")
    return tasks


def stratified_subset(tasks: Sequence[str], task_type: Callable[[str], str], k: int, seed: int) -> list[str]:
    """``k`` tasks of every task type of ``tasks`` (all of a type's tasks if it has fewer), drawn with ``seed``
    independently of the order of ``tasks``; sorted by type, then task."""
    by_type: dict[str, list[str]] = {}
    for task in sorted(tasks):
        by_type.setdefault(task_type(task), []).append(task)
    rng = random.Random(seed)
    return [task for kind in sorted(by_type) for task in sorted(rng.sample(by_type[kind], min(k, len(by_type[kind]))))]


def eval_splits(cfg: TrainConfig) -> tuple[str, ...]:
    """The splits an evaluation covers: ``eval.splits``, or ``env.eval_split``."""
    return cfg.eval.splits or (cfg.env.eval_split,)


def eval_tasks(env: TextEnv, cfg: TrainConfig, split: str) -> list[str]:
    """The tasks evaluated on ``split``: the split's tasks after the config's filters, or with ``eval.per_type`` a
    stratified subset of them (:func:`stratified_subset` with ``eval.subset_seed``)."""
    tasks = task_list(env, cfg.env, split, cfg.seed)
    return stratified_subset(tasks, env.task_type, cfg.eval.per_type, cfg.eval.subset_seed) if cfg.eval.per_type else tasks


def eval_episodes(cfg: TrainConfig, tasks: Sequence[str]) -> int:
    """Episodes of one split's evaluation: one per task of a stratified subset, else ``eval.episodes``."""
    return len(tasks) if cfg.eval.per_type else cfg.eval.episodes


def env_corpus(env: TextEnv, tasks: Sequence[str], limit: int = 16) -> list[str]:
    """Texts an environment produces (reset observations, admissible actions, walkthrough steps), used to train
    the tokenizer of a tiny language model so that its vocabulary fits the environment."""
    texts: list[str] = []
    for task in list(tasks)[:limit]:
        obs = env.reset(task)
        texts += [obs.text, obs.task, *obs.admissible_actions]
        for action in env.walkthrough(task) or []:
            tr = env.step(action)
            texts += [action, tr.observation.text, *tr.observation.admissible_actions]
            if tr.done:
                break
    return texts


def build_policy(cfg: PolicyConfig, seed: int, corpus: Sequence[str] = ()) -> Policy:
    """The policy of ``cfg.kind``; ``corpus`` trains the tokenizer of ``model: tiny``."""
    if cfg.kind == "tabular":
        from spo3.policies.tabular import TabularPolicy

        return TabularPolicy(seed=seed, capacity=cfg.tabular_capacity)
    if cfg.kind == "linear":
        from spo3.policies.linear import LinearPolicy

        return LinearPolicy(seed=seed, dim=cfg.linear_dim)
    from spo3.policies.hf import build_hf_policy

    return build_hf_policy(cfg, seed=seed, corpus=corpus)
