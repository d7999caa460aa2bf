"""GRPO, GiGPO and 3SPO on ALFWorld and WebShop under one named profile, evaluated per split and task type.

    runs = run_methods("alfworld", "small", "runs/nb-alfworld", data_dir=...)     # {method: [run dirs]}
    rows = evaluate_methods(runs, "alfworld", "small", data_dir=...)              # one row per run, split, task type

Profiles (the notebooks' ``PROFILE``):

* ``small``: CPU, minutes; a tabular policy on a small panel. A **smoke run**: it shows the pipeline works, its
  numbers are not evidence about the methods.
* ``full``: CPU, the settings of the repository's CPU figures (more iterations and seeds, same tabular panels).
* ``gpu``: the paper's configs (``configs/paper/*_qwen2.5-1.5b.yaml``): Qwen2.5-1.5B-Instruct, full settings.
* ``gpu-smoke``: the paper's configs cut to 2 iterations of 2 tasks with short episodes, to check a GPU set-up
  end to end (aimed at under 10 minutes on one GPU; not measured here, as this project has no GPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from spo3.experiments.compare import Variant, run_variants
from spo3.metrics.tables import Column, text_table
from spo3.training.evaluate import evaluate_run

__all__ = ["METHODS", "PROFILES", "EnvProfile", "evaluate_methods", "format_evaluation", "run_methods"]

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

METHODS = (Variant("3SPO", "3spo"), Variant("GRPO", "grpo"), Variant("GiGPO", "gigpo"))
"""The three methods, each with the base config's settings (3SPO with the paper's alpha = 50)."""

# GPU smoke: the paper's model and update, two iterations of two short tasks.
_GPU_SMOKE = (
    "tasks_per_iteration=2", "env.max_steps=8", "algo.group_size=2", "algo.g_max=2", "algo.max_trajectories=2",
    "algo.max_env_steps=16", "policy.max_new_tokens=256", "eval.every=0", "eval.episodes=4", "log.expansions=true",
    "optim.mini_batch_size=32", "optim.micro_batch_size=8",
)


@dataclass(frozen=True)
class EnvProfile:
    """How one environment is trained and evaluated under one profile."""

    config: Path
    """Base YAML config."""
    seeds: tuple[int, ...]
    iterations: int
    overrides: tuple[str, ...] = ()
    """Config overrides for training (and evaluation)."""
    eval_splits: tuple[str, ...] = ()
    """Splits every run is evaluated on after training (ALFWorld: valid_unseen, valid_seen)."""
    eval_episodes: int | None = None
    """Episodes per split evaluation (None: one per task of the split after the config's task filters)."""
    smoke: bool = False
    """A smoke run: shows the pipeline works; its numbers are not evidence."""


PROFILES: dict[str, dict[str, EnvProfile]] = {
    "alfworld": {
        # the panel config trains on 4 valid_unseen games; valid_seen holds other games, which a tabular policy has
        # never seen (it cannot transfer), so expect ~0 there: the split is evaluated to exercise the pipeline.
        "small": EnvProfile(
            CONFIGS / "alfworld_panel_tabular.yaml", (0,), 2,
            ("env.alfworld.max_tasks=1", "tasks_per_iteration=1",
             "algo.group_size=2", "algo.g_max=2", "algo.max_trajectories=2", "algo.max_env_steps=30", "eval.every=0",
             "eval.episodes=2"),
            ("valid_unseen", "valid_seen"), eval_episodes=2, smoke=True,
        ),
        "full": EnvProfile(
            CONFIGS / "alfworld_panel_tabular.yaml", (0, 1, 2), 20, ("eval.episodes=16",), ("valid_unseen", "valid_seen"),
        ),
        "gpu": EnvProfile(CONFIGS / "paper" / "alfworld_qwen2.5-1.5b.yaml", (0,), 400, (), ("valid_unseen", "valid_seen")),
        "gpu-smoke": EnvProfile(
            CONFIGS / "paper" / "alfworld_qwen2.5-1.5b.yaml", (0,), 2, _GPU_SMOKE + ("env.alfworld.max_tasks=4",),
            ("valid_unseen", "valid_seen"), eval_episodes=4, smoke=True,
        ),
    },
    "webshop": {
        "small": EnvProfile(
            CONFIGS / "webshop_tabular.yaml", (0,), 3,
            ("env.webshop.max_tasks=4", "eval.every=0", "eval.episodes=8", "algo.group_size=4", "algo.max_trajectories=4",
             "algo.g_max=4"),
            ("train", "test"), eval_episodes=8, smoke=True,
        ),
        "full": EnvProfile(CONFIGS / "webshop_tabular.yaml", (0, 1, 2), 40, ("eval.episodes=32",), ("train", "test")),
        "gpu": EnvProfile(CONFIGS / "paper" / "webshop_qwen2.5-1.5b.yaml", (0,), 150, (), ("test",)),
        "gpu-smoke": EnvProfile(
            CONFIGS / "paper" / "webshop_qwen2.5-1.5b.yaml", (0,), 2, _GPU_SMOKE + ("env.webshop.max_tasks=4",),
            ("test",), eval_episodes=4, smoke=True,
        ),
    },
}


def _profile(env: str, profile: str) -> EnvProfile:
    try:
        return PROFILES[env][profile]
    except KeyError:
        raise ValueError(f"unknown env/profile {env}/{profile}; choose from "
                         f"{ {e: sorted(p) for e, p in PROFILES.items()} }") from None


def _data_overrides(env: str, data_dir: str | Path | None) -> tuple[str, ...]:
    return () if data_dir is None else (f"env.{env}.data_dir={data_dir}",)


def run_methods(
    env: str,
    profile: str,
    output_dir: str | Path,
    data_dir: str | Path | None = None,
    methods: Sequence[Variant] = METHODS,
    extra: Sequence[str] = (),
) -> dict[str, list[Path]]:
    """Train every method for every seed of ``PROFILES[env][profile]`` (finished runs are reused).

    Args:
      env: ``"alfworld"`` or ``"webshop"``.
      profile: ``"small"``, ``"full"``, ``"gpu"`` or ``"gpu-smoke"``.
      output_dir: parent of the run directories.
      data_dir: the environment's data directory (``env.<env>.data_dir``); None: the config's default.
      methods: the variants to train.
      extra: further config overrides (e.g. ``policy.device=cuda:1``).

    Returns:
      ``{method label: [run directories, one per seed]}``.
    """
    spec = _profile(env, profile)
    overrides = spec.overrides + _data_overrides(env, data_dir) + tuple(extra)
    return run_variants(spec.config, methods, spec.seeds, spec.iterations, output_dir, overrides)


def evaluate_methods(
    runs: Mapping[str, Sequence[Path]], env: str, profile: str, data_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every run's final checkpoint on the profile's splits.

    Returns one row per (method, seed, split, task type), with task type ``"all"`` for the whole split:
    ``method``, ``run``, ``split``, ``task_type``, ``episodes``, ``successes``, ``success_rate``, ``ci_low``,
    ``ci_high`` (95% Wilson interval over episodes) and, for WebShop, ``catalogue`` and ``mean_score``.
    """
    spec = _profile(env, profile)
    rows = []
    for method, dirs in runs.items():
        for run in dirs:
            for split in spec.eval_splits:
                r = evaluate_run(run, split, spec.eval_episodes, overrides=_data_overrides(env, data_dir))
                common = {"method": method, "run": Path(run).name, "split": split,
                          **({"catalogue": r["catalogue"], "mean_score": r["mean_score"]} if "catalogue" in r else {})}
                rows.append({**common, "task_type": "all", **{k: r[k] for k in
                             ("episodes", "successes", "success_rate", "ci_low", "ci_high")}})
                rows += [{**common, "task_type": t, **row} for t, row in sorted(r["per_type"].items())]
    return rows


def format_evaluation(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of :func:`evaluate_methods` as aligned text."""
    return text_table(rows, (
        Column("method", lambda r: r["method"], 8),
        Column("run", lambda r: r["run"], 16),
        Column("split", lambda r: r["split"], 13),
        Column("task type", lambda r: r["task_type"], 34),
        Column("success", lambda r: f"{r['success_rate']:.2f}", 7, right=True),
        Column("95% CI", lambda r: f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]", 12),
        Column("episodes", lambda r: f"{r['successes']}/{r['episodes']}"),
    ))
