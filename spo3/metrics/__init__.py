"""Recording runs and comparing them honestly: metrics files, interval statistics, learning-curve plots."""

from spo3.metrics.plots import plot_learning_curves
from spo3.metrics.records import MetricsLogger, common_budget, curves_on_grid, flatten, read_metrics, series
from spo3.metrics.stats import (
    bootstrap_ci,
    first_crossing,
    iqm,
    mean_ci_over_seeds,
    probability_of_improvement,
    probability_of_improvement_ci,
    ratio_ci,
    stratified_bootstrap_ci,
    wilson_interval,
)

__all__ = [
    "MetricsLogger",
    "bootstrap_ci",
    "common_budget",
    "curves_on_grid",
    "first_crossing",
    "flatten",
    "iqm",
    "mean_ci_over_seeds",
    "plot_learning_curves",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "ratio_ci",
    "read_metrics",
    "series",
    "stratified_bootstrap_ci",
    "wilson_interval",
]
