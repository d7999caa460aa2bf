"""The tabular policy's checkpoint files."""

from __future__ import annotations

import gc

import torch

from spo3.policies.base import PolicyInput
from spo3.policies.tabular import TabularPolicy


def test_saving_a_large_table_is_exact_and_sets_off_no_garbage_collection(tmp_path):
    """The soak (benchmarks/soak.py) found every other checkpoint paying a full garbage collection (~200 ms at 48k
    entries): saving made one list per table entry."""
    policy = TabularPolicy(seed=0)
    for i in range(20_000):
        policy._rows(PolicyInput("", f"context {i}", ("go east", "take coin")))
    with torch.no_grad():
        policy.logits[: policy.size] = torch.linspace(-1, 1, policy.size, dtype=torch.float64)
    collections = []
    gc.collect()
    gc.callbacks.append(collect := lambda phase, info: collections.append(info["generation"]) if phase == "start" else None)
    try:
        policy.save(tmp_path)
    finally:
        gc.callbacks.remove(collect)
    assert len(collections) <= 2, f"{len(collections)} garbage collections while saving"
    copy = TabularPolicy(seed=1)
    copy.load(tmp_path)
    assert copy._index == policy._index and torch.equal(copy.logits, policy.logits)
