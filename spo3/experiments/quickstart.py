"""The main job: 3SPO against GRPO with a tabular policy on generated TextWorld games, several seeds.

    spo3 quickstart                    # or: make quickstart
    spo3 quickstart --profile small    # a smoke-sized run (CI, notebook)

Every variant trains on the same TextWorld coin-collector games from the same initial (uniform) policy under the
same update settings and per-task budget, and is evaluated on those games every few iterations. The default
profile compares 3SPO with the paper's defaults, 3SPO with alpha = 1 (upstream code's default) and GRPO. The
figure plots evaluation success against environment steps (the cost that matters for agents), mean over seeds
with a 95% band; compare methods left of the dashed line, the budget every run reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from spo3.experiments.compare import Variant, format_summary, plot_variants, run_variants, summarise

__all__ = ["CONFIG", "PROFILES", "QuickstartProfile", "run_quickstart"]

CONFIG = Path(__file__).resolve().parent.parent / "data" / "quickstart.yaml"

PAPER_3SPO = Variant("3SPO", "3spo")
"""3SPO with the paper's defaults (alpha 50, xi 10, zeta 0.1, G_max 8)."""
GENTLE_3SPO = Variant("3SPO alpha=1", "3spo", ("algo.alpha=1.0",))
"""3SPO with upstream StateScoreManager's code default alpha = 1: solved states keep n > 1 for longer."""
GRPO = Variant("GRPO", "grpo")
GIGPO = Variant("GiGPO", "gigpo")


@dataclass(frozen=True)
class QuickstartProfile:
    seeds: tuple[int, ...]
    iterations: int
    variants: tuple[Variant, ...] = (PAPER_3SPO, GENTLE_3SPO, GRPO)


PROFILES = {
    "small": QuickstartProfile(seeds=(0,), iterations=4, variants=(PAPER_3SPO, GRPO)),
    "default": QuickstartProfile(seeds=(0, 1, 2), iterations=40),
    "full": QuickstartProfile(seeds=tuple(range(8)), iterations=60, variants=(PAPER_3SPO, GENTLE_3SPO, GRPO, GIGPO)),
}


def run_quickstart(profile: str = "default", output_dir: str | Path = "runs/quickstart", extra: Sequence[str] = ()) -> Path:
    """Train every variant of ``profile`` for every seed, then plot and summarise; returns the figure's path."""
    spec = PROFILES[profile]
    runs = run_variants(CONFIG, spec.variants, spec.seeds, spec.iterations, output_dir, extra)
    figure = plot_variants(runs, Path(output_dir) / "quickstart.png", "TextWorld coin collector, tabular policy")
    print("\nEvaluation success at equal environment-step budgets (mean over seeds, 95% CI):")
    print(format_summary(summarise(runs)))
    print(f"\nruns and metrics (metrics.jsonl / metrics.csv per run): {output_dir}")
    print(f"figure: {figure}")
    return figure
