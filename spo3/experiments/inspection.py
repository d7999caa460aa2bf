"""What a run learned about its states: the per-state table, the distribution of n, truncations, search traces.

    spo3 states runs/textworld-3spo-s0 --top 20 --sort visits      # the command-line view of the same functions
    notebooks/06_inspect_states.ipynb                               # the notebook view

Everything is read from a finished (or interrupted) run directory: the state store of its newest checkpoint
(``checkpoints/iter_*/state_store.sqlite``, an SQLite database: docs/state_store.md), ``metrics.jsonl`` and, for
3SPO runs with ``log.expansions`` on, ``expansions.jsonl`` (one line per tree-search expansion).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from spo3.metrics import read_metrics
from spo3.metrics.tables import Column, text_table
from spo3.state.store import StateStore
from spo3.training.checkpoint import latest_checkpoint
from spo3.training.loop import EXPANSIONS_FILE

__all__ = [
    "COLUMNS",
    "SORTS",
    "format_run_summary",
    "format_state_table",
    "load_store",
    "n_histogram",
    "n_over_training",
    "read_expansions",
    "state_table",
    "state_trace",
    "table_to_csv",
    "table_to_dataframe",
]

COLUMNS = ("key", "text", "n_total", "n_success", "sr", "score", "n", "truncated")
"""Columns of :func:`state_table`: the state key, an excerpt of its observation text, its visit and success
counts, success rate SR, state score S (Eq. 1) and rollout count n (Eq. 3) at the store's t, and whether it is
truncated (S = 0, so n = 0: the search never expands it again, which makes truncation permanent)."""

SORTS = {"score": "score", "visits": "n_total", "n": "n"}
"""``--sort`` choices and the column each sorts by (descending)."""


def load_store(run: str | Path) -> StateStore:
    """The state store of a run's newest checkpoint (or of a checkpoint directory, or of a store file)."""
    run = Path(run)
    if run.is_file() or (run / StateStore.FILENAME).is_file():
        return StateStore.load(run)
    checkpoint = latest_checkpoint(run)
    if checkpoint is None:
        raise FileNotFoundError(f"{run}: no checkpoint with a state store (is this a spo3 run directory?)")
    return StateStore.load(checkpoint)


def _excerpt(text: str | None, width: int) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def state_table(
    store: StateStore, top: int | None = None, sort: str = "score", grep: str | None = None, width: int = 60,
) -> list[dict[str, Any]]:
    """One row per state (columns :data:`COLUMNS`), sorted descending by ``sort`` (a key of :data:`SORTS`), ties in
    insertion order; ``grep`` keeps states whose observation text contains it (case-insensitive); ``top`` keeps
    the first rows; ``width`` caps the text excerpt."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {sorted(SORTS)}, got {sort!r}")
    records = store.records()
    n = store.rollouts([r["key"] for r in records]) if records else np.zeros(0, dtype=np.int64)
    rows = [
        {
            "key": r["key"], "text": _excerpt(r["anchor"], width), "n_total": r["n_total"], "n_success": r["n_success"],
            "sr": r["n_success"] / r["n_total"] if r["n_total"] else 0.0, "score": r["score"], "n": int(n_i),
            "truncated": bool(n_i == 0),
        }
        for r, n_i in zip(records, n)
    ]
    if grep:
        needle = grep.lower()
        rows = [row for row, r in zip(rows, records) if needle in (r["anchor"] or "").lower()]
    rows.sort(key=lambda row: -row[SORTS[sort]])
    return rows[:top] if top else rows


def format_state_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`state_table` as aligned text (keys shortened to 12 characters)."""
    return text_table(rows, (
        Column("key", lambda r: r["key"][:12], 12),
        Column("N_total", lambda r: str(r["n_total"]), 7, right=True),
        Column("N_succ", lambda r: str(r["n_success"]), 6, right=True),
        Column("SR", lambda r: f"{r['sr']:.2f}", 5, right=True),
        Column("S", lambda r: f"{r['score']:.2g}", 8, right=True),
        Column("n", lambda r: str(r["n"]), 2, right=True),
        Column("trunc", lambda r: "yes" if r["truncated"] else "", 5, right=True),
        Column("text", lambda r: r["text"]),
    ))


def table_to_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write the rows of :func:`state_table` to a CSV file."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def table_to_dataframe(rows: list[dict[str, Any]]):
    """The rows of :func:`state_table` as a pandas DataFrame (``pip install spo3[notebooks]`` brings pandas)."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("table_to_dataframe needs pandas: pip install 'spo3[notebooks]'") from exc
    return pd.DataFrame.from_records(rows, columns=list(COLUMNS))


def n_histogram(store: StateStore) -> dict[int, int]:
    """How many stored states get each rollout count n at the store's t (0 = truncated)."""
    counts = Counter(int(v) for v in store.rollouts([r["key"] for r in store.records()])) if len(store) else Counter()
    return dict(sorted(counts.items()))


def n_over_training(run: str | Path) -> tuple[list[int], dict[int, list[int]]]:
    """Per iteration, how many expansion decisions got each n (from ``metrics.jsonl``'s ``n_hist``).

    Returns ``(iterations, {n: counts aligned with iterations})``; n = 0 counts truncations."""
    records = [r for r in read_metrics(run) if "n_hist" in r]
    iterations = [r["iteration"] for r in records]
    ns = sorted({int(k) for r in records for k in r["n_hist"]})
    return iterations, {n: [int(r["n_hist"].get(str(n), 0)) for r in records] for n in ns}


def read_expansions(run: str | Path) -> list[dict[str, Any]]:
    """Every line of a run's ``expansions.jsonl`` (empty for runs without the trace: GRPO, GiGPO, or
    ``log.expansions=false``)."""
    path = Path(run) / EXPANSIONS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def state_trace(expansions: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The visits of the search to the state ``key`` (a full key or a unique prefix), in order: each expansion's
    iteration, task, S and n from the frozen store, children (key, action, reward, won, done) and the search order
    (child indices, best first: the first is followed, the others stacked for backtracking); see
    docs/state_store.md."""
    expansions = list(expansions)
    matches = {e["key"] for e in expansions if e["key"].startswith(key)}
    if len(matches) > 1:
        raise ValueError(f"state key prefix {key!r} is ambiguous ({len(matches)} states)")
    return [e for e in expansions if e["key"] in matches]


def format_run_summary(run: str | Path) -> str:
    """The end-of-run summary `spo3 train` prints: final evaluation success with its 95% interval, environment
    steps, unique states, truncations, and where the files are."""
    run = Path(run)
    records = read_metrics(run)
    last_eval = next((r for r in reversed(records) if "eval" in r), None)
    truncations = sum(r.get("truncations", 0) for r in records)
    last = records[-1] if records else {}
    lines = [f"run {run.name}: {last.get('algorithm', '?')} on {last.get('env', '?')}, {last.get('iteration', 0)} iterations"]
    if last_eval is not None:
        e = last_eval["eval"]
        lines.append(
            f"  final evaluation success {e['success_rate']:.3f} (95% CI {e['ci_low']:.3f}-{e['ci_high']:.3f}, "
            f"{e['successes']}/{e['episodes']} episodes, iteration {last_eval['iteration']})"
        )
    checkpoint = latest_checkpoint(run)
    truncated_now = n_histogram(StateStore.load(checkpoint)).get(0, 0) if checkpoint is not None else 0
    lines.append(
        f"  environment steps {last.get('env_steps_total', 0)}, unique states {last.get('unique_states', 0)}, "
        f"branches truncated (n = 0) {truncations}, states truncated at the end {truncated_now}"
    )
    files = [f"{run}/metrics.jsonl (and metrics.csv)"]
    if checkpoint is not None:
        files.append(f"{checkpoint}/ (state store: {StateStore.FILENAME}; `spo3 states {run}`)")
    if (run / EXPANSIONS_FILE).exists():
        files.append(f"{run / EXPANSIONS_FILE}")
    lines.append("  files: " + "\n         ".join(files))
    return "\n".join(lines)
