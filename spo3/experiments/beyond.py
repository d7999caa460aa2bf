"""The allocation variants beyond the paper (issue 9), trained side by side with paper 3SPO and GRPO.

Every variant trains from one base config with the same seeds and per-task budget; :func:`allocation` reads the
diagnostics of each run's iteration records: the distribution of n, sibling groups per iteration, unique states,
truncations, retries of truncated states and states truncated then later recovered. The theory side (regret,
false truncation, the n distribution of a population of states) is ``theory.experiments.v_variants``; the
statements and verdicts are in ``theory/THEORY.md`` ("Beyond the paper").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spo3.experiments.compare import Variant, run_variants
from spo3.experiments.quickstart import CONFIG as QUICKSTART
from spo3.metrics import read_metrics

__all__ = ["PROFILES", "VARIANTS", "BeyondProfile", "allocation", "run_beyond"]

PAPER_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "paper"

VARIANTS = (
    Variant("3SPO (paper)", "3spo"),
    Variant("min_siblings=2", "3spo", ("algo.min_siblings=2",)),
    Variant("forced_exploration=10", "3spo", ("algo.forced_exploration=10.0",)),
    Variant("recoverable", "3spo", ("algo.truncation=recoverable",)),
    Variant("score_clock=visits", "3spo", ("algo.score_clock=visits",)),
    Variant("combined", "3spo", ("algo.min_siblings=2", "algo.forced_exploration=10.0", "algo.truncation=recoverable")),
    Variant("GRPO", "grpo"),
)
"""Paper 3SPO, each variant alone, the combination of the three that act on allocation, and GRPO. Forced exploration
uses c = 10, the setting of THEORY.md's V2 claim (and of paper_figures' beyond experiment)."""


@dataclass(frozen=True)
class BeyondProfile:
    base: Path
    seeds: tuple[int, ...]
    iterations: int
    extra: tuple[str, ...] = ()
    theory: str = "small"
    """Profile of ``theory.experiments.v_variants``."""
    smoke: bool = False
    """True: the run shows the pipeline works; its numbers are not evidence."""


PROFILES = {
    "small": BeyondProfile(QUICKSTART, (0,), 4, ("eval.every=2", "eval.episodes=4"), smoke=True),
    "full": BeyondProfile(QUICKSTART, tuple(range(5)), 40, theory="full"),
    "gpu": BeyondProfile(PAPER_CONFIGS / "alfworld_qwen2.5-1.5b.yaml", (0, 1, 2), 150, ("policy.device=cuda",), theory="full"),
}
"""small: CI (the quickstart's two TextWorld games, tabular policy, 4 iterations, 1 seed); full: the same games,
5 seeds x 40 iterations; gpu: the paper's ALFWorld config with Qwen2.5-1.5B-Instruct (the model must be in the
Hugging Face cache)."""


def run_beyond(profile: str, output_dir: str | Path, variants: Sequence[Variant] = VARIANTS) -> dict[str, list[Path]]:
    """Train every variant of ``profile`` for every seed (finished runs are reused); ``{label: [run dirs]}``."""
    spec = PROFILES[profile]
    return run_variants(spec.base, variants, spec.seeds, spec.iterations, output_dir, spec.extra)


def allocation(runs: dict[str, list[Path]]) -> dict[str, dict[str, Any]]:
    """Per variant, over all its runs' iterations: the share of each n, sibling groups, unique states (final),
    truncations, retries (recoverable truncation) and recovered states, the last three per iteration."""
    out = {}
    for label, dirs in runs.items():
        records = [r for d in dirs for r in read_metrics(d)]
        n_hist: Counter[int] = Counter()
        for r in records:
            n_hist.update({int(k): v for k, v in r.get("n_hist", {}).items()})
        total = sum(n_hist.values())
        per_iteration = {
            key: float(np.mean([r.get(key, 0) for r in records])) if records else 0.0
            for key in ("sibling_groups", "truncations", "truncation_retries", "recovered_states")
        }
        out[label] = {
            "n_share": {n: c / total for n, c in sorted(n_hist.items())} if total else {},
            "unique_states_final": float(np.mean([read_metrics(d)[-1]["unique_states"] for d in dirs])),
            **per_iteration,
        }
    return out
