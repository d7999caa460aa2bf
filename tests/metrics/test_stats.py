"""Golden values of the rliable-style statistics (hand-computed in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from spo3.metrics.stats import (
    first_crossing,
    iqm,
    probability_of_improvement,
    probability_of_improvement_ci,
    ratio_ci,
    stratified_bootstrap_ci,
)


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm(np.arange(1, 9)) == 4.5  # drop 1, 2 and 7, 8: mean(3, 4, 5, 6)
    assert iqm([[0.0, 10.0], [1.0, 2.0]]) == 1.5  # over all entries: drop 0 and 10
    assert iqm(np.arange(10.0)) == pytest.approx(sps.trim_mean(np.arange(10.0), 0.25))  # rliable's definition


def test_probability_of_improvement_hand_computed():
    # x = (1, 2, 3) against y = (2, 2): pairs 1<2 (0, 0), 2=2 (1/2, 1/2), 3>2 (1, 1) -> 3/6
    assert probability_of_improvement([1, 2, 3], [2, 2]) == 0.5
    # x = (3, 4) against y = (1, 2, 3): 3 beats 1, 2, ties 3 (2.5); 4 beats all (3) -> 5.5 / 6
    assert probability_of_improvement([3, 4], [1, 2, 3]) == pytest.approx(5.5 / 6)
    # two tasks are averaged: task 1 gives 1, task 2 gives 0
    assert probability_of_improvement([[1, 0], [1, 0]], [[0, 1]]) == 0.5
    # the Mann-Whitney U statistic over n*m is the same quantity
    x, y = np.array([0.1, 0.5, 0.5, 0.9]), np.array([0.2, 0.5, 0.7])
    assert probability_of_improvement(x, y) == pytest.approx(sps.mannwhitneyu(x, y).statistic / 12)


def test_stratified_bootstrap_resamples_within_each_task_only():
    # task 1 is constant at 0, task 2 at 1: any within-task resample keeps the mean at 0.5 exactly, whereas
    # resampling whole cells across tasks would not
    scores = np.array([[0.0, 1.0]] * 5)
    assert stratified_bootstrap_ci(scores, np.mean) == (0.5, 0.5, 0.5)


def test_bootstrap_interval_of_two_runs_is_the_full_range():
    # runs (0, 1): resampled means are 0 (p 1/4), 1/2 (1/2), 1 (1/4), so the 2.5% and 97.5% quantiles are 0 and 1
    assert stratified_bootstrap_ci([0.0, 1.0], np.mean) == (0.5, 0.0, 1.0)


def test_intervals_are_seeded_and_contain_the_point():
    rng = np.random.default_rng(0)
    x, y = rng.normal(1, 1, size=(10, 3)), rng.normal(0, 1, size=(8, 3))
    a, b = probability_of_improvement_ci(x, y, seed=1), probability_of_improvement_ci(x, y, seed=1)
    assert a == b and a[1] <= a[0] <= a[2] and a[0] > 0.5
    point, lo, hi = stratified_bootstrap_ci(x)
    assert lo <= point <= hi


def test_ratio_and_threshold_crossing():
    point, lo, hi = ratio_ci([2.0, 2.0, 2.0], [1.0, 1.0])
    assert (point, lo, hi) == (2.0, 2.0, 2.0)
    assert first_crossing([0, 10, 20, 30], [0.1, 0.5, 0.6, 0.9], 0.6) == 20
    assert first_crossing([0, 10], [0.1, 0.5], 0.6) == math.inf
    assert ratio_ci([math.inf, 10.0], [5.0, 5.0])[0] == math.inf  # a threshold never reached is not hidden
