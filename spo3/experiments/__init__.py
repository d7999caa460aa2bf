"""Experiments built on training: multi-seed variant comparisons at equal budgets and the quickstart."""
