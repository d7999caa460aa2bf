"""Regenerate the project's comparison figures from training runs (CPU, tabular policy, TextWorld).

    python paper_figures/make_figures.py                      # every figure, full profile (writes paper_figures/out/)
    python paper_figures/make_figures.py methods --profile small --out /tmp/figs

Each experiment trains its variants for several seeds from one base config (runs are kept under
<out>/runs/<experiment>/ and reused when present), then writes <out>/<experiment>.png (learning curves at equal
environment-step budgets) and <out>/<experiment>.json (success at half and the full common budget with 95%
intervals, total environment steps, unique states). Nothing here recomputes a metric its own way: it calls
spo3.experiments.compare and spo3.metrics.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from spo3.experiments.compare import Variant, format_summary, plot_variants, run_variants, summarise
from spo3.experiments.quickstart import CONFIG

OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Experiment:
    title: str
    variants: tuple[Variant, ...]
    base: Path = CONFIG


# The paper's ablations are run at alpha = 1: with alpha = 50 every variant stops branching once a game is solved
# (see the "alpha" experiment), which would hide the differences the ablations are about.
A1 = ("algo.alpha=1.0",)
EXPERIMENTS = {
    "methods": Experiment(
        "3SPO vs GRPO vs GiGPO (TextWorld, tabular)",
        (
            Variant("3SPO", "3spo"),
            Variant("3SPO alpha=1", "3spo", A1),
            Variant("GRPO", "grpo"),
            Variant("GiGPO", "gigpo"),
        ),
    ),
    "alpha": Experiment(
        "3SPO: sensitivity to alpha in lambda(t) = alpha ln t",
        tuple(Variant(f"alpha={a}", "3spo", (f"algo.alpha={a}",)) for a in ("0.0", "1.0", "5.0", "50.0")),
    ),
    "ablations": Experiment(
        "3SPO ablations at alpha = 1 (paper Sec. 4.4)",
        (
            Variant("3SPO", "3spo", A1),
            Variant("w/o R_novel", "3spo", A1 + ("algo.use_novelty=false",)),
            Variant("w/o dS", "3spo", A1 + ("algo.use_score_diff=false",)),
            Variant("w/o adaptive omega", "3spo", A1 + ("algo.fixed_omega=0.25",)),
            Variant("w/o adaptive n", "3spo", A1 + ("algo.adaptive_rollouts=false",)),
            Variant("w/o backtrack", "3spo", A1 + ("algo.backtracking=false",)),
        ),
    ),
    "truncated_ds": Experiment(
        "dS into truncated states: paper (S = 0) vs scored as unresolved (S = 1)",
        (
            Variant("alpha=0", "3spo", ("algo.alpha=0.0",)),
            Variant("alpha=0, truncated as unresolved", "3spo", ("algo.alpha=0.0", "algo.truncated_as_unresolved=true")),
            Variant("alpha=50", "3spo"),
            Variant("alpha=50, truncated as unresolved", "3spo", ("algo.truncated_as_unresolved=true",)),
        ),
    ),
}
PROFILES = {
    "small": {"seeds": (0,), "iterations": 3, "extra": ()},
    "full": {"seeds": tuple(range(5)), "iterations": 40, "extra": ("eval.episodes=32",)},
}


def make(name: str, profile: str, out: Path) -> dict:
    exp, prof = EXPERIMENTS[name], PROFILES[profile]
    runs = run_variants(exp.base, exp.variants, prof["seeds"], prof["iterations"], out / "runs" / name, prof["extra"])
    plot_variants(runs, out / f"{name}.png", exp.title)
    rows = summarise(runs)
    record = {"experiment": name, "profile": profile, **prof, "rows": rows, "runs": {k: [str(d.relative_to(out)) for d in v] for k, v in runs.items()}}
    (out / f"{name}.json").write_text(json.dumps(record, indent=1))
    print(f"\n== {name} ({profile}) ==\n{format_summary(rows)}\nfigure: {out / f'{name}.png'}")
    return {"runs": runs, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(EXPERIMENTS), help=f"experiments (default all: {list(EXPERIMENTS)})")
    ap.add_argument("--profile", choices=list(PROFILES), default="full")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        make(name, args.profile, args.out)


if __name__ == "__main__":
    main()
