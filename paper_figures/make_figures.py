"""Draw every paper-claims figure and summary from the committed run logs, without training.

    python -m paper_figures.make_figures                     # paper_figures/data/*.jsonl.gz -> paper_figures/out/
    python -m paper_figures.make_figures --data runs/paper_figures/small/data --out runs/paper_figures/small/out

For each experiment log ``<data>/<name>.jsonl.gz`` (written by ``paper_figures.run``) this writes
``<out>/<name>.png`` and ``.pdf`` (evaluation success on unseen games against environment steps, and the state
statistics of the paper's Fig. 3 and Fig. 8), ``<out>/<name>.json`` (the summary below), and for the pool
experiment ``<out>/pools_allocation.{png,pdf}``; for runs that report a task score (WebShop) ``<out>/<name>_score.{png,pdf}``
(:func:`summarise_scores`); for runs evaluated on several splits (ALFWorld)
``<out>/<name>_by_type.{png,pdf}`` (final success by split and task type); ``<out>/case_study.{png,pdf,json}`` (Fig. 9) comes from the
first logged expansion trace. Every statistic is computed by :mod:`spo3.metrics` (rliable's IQM, stratified
bootstrap and probability of improvement); nothing is recomputed here its own way.

Summary of a variant (each over its seeds): the final evaluation success (IQM, strata = task types or levels);
success at the budget every run of the experiment reached (env steps, interpolated between evaluations); unique
states at that budget; environment steps to reach 60% evaluation success; the distribution of n, sibling groups
per iteration and the share of expansions at states the store had never seen (3SPO); mean training success; plus
probabilities of improvement and ratios against the other variants; and, for runs evaluated on several splits,
success by split and task type at the first and the last evaluation (:func:`summarise_splits`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from spo3.metrics import (
    common_budget,
    curves_on_grid,
    first_crossing,
    iqm,
    plot_learning_curves,
    probability_of_improvement_ci,
    ratio_ci,
    series,
    stratified_bootstrap_ci,
    wilson_interval,
)

HERE = Path(__file__).resolve().parent
DATA, OUT = HERE / "data", HERE / "out"
THRESHOLD = 0.6
"""The paper's "1.8x": environment steps until 60% success."""

Records = Sequence[Mapping[str, Any]]


def load(path: Path) -> list[dict[str, Any]]:
    """The runs of one experiment log (one JSON object per line)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def by_variant(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[Records]]:
    groups: dict[str, list[Records]] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        groups.setdefault(run["variant"], []).append(run["records"])
    return groups


def _evaluations(records: Records) -> Records:
    """The records of a run that carry an evaluation, in order."""
    return [r for r in records if "eval" in r]


def _interval(point_lo_hi: Sequence[float]) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in point_lo_hi]


def _at(records: Records, y: str, budget: float, x: str = "env_steps_total") -> float:
    xs, ys = series(records, x, y)
    return float(np.interp(budget, xs, ys))


def _early(records: Records, key: str) -> float:
    """Mean of ``key`` over the first third of the iterations (the paper's Fig. 8 compares early training)."""
    values = [r[key] for r in records if key in r]
    return float(np.mean(values[: max(1, len(values) // 3)]))


def _final_eval_by_stratum(runs: Sequence[Records]) -> np.ndarray:
    """``(n_seeds, n_strata)``: final evaluation success per task type (the strata of the stratified bootstrap)."""
    finals = [_evaluations(recs)[-1]["eval"] for recs in runs]
    strata = sorted(finals[0]["per_type"])
    return np.array([[f["per_type"][s]["success_rate"] for s in strata] for f in finals])


def _allocation(runs: Sequence[Records]) -> dict[str, Any]:
    """n distribution, sibling groups per iteration and share of expansions at never-seen states."""
    n_hist: Counter[str] = Counter()
    groups, unseen, allocations = [], 0, 0
    for recs in runs:
        for r in recs:
            if "n_hist" not in r:
                continue
            n_hist.update(r["n_hist"])
            groups.append(r.get("sibling_groups", 0))
            unseen += r.get("unseen_allocations", 0)
            allocations += sum(r["n_hist"].values())
    total = sum(n_hist.values())
    return {
        "n_distribution": {k: v / total for k, v in sorted(n_hist.items(), key=lambda kv: int(kv[0]))} if total else {},
        "sibling_groups_per_iteration": float(np.mean(groups)) if groups else 0.0,
        "share_unseen_states": unseen / allocations if allocations else None,
    }


def _split_reports(record: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """An evaluated record's reports by split (``eval_splits``; a run without it has its one ``eval``)."""
    return record.get("eval_splits") or {"eval": record["eval"]}


def _pooled(reports: Sequence[Mapping[str, Any]], task_type: str) -> dict[str, Any]:
    """Successes and episodes of one task type pooled over seeds, with the Wilson interval of the pooled rate."""
    wins = sum(r["per_type"][task_type]["successes"] for r in reports if task_type in r["per_type"])
    n = sum(r["per_type"][task_type]["episodes"] for r in reports if task_type in r["per_type"])
    return {"successes": wins, "episodes": n, "rate": _interval((wins / n if n else math.nan, *wilson_interval(wins, n)))}


def summarise_splits(groups: Mapping[str, Sequence[Records]]) -> dict[str, Any]:
    """Evaluation by split and task type, at the first evaluation (before any update: the warm start alone) and the
    last: per split and variant, the IQM over seeds with its stratified-bootstrap interval (strata: task types), the
    success rate of all episodes pooled over seeds with a Wilson interval (with sparse successes the IQM over task
    types trims them away), and per task type the same pooled rate. Empty unless runs log ``eval_splits``."""
    if not all("eval_splits" in r for runs in groups.values() for recs in runs for r in recs if "eval" in r):
        return {}
    out: dict[str, Any] = {}
    for label, runs in groups.items():
        evaluated = [_evaluations(recs) for recs in runs]
        for split in _split_reports(evaluated[0][0]):
            row: dict[str, Any] = {}
            for when, index in (("start", 0), ("final", -1)):
                reports = [_split_reports(e[index])[split] for e in evaluated]
                types = sorted(reports[0]["per_type"])
                by_type = np.array([[r["per_type"][t]["success_rate"] for t in types] for r in reports])
                wins, n = sum(r["successes"] for r in reports), sum(r["episodes"] for r in reports)
                row[when] = {
                    "iteration": [e[index]["iteration"] for e in evaluated],
                    "iqm": _interval(stratified_bootstrap_ci(by_type)),
                    "successes": wins,
                    "episodes": n,
                    "pooled": _interval((wins / n, *wilson_interval(wins, n))),
                    "per_type": {t: _pooled(reports, t) for t in types},
                }
            out.setdefault(split, {})[label] = row
    return out


def split_order(groups: Mapping[str, Sequence[Records]]) -> list[str]:
    """The evaluated splits, the one of the records' ``eval`` (the run's first split) first."""
    first = next(r for runs in groups.values() for recs in runs for r in recs if "eval_splits" in r)
    return sorted(first["eval_splits"], key=lambda split: (first["eval_splits"][split] != first["eval"], split))


def summarise(groups: Mapping[str, Sequence[Records]]) -> dict[str, Any]:
    budget = common_budget(groups)
    rows: dict[str, dict[str, Any]] = {}
    for label, runs in groups.items():
        finals = [_evaluations(recs)[-1] for recs in runs]
        steps_to = [first_crossing(*series(recs, "env_steps_total", "eval/success_rate"), THRESHOLD) for recs in runs]
        rows[label] = {
            "seeds": len(runs),
            "final_success_iqm": _interval(stratified_bootstrap_ci(_final_eval_by_stratum(runs))),
            "final_success_mean": float(np.mean([f["eval"]["success_rate"] for f in finals])),
            "final_env_steps_mean": float(np.mean([f["env_steps_total"] for f in finals])),
            "success_at_budget_iqm": _interval(stratified_bootstrap_ci([_at(recs, "eval/success_rate", budget) for recs in runs])),
            "unique_states_at_budget": [_at(recs, "unique_states", budget) for recs in runs],
            "steps_to_threshold": [None if math.isinf(s) else s for s in steps_to],
            "train_success_iqm": _interval(stratified_bootstrap_ci([np.mean([r["success_rate"] for r in recs if "success_rate" in r]) for recs in runs])),
            "train_success_at_budget_iqm": _interval(stratified_bootstrap_ci([_at(recs, "success_rate", budget) for recs in runs])),
            "mean_state_score_early": float(np.mean([_early(recs, "mean_state_score") for recs in runs])),
            "mean_state_score_final": float(np.mean([[r for r in recs if "mean_state_score" in r][-1]["mean_state_score"] for recs in runs])),
            "high_score_share_final": float(np.mean([[r for r in recs if "high_score_share" in r][-1]["high_score_share"] for recs in runs])),
            "high_score_share_early": float(np.mean([_early(recs, "high_score_share") for recs in runs])),
            **_allocation(runs),
        }
    comparisons = {}
    labels = list(groups)
    for a in labels:
        for b in labels:
            if a == b:
                continue
            sa = np.array([_at(recs, "eval/success_rate", budget) for recs in groups[a]])
            sb = np.array([_at(recs, "eval/success_rate", budget) for recs in groups[b]])
            steps_a = [math.inf if s is None else s for s in rows[a]["steps_to_threshold"]]
            steps_b = [math.inf if s is None else s for s in rows[b]["steps_to_threshold"]]
            comparisons[f"{a} vs {b}"] = {
                "p_improvement_at_budget": _interval(probability_of_improvement_ci(sa, sb)),
                "p_improvement_final": _interval(probability_of_improvement_ci(_final_eval_by_stratum(groups[a]), _final_eval_by_stratum(groups[b]))),
                "unique_states_ratio": _interval(ratio_ci(rows[a]["unique_states_at_budget"], rows[b]["unique_states_at_budget"])),
                "final_env_steps_ratio": _interval(ratio_ci(
                    [_evaluations(recs)[-1]["env_steps_total"] for recs in groups[a]],
                    [_evaluations(recs)[-1]["env_steps_total"] for recs in groups[b]])),
                "success_at_budget_difference": float(np.mean(sa) - np.mean(sb)),
                "steps_to_threshold_ratio": _interval(ratio_ci(steps_a, steps_b)),
                "threshold_reached": [sum(math.isfinite(s) for s in steps_a), sum(math.isfinite(s) for s in steps_b)],
            }
    splits = summarise_splits(groups)
    scores = summarise_scores(groups, budget)
    return {"budget_env_steps": budget, "threshold": THRESHOLD, "variants": labels, "rows": rows, "comparisons": comparisons,
            **({"splits": splits, "split_order": split_order(groups)} if splits else {}), **({"scores": scores} if scores else {})}


def _type_scores(record: Mapping[str, Any]) -> list[float]:
    """An evaluation's mean score per task type, in sorted type order (one stratum per type)."""
    per_type = record["eval"]["per_type"]
    return [per_type[t]["mean_score"] for t in sorted(per_type)]


def _scores_at(records: Records, budget: float) -> list[float]:
    """Evaluation mean score per task type, interpolated at ``budget`` environment steps."""
    evaluated = _evaluations(records)
    xs, ys = [r["env_steps_total"] for r in evaluated], np.array([_type_scores(r) for r in evaluated])
    return [float(np.interp(budget, xs, column)) for column in ys.T]


def summarise_scores(groups: Mapping[str, Sequence[Records]], budget: float) -> dict[str, Any]:
    """The paper's WebShop score (100 x the mean purchase score, 0 without a purchase) beside success, for runs whose
    evaluations report a score per task type; empty otherwise. Per variant, IQM over (seed, product category) cells
    with 95% stratified-bootstrap intervals (strata: categories): the score of the first evaluation (the warm start
    alone), at the equal-step ``budget`` (interpolated between evaluations) and at the last evaluation; the
    training score (the mean over iterations of the finished trajectories' scores, IQM over seeds). Per ordered pair,
    the probability of improvement at the budget with its interval and the difference of mean scores in points."""
    evaluated = [r for runs in groups.values() for recs in runs for r in recs if "eval" in r]
    if not evaluated or not all("mean_score" in t for r in evaluated for t in r["eval"]["per_type"].values()):
        return {}
    rows, at_budget = {}, {}
    for label, runs in groups.items():
        at_budget[label] = np.array([_scores_at(recs, budget) for recs in runs])
        first = np.array([_type_scores(_evaluations(recs)[0]) for recs in runs])
        last = np.array([_type_scores(_evaluations(recs)[-1]) for recs in runs])
        rows[label] = {
            "start_score_iqm": _interval(stratified_bootstrap_ci(100 * first)),
            "score_at_budget_iqm": _interval(stratified_bootstrap_ci(100 * at_budget[label])),
            "final_score_iqm": _interval(stratified_bootstrap_ci(100 * last)),
            "train_score_iqm": _interval(stratified_bootstrap_ci(
                [100 * np.mean([r["task_score"] for r in recs if "task_score" in r]) for recs in runs])),
            "start_success_iqm": _interval(stratified_bootstrap_ci(
                [_evaluations(recs)[0]["eval"]["success_rate"] for recs in runs])),
        }
    comparisons = {
        f"{a} vs {b}": {
            "p_improvement_score_at_budget": _interval(probability_of_improvement_ci(at_budget[a], at_budget[b])),
            "score_at_budget_difference": float(100 * (at_budget[a].mean() - at_budget[b].mean())),
        }
        for a in groups for b in groups if a != b
    }
    return {"rows": rows, "comparisons": comparisons}


WEBSHOP_PAGES = ("click[< prev]", "click[back to search]", "click[next >]", "click[description]", "click[features]", "click[reviews]")


def webshop_action_rewards(expansions: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """R_3SPO of the children in a logged 3SPO WebShop run by the kind of action that reached them (search, product,
    option, buy, page: navigation): their number, mean reward and share won. An option click changes the chosen
    options but not the page text, so the state key does not change and R_novel is 0 there."""
    def kind(action: str) -> str:
        if action.startswith("search["):
            return "search"
        if action == "click[buy now]":
            return "buy"
        if action in WEBSHOP_PAGES:
            return "page"
        return "product" if re.fullmatch(r"click\[b[0-9a-z]{9}\]", action) else "option"

    rewards: dict[str, list[tuple[float, bool]]] = {}
    for e in expansions:
        for action, reward, won in zip(e["actions"], e["rewards"], e["won"]):
            rewards.setdefault(kind(action), []).append((reward, won))
    return {k: {"children": len(v), "mean_reward": float(np.mean([r for r, _ in v])), "won": float(np.mean([w for _, w in v]))}
            for k, v in sorted(rewards.items())}


def plot_scores(groups: Mapping[str, Sequence[Records]], title: str, out: Path, name: str) -> None:
    """The WebShop score against environment steps: held-out evaluation and training."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot_learning_curves(groups, y="eval/mean_score", ax=axes[0], ylabel="score / 100 on held-out goals (eval)")
    plot_learning_curves(groups, y="task_score", ax=axes[1], ylabel="score / 100 in training (finished trajectories)")
    fig.suptitle(title + " (95% t-bands over seeds)", fontsize=9)
    fig.tight_layout()
    _save(fig, out, name)
    plt.close(fig)


def _save(fig, out: Path, name: str) -> None:
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=120)


def plot_experiment(groups: Mapping[str, Sequence[Records]], title: str, out: Path, name: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    plot_learning_curves(groups, ax=axes[0, 0], ylabel="success on unseen games (eval)")
    plot_learning_curves(groups, y="success_rate", ax=axes[0, 1], ylabel="training success (finished trajectories)")
    panels = [
        (axes[0, 2], "unique_states", "unique states in the store"),
        (axes[1, 0], "mean_state_score", "mean state score S (Fig. 3)"),
        (axes[1, 1], "high_score_share", "share of high-score states (Fig. 8)"),
        (axes[1, 2], "sibling_groups", "sibling groups per iteration"),
    ]
    for ax, key, ylabel in panels:
        for label, runs in groups.items():
            grid, curves = curves_on_grid(runs, y=key, points=100, hold_final=True)
            logged = grid >= max(series(recs, "env_steps_total", key)[0][0] for recs in runs)  # no value before the first
            ax.plot(grid[logged], curves.mean(0)[logged], label=label)
            ax.fill_between(grid[logged], curves.min(0)[logged], curves.max(0)[logged], alpha=0.15)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[1, 2].legend(fontsize=7)
    fig.suptitle(title + " (bands: min-max over seeds; left panels: 95% t-band)")
    fig.tight_layout()
    _save(fig, out, name)
    plt.close(fig)


def plot_allocation(summary: Mapping[str, Any], title: str, out: Path, name: str) -> None:
    """Distribution of n per variant (the collapse to n in {0, 1} as states become known)."""
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    ns = sorted({int(k) for r in rows.values() for k in r["n_distribution"]})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(rows))
    for i, (label, row) in enumerate(rows.items()):
        share = [row["n_distribution"].get(str(n), 0.0) for n in ns]
        unseen = row["share_unseen_states"]
        extra = f", {row['sibling_groups_per_iteration']:.0f} groups/it" + (f", {unseen:.0%} unseen" if unseen is not None else "")
        ax.bar(np.arange(len(ns)) + i * width, share, width, label=f"{label}{extra}")
    ax.set_xticks(np.arange(len(ns)) + 0.4 - width / 2, [str(n) for n in ns])
    ax.set_xlabel("n allocated at an expanded state (Eq. 3)")
    ax.set_ylabel("share of allocations")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out, name)
    plt.close(fig)


def plot_splits(splits: Mapping[str, Any], order: Sequence[str], title: str, out: Path, name: str) -> None:
    """Success by task type on each evaluated split: per variant, the final evaluation (bars, pooled over seeds,
    95% Wilson intervals) and the first one, before any update (black ticks)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(splits), figsize=(7 * len(splits), 4.2), squeeze=False)
    for ax, split in zip(axes[0], order):
        rows = splits[split]
        labels = list(rows)
        types = sorted({t for row in rows.values() for t in row["final"]["per_type"]})
        width = 0.8 / max(1, len(labels))
        for i, label in enumerate(labels):
            x = np.arange(len(types)) + i * width
            final = [rows[label]["final"]["per_type"][t]["rate"] for t in types]
            start = [rows[label]["start"]["per_type"][t]["rate"][0] for t in types]
            point = np.array([f[0] for f in final])
            err = np.array([[p - f[1] for p, f in zip(point, final)], [f[2] - p for p, f in zip(point, final)]])
            pooled = rows[label]["final"]["pooled"]
            ax.bar(x, point, width, yerr=err, capsize=2, label=f"{label}: all types {pooled[0]:.2f} [{pooled[1]:.2f}, {pooled[2]:.2f}]")
            ax.scatter(x, start, marker="_", color="black", s=120, zorder=3, label="first evaluation (before RL)" if i == 0 else None)
        ax.set_xticks(np.arange(len(types)) + 0.4 - width / 2, [t.replace("_then_place_in_recep", "").replace("_", " ") for t in types],
                      rotation=20, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("final evaluation success")
        ax.set_title(f"{split}: {rows[labels[0]]['final']['episodes']} episodes per variant")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title + " (bars: pooled over seeds, 95% Wilson intervals)", fontsize=9)
    fig.tight_layout()
    _save(fig, out, name)
    plt.close(fig)


def case_study(expansions: Sequence[Mapping[str, Any]], g_max: int = 8) -> dict[str, Any] | None:
    """Fig. 9's analogue: one real state followed across its expansions in a logged 3SPO run.

    The state is the one expanded in the most iterations among those whose first allocation was G_max and whose
    allocation later fell (the paper's "S = 1, n = 8 -> S = 0.3, n = 3"), or simply the most revisited one."""
    visits: dict[str, list[Mapping[str, Any]]] = {}
    for e in expansions:
        visits.setdefault(e["key"], []).append(e)
    revisited = {k: v for k, v in visits.items() if len({e["iteration"] for e in v}) > 1}
    if not revisited:
        return None
    fell = {k: v for k, v in revisited.items() if v[0]["n"] == g_max and min(e["n"] for e in v[1:]) < g_max}
    pool = fell or revisited
    key = max(pool, key=lambda k: (len({e["iteration"] for e in pool[k]}), -pool[k][0]["depth"]))
    seq = pool[key]
    first, last = seq[0], seq[-1]
    score = lambda e: e.get("score")  # noqa: E731
    text = (first.get("text") or key)[:70].replace("\n", " ")
    fmt = lambda e: f"iteration {e['iteration']}: S = {score(e):.2f}, n = {e['n']}" if score(e) is not None else f"iteration {e['iteration']}: n = {e['n']}"  # noqa: E731
    direction = last["n"] < first["n"] and (score(first) is None or score(last) < score(first))
    return {
        "key": key, "text": text, "visits": [dict(e) for e in seq],
        "summary": f'state "{text}" expanded {len(seq)} times: first {fmt(first)}; last {fmt(last)}',
        "verdict": "in direction only (one illustrative state)" if direction else "not reproduced (n did not fall on the most revisited state)",
    }


def plot_case_study(study: Mapping[str, Any], out: Path) -> None:
    import matplotlib.pyplot as plt

    seq = study["visits"]
    shown = [seq[i] for i in sorted({0, 1, len(seq) // 2, len(seq) - 1}) if i < len(seq)]
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.6), squeeze=False)
    for ax, e in zip(axes[0], shown):
        labels = [f"{a}{' (won)' if w else ''}" for a, w in zip(e["actions"], e["won"])]
        ax.barh(range(len(labels)), e["rewards"], color=["tab:green" if w else "tab:blue" for w in e["won"]])
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        s = e.get("score")
        ax.set_title(f"iteration {e['iteration']}: " + (f"S = {s:.2f}, " if s is not None else "") + f"n = {e['n']}", fontsize=9)
        ax.set_xlabel("R_3SPO of each child")
    fig.suptitle(f'Fig. 9 analogue: "{study["text"]}" across its expansions (3SPO, methods, seed 0)', fontsize=9)
    fig.tight_layout()
    _save(fig, out, "case_study")
    plt.close(fig)


def make(path: Path, out: Path) -> dict[str, Any]:
    from paper_figures.experiments import EXPERIMENTS

    name = path.name.removesuffix(".jsonl.gz")
    runs = load(path)
    if not runs:
        print(f"{path}: no finished runs, skipped")
        return {}
    title = EXPERIMENTS[name].title if name in EXPERIMENTS else name
    groups = by_variant(runs)
    summary = {
        "experiment": name, "title": title, "source": str(path.relative_to(path.parent.parent)) if path.parent.parent in path.parents else str(path),
        "commands": sorted({r["command"] for r in runs}), "git_commits": sorted({r["git_commit"] for r in runs}),
        **summarise(groups),
    }
    traced = [r for r in runs if r.get("expansions")]
    if "scores" in summary and traced:
        summary["action_rewards"] = {"source": f"{traced[0]['variant']} seed {traced[0]['seed']}", **webshop_action_rewards(traced[0]["expansions"])}
    (out / f"{name}.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    plot_experiment(groups, title, out, name)
    if "splits" in summary:
        plot_splits(summary["splits"], summary["split_order"], title, out, f"{name}_by_type")
    if "scores" in summary:
        plot_scores(groups, title, out, f"{name}_score")
    if any(r["n_distribution"] for r in summary["rows"].values()):
        plot_allocation(summary, title, out, f"{name}_allocation")
    if name == "methods" and traced:
        study = case_study(traced[0]["expansions"], traced[0]["config"]["algo"]["g_max"])
        if study is not None:
            (out / "case_study.json").write_text(json.dumps({"source": f"{name}: {traced[0]['variant']} seed {traced[0]['seed']}", **study}, indent=1))
            plot_case_study(study, out)
    print(f"{name}: {len(runs)} runs -> {out / name}.{{png,pdf,json}}")
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="experiments (default: every log in --data)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [args.data / f"{n}.jsonl.gz" for n in args.names] if args.names else sorted(args.data.glob("*.jsonl.gz"))
    for path in paths:
        make(path, args.out)


if __name__ == "__main__":
    main()
