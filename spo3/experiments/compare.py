"""Multi-seed comparisons of methods and variants at equal budgets (used by the quickstart and paper_figures).

A :class:`Variant` is a label, an algorithm and config overrides. :func:`run_variants` trains every variant for
every seed from one base config (skipping runs that already finished), :func:`summarise` reports evaluation
success at budgets every run reached (mean over seeds with a 95% interval), and :func:`plot_variants` draws the
learning curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spo3.config import TrainConfig, load_config
from spo3.metrics import common_budget, curves_on_grid, mean_ci_over_seeds, plot_learning_curves, read_metrics
from spo3.training.loop import train

__all__ = ["Variant", "format_summary", "plot_variants", "run_variants", "summarise", "variant_config"]


@dataclass(frozen=True)
class Variant:
    """One line of a comparison: a label, the algorithm and its config overrides."""

    label: str
    algorithm: str
    overrides: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.label.lower()).strip("-")


def variant_config(
    base: str | Path, variant: Variant, seed: int, iterations: int, output_dir: str | Path, extra: Sequence[str] = ()
) -> TrainConfig:
    """The configuration of one run: ``base`` YAML, then the variant's and the caller's overrides."""
    return load_config(base, [
        f"algo.name={variant.algorithm}", f"seed={seed}", f"iterations={iterations}", f"log.output_dir={output_dir}",
        f"log.run_name={variant.slug}-s{seed}", *variant.overrides, *extra,
    ])


def run_variants(
    base: str | Path,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    iterations: int,
    output_dir: str | Path,
    extra: Sequence[str] = (),
) -> dict[str, list[Path]]:
    """Train each variant for each seed (a finished run is reused); returns ``{label: [run dirs]}``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[Path]] = {}
    for variant in variants:
        for seed in seeds:
            run_dir = output_dir / f"{variant.slug}-s{seed}"
            if (run_dir / "summary.json").exists():
                print(f"{run_dir}: already trained, reusing it")
            else:
                train(variant_config(base, variant, seed, iterations, output_dir, extra))
            runs.setdefault(variant.label, []).append(run_dir)
    return runs


def summarise(runs: dict[str, list[Path]], fractions: Sequence[float] = (0.5, 1.0)) -> list[dict]:
    """Evaluation success of each variant at fractions of the budget every run reached, plus its total costs.

    Returns one row per variant: ``label``, ``seeds``, for each fraction ``success@<steps>`` as
    ``(mean, ci_low, ci_high)``, ``final_success`` (the last evaluation, whatever budget the run spent) likewise,
    and the mean final ``env_steps_total``, ``generated_tokens_total`` and ``unique_states``.
    """
    end = common_budget(runs)
    rows = []
    for label, dirs in runs.items():
        grid, curves = curves_on_grid(dirs, end=end, points=101)
        mean, lo, hi = mean_ci_over_seeds(curves)
        row: dict = {"label": label, "seeds": len(dirs)}
        for f in fractions:
            i = int(round(f * (len(grid) - 1)))
            row[f"success@{grid[i]:.0f}"] = (float(mean[i]), float(max(lo[i], 0.0)), float(min(hi[i], 1.0)))
        finals = [read_metrics(d)[-1] for d in dirs]
        final_mean, final_lo, final_hi = mean_ci_over_seeds(np.array([[r["eval"]["success_rate"]] for r in finals]))
        row["final_success"] = (float(final_mean[0]), float(max(final_lo[0], 0.0)), float(min(final_hi[0], 1.0)))
        for key in ("env_steps_total", "generated_tokens_total", "unique_states"):
            row[key] = float(np.mean([r[key] for r in finals]))
        rows.append(row)
    return rows


def format_summary(rows: list[dict]) -> str:
    """The rows of :func:`summarise` as aligned text."""
    lines = []
    for row in rows:
        cells = [f"{row['label']:<16} seeds={row['seeds']}"]
        for key, value in row.items():
            if key.startswith("success@"):
                cells.append(f"{key} steps: {value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]")
        f = row["final_success"]
        cells.append(f"final: {f[0]:.2f} [{f[1]:.2f}, {f[2]:.2f}] after {row['env_steps_total']:.0f} steps")
        lines.append("   ".join(cells))
    return "\n".join(lines)


def plot_variants(runs: dict[str, list[Path]], path: str | Path, title: str) -> Path:
    """Learning curves (success against environment steps) of every variant, saved to ``path``."""
    # A bare Figure, not pyplot: it draws without any GUI backend and leaves the caller's backend alone (a library
    # that called matplotlib.use("Agg") switched a notebook kernel's inline backend off for every later plot).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    plot_learning_curves(runs, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
