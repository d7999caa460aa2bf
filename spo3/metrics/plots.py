"""Plotting helpers shared by the notebooks, the quickstart and ``paper_figures/``."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from spo3.metrics.records import common_budget, curves_on_grid
from spo3.metrics.stats import mean_ci_over_seeds

__all__ = ["plot_learning_curves"]


def plot_learning_curves(
    groups: Mapping[str, Sequence[str | Path]],
    x: str = "env_steps_total",
    y: str = "eval/success_rate",
    ax=None,
    xlabel: str = "environment steps",
    ylabel: str = "success rate (evaluation)",
):
    """One line per method: the mean over seeds with a 95% Student-t band, each up to the budget all of its seeds
    reached; a dashed line marks the budget every method reached (compare the methods left of it)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for label, dirs in groups.items():
        grid, curves = curves_on_grid(dirs, x, y, points=100)
        mean, lo, hi = mean_ci_over_seeds(curves)
        ax.plot(grid, mean, label=f"{label} (n={len(dirs)} seeds)")
        ax.fill_between(grid, np.clip(lo, 0, 1), np.clip(hi, 0, 1), alpha=0.2)
    if len(groups) > 1:
        ax.axvline(common_budget(groups, x, y), color="grey", linestyle="--", linewidth=1, label="equal-budget limit")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
