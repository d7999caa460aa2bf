"""Run records: the per-iteration metrics files a run writes, and reading them back as curves.

Notebooks and ``paper_figures/`` read logged runs through :func:`read_metrics` and aggregate them with
:mod:`spo3.metrics.stats`, never their own way.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["MetricsLogger", "common_budget", "curves_on_grid", "flatten", "read_metrics", "run_records", "series"]


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to ``a/b`` keys, keeping only scalars (for CSV and scalar sinks)."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "/"))
        elif isinstance(v, (bool, int, float, str)) or v is None:
            out[key] = v
        elif isinstance(v, (np.integer, np.floating)):
            out[key] = v.item()
    return out


class MetricsLogger:
    """Appends one record per iteration to ``metrics.jsonl`` and one row to ``metrics.csv`` (flattened scalars; a
    record that brings a new column rewrites the CSV once, with the widened header, from ``metrics.jsonl``).

    The records are not kept in memory (``metrics.jsonl`` is their one copy): a long run's logger stays the same
    size (the soak, benchmarks/soak.py, found ~6 KB held per iteration, without bound).

    A torn last line of an existing ``metrics.jsonl`` (a kill mid-write) is dropped with a message.

    Args:
      run_dir: the run directory.
      tensorboard: also write TensorBoard scalars (needs the ``tensorboard`` package).
      wandb: also log to Weights & Biases (needs ``wandb``; uses the usual WANDB_* environment variables).
      wandb_config: the run's configuration, sent to W&B.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = False, wandb: bool = False, wandb_config: dict | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.csv = self.run_dir / "metrics.csv"
        self._columns: list[str] | None = None  # the CSV header as written; None: not written by this logger yet
        if self.jsonl.exists():
            raw = self.jsonl.read_bytes()
            records = read_metrics(self.run_dir, drop_torn_tail=True)
            if raw.count(b"\n") != len(records) or not raw.endswith(b"\n"):
                self._rewrite(records)  # never append after a torn line
        self._tb = self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ModuleNotFoundError(
                    "log.tensorboard=true needs the tensorboard package: pip install 'spo3[tracking]' "
                    "(or set log.tensorboard=false)", name="tensorboard",
                ) from exc
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError as exc:
                raise ModuleNotFoundError(
                    "log.wandb=true needs the wandb package: pip install 'spo3[tracking]' (or set log.wandb=false)",
                    name="wandb",
                ) from exc
            self._wandb = wandb_module.init(dir=str(self.run_dir), config=wandb_config, name=self.run_dir.name)

    def truncate(self, after_iteration: int) -> None:
        """Drop records of iterations > ``after_iteration`` (used when resuming from a checkpoint)."""
        records = read_metrics(self.run_dir) if self.jsonl.exists() else []
        self._rewrite([r for r in records if r["iteration"] <= after_iteration])

    def write(self, record: Mapping[str, Any]) -> None:
        with self.jsonl.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        row = flatten(json.loads(json.dumps(record)))  # the plain-JSON form, as read_metrics returns it
        if self._columns is None or any(k not in self._columns for k in row) or not self.csv.exists():
            self._rewrite(read_metrics(self.run_dir), jsonl=False, lead=list(row))
        else:
            with self.csv.open("a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=self._columns).writerow(row)
        step = int(record.get("env_steps_total", record.get("iteration", 0)))
        scalars = {k: v for k, v in flatten(record).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def _rewrite(self, records: list[dict[str, Any]], jsonl: bool = True, lead: list[str] | None = None) -> None:
        """Rewrite the files from ``records``. CSV columns: those already written, then ``lead`` (the new record's,
        in its own order: the file's records have sorted keys), then any other."""
        if jsonl:
            tmp = self.jsonl.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records), encoding="utf-8")
            os.replace(tmp, self.jsonl)
        rows = [flatten(r) for r in records]
        columns = list(dict.fromkeys([*(self._columns or []), *(lead or []), *(k for row in rows for k in row)]))
        tmp = self.csv.with_suffix(".csv.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv)
        self._columns = columns

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(run_dir: str | Path, drop_torn_tail: bool = False, say=print) -> list[dict[str, Any]]:
    """All iteration records of a run, in order, with a clear error for a damaged line.

    Args:
      run_dir: the run directory.
      drop_torn_tail: drop a damaged *last* line (a write cut short by a kill) with a message through ``say``
        instead of raising; a damaged line before intact ones still raises.
    """
    path = Path(run_dir) / "metrics.jsonl"
    lines = path.read_bytes().split(b"\n")
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = exc.msg if isinstance(exc, json.JSONDecodeError) else "invalid UTF-8"
            if drop_torn_tail and not any(rest.strip() for rest in lines[lineno:]):
                say(f"{path}:{lineno}: dropped a torn last record ({problem}), left by an interrupted write")
                break
            raise ValueError(f"{path}:{lineno}: damaged metrics record ({problem})") from None
    return records


def run_records(run: str | Path | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A run's iteration records: read from a run directory, or given as they are (e.g. from a committed log)."""
    return read_metrics(run) if isinstance(run, (str, os.PathLike)) else list(run)


def series(records: Iterable[Mapping[str, Any]], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays of the records that have ``y`` (nested keys as ``a/b``)."""
    xs, ys = [], []
    for r in records:
        flat = flatten(r)
        if y in flat and flat[y] is not None and x in flat:
            xs.append(flat[x])
            ys.append(flat[y])
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def curves_on_grid(
    runs: Sequence[str | Path | Sequence[Mapping[str, Any]]],
    x: str = "env_steps_total",
    y: str = "eval/success_rate",
    points: int = 50,
    end: float | None = None,
    hold_final: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Each run's ``y`` against ``x`` (run directories or record lists), linearly interpolated onto a common grid
    from 0 to ``end``. Training logs an evaluation at x = 0.

    By default ``end`` is the smallest final ``x`` of the runs, so that no run is extrapolated. With
    ``hold_final`` it is the largest, and a run that finished earlier holds its final value from there on: the
    curve's last point is then the mean of every run's final value (what a summary reports), instead of stopping
    silently where the shortest run stopped.

    Returns:
      ``(grid, curves)`` with shapes ``(points,)`` and ``(n_runs, points)``.
    """
    data = [series(run_records(d), x, y) for d in runs]
    data = [(xs, ys) for xs, ys in data if len(xs)]
    if not data:
        raise ValueError(f"no run has both {x!r} and {y!r}")
    last = (max if hold_final else min)(xs[-1] for xs, _ in data)
    if end is not None and end > last:
        raise ValueError(f"end={end} lies beyond the {'longest' if hold_final else 'shortest'} run ({last} {x})")
    grid = np.linspace(0.0, last if end is None else end, points)
    curves = np.stack([np.interp(grid, xs, ys) for xs, ys in data])  # constant before the first, after the last point
    return grid, curves


def common_budget(
    groups: Mapping[str, Sequence[str | Path | Sequence[Mapping[str, Any]]]], x: str = "env_steps_total", y: str = "eval/success_rate"
) -> float:
    """The largest ``x`` every run of every group reached (where methods can be compared at equal cost)."""
    return min(series(run_records(d), x, y)[0][-1] for runs in groups.values() for d in runs)
