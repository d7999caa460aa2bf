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
    """One line per method: the mean over seeds with a 95% Student-t band, up to the budget its longest seed
    reached. Beyond the budget its shortest seed reached the line is dotted (finished seeds hold their final value),
    so the last point is the mean final value a summary reports. A grey dashed line marks the budget every method
    reached (compare the methods left of it). ``groups`` maps labels to run directories or record lists."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for label, runs in groups.items():
        grid, curves = curves_on_grid(runs, x, y, points=100, hold_final=True)
        mean, lo, hi = mean_ci_over_seeds(curves)
        all_seeds = grid <= common_budget({label: runs}, x, y)
        (line,) = ax.plot(grid[all_seeds], mean[all_seeds], label=f"{label} (n={len(runs)} seeds)")
        ax.plot(grid[~all_seeds], mean[~all_seeds], linestyle=":", color=line.get_color())
        ax.fill_between(grid, np.clip(lo, 0, 1), np.clip(hi, 0, 1), alpha=0.2, color=line.get_color())
    if len(groups) > 1:
        ax.axvline(common_budget(groups, x, y), color="grey", linestyle="--", linewidth=1, label="equal-budget limit")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
