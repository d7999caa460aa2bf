"""The state-history store: per-state visit and success counts, and the trajectory counter t.

Design
------
* **In memory while training.** Counts live in two int64 numpy arrays indexed through a ``key -> row`` dict, so a
  vectorised lookup is one dict probe per key plus a numpy gather (millions of keys per second), and scoring a
  batch is a single call of :func:`spo3.core.score.state_score`.
* **Frozen snapshots.** :meth:`StateStore.snapshot` returns a read-only view used for scoring during an iteration;
  the trainer records trajectories into the live store only after the iteration, so no trajectory is scored with
  its own outcome. A snapshot copies the two count arrays and remembers how many rows existed; rows are append-only
  and never move, so it can share the key dict safely.
* **Lookups never create entries** (upstream used a ``defaultdict``; every query grew the table).
* **Persistence in SQLite.** One file in the run directory (``state_store.sqlite``), written to a temporary file
  and atomically renamed, so a crash never leaves it half-written. SQLite is in the standard library, is an
  embedded real database that users can query directly (``sqlite3 runs/x/state_store.sqlite "select ..."`` or
  ``pandas.read_sql``), has a stable, documented file format, and checks its own page structure. On top of that
  the file carries an application id, a schema version and a SHA-256 checksum of its contents, so a foreign,
  truncated or edited file is reported with its path instead of being loaded.

t is the 1-based count of trajectories folded in: a new store has t = 1 and :meth:`record_trajectory` adds one.
It is persisted as a field (upstream re-derived it from the counts on reload, so lambda jumped on restart).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from spo3.core.score import ScoreParams, num_rollouts, state_score

__all__ = ["SCHEMA_VERSION", "StateStore", "StateStoreError", "StoreSnapshot"]

SCHEMA_VERSION = 1
FORMAT = "spo3.state_store"
APPLICATION_ID = 0x53504F33  # "SPO3"


class StateStoreError(ValueError):
    """A state-store file that cannot be loaded: corrupt, foreign or from an unsupported schema."""


class _StoreView:
    """Read-only queries shared by the live store and its snapshots."""

    params: ScoreParams
    _index: dict[str, int]
    _n_total: np.ndarray
    _n_success: np.ndarray
    _size: int
    _t: int

    @property
    def t(self) -> int:
        """1-based count of trajectories folded into the statistics."""
        return self._t

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: object) -> bool:
        return -1 < self._index.get(key, -1) < self._size  # type: ignore[arg-type]

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """Row of each key, or -1 for keys this view has not seen. Shape ``(len(keys),)``."""
        rows = np.array(list(map(self._index.get, keys, itertools.repeat(-1))), dtype=np.int64)
        rows[rows >= self._size] = -1
        return rows

    def counts(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(n_total, n_success)`` for each key (zeros for unseen keys), each of shape ``(len(keys),)``."""
        rows = self.rows(keys)
        seen = rows >= 0
        safe = np.maximum(rows, 0)  # row 0 always exists in the arrays (zeros when the view is empty)
        return np.where(seen, self._n_total[safe], 0), np.where(seen, self._n_success[safe], 0)

    def scores(self, keys: Sequence[str]) -> np.ndarray:
        """State score S (Eq. 1) of each key at this view's t. Shape ``(len(keys),)``, float64."""
        n_total, n_success = self.counts(keys)
        return state_score(n_total, n_success, self._t, self.params)

    def rollouts(self, keys: Sequence[str]) -> np.ndarray:
        """Rollout count n = ceil(G_max * S) (Eq. 3, with the sibling floor) of each key. Shape ``(len(keys),)``, int64."""
        return num_rollouts(self.scores(keys), self.params.g_max, self.params.min_siblings)

    def all_scores(self) -> np.ndarray:
        """Scores of every stored state, in row order. Shape ``(len(self),)``."""
        return state_score(self._n_total[: self._size], self._n_success[: self._size], self._t, self.params)


class StoreSnapshot(_StoreView):
    """A frozen view of a :class:`StateStore` at one moment; later recordings do not show through.

    Besides the vectorised queries it answers one key at a time (:meth:`score_of`, :meth:`rollouts_of`,
    :meth:`counts_of`), as the tree search asks: the first such call scores every stored state at once with
    :func:`~spo3.core.score.state_score` and :func:`~spo3.core.score.num_rollouts` (plus one all-zero row that
    stands for unseen keys) and keeps the results as Python lists, so each later lookup is one dict probe and one
    list index: close to a plain dict's speed, against about 2e4/s through a one-key batch
    (``benchmarks/bench_core.py``). The snapshot is frozen, so the cached values stay exact; they are the very numbers
    the batched queries return (both apply the same element-wise formulas).
    """

    def __init__(self, store: "StateStore") -> None:
        self.params = store.params
        self._index = store._index  # append-only: rows >= _size are hidden
        self._size = store._size
        self._n_total = store._n_total[: max(self._size, 1)].copy()
        self._n_success = store._n_success[: max(self._size, 1)].copy()
        self._t = store._t
        self._single: tuple[list[float], list[int], list[int], list[int]] | None = None

    def _tables(self) -> tuple[list[float], list[int], list[int], list[int]]:
        """``(score, rollouts, n_total, n_success)`` per row, in row order, then one entry for unseen keys."""
        if self._single is None:
            n_total = np.append(self._n_total[: self._size], 0)
            n_success = np.append(self._n_success[: self._size], 0)
            scores = state_score(n_total, n_success, self._t, self.params)
            rollouts = num_rollouts(scores, self.params.g_max, self.params.min_siblings)
            self._single = (scores.tolist(), rollouts.tolist(), n_total.tolist(), n_success.tolist())
        return self._single

    def score_of(self, key: str) -> float:
        """State score S (Eq. 1) of one key; equals ``scores([key])[0]``."""
        row = self._index.get(key, -1)
        return (self._single or self._tables())[0][row if row < self._size else -1]  # -1: the unseen entry

    def rollouts_of(self, key: str) -> int:
        """Rollout count n = ceil(G_max * S) (Eq. 3) of one key; equals ``rollouts([key])[0]``."""
        row = self._index.get(key, -1)
        return (self._single or self._tables())[1][row if row < self._size else -1]

    def counts_of(self, key: str) -> tuple[int, int]:
        """``(n_total, n_success)`` of one key (zeros if unseen); equals ``counts([key])`` unpacked."""
        row = self._index.get(key, -1)
        tables = self._single or self._tables()
        row = row if row < self._size else -1
        return tables[2][row], tables[3][row]


class StateStore(_StoreView):
    """Per-state ``N_total`` / ``N_success`` statistics and the trajectory counter ``t``.

    Args:
      params: score hyper-parameters used by :meth:`scores` and :meth:`rollouts`.
      keep_anchors: remember the first anchor text seen for each key (for inspection and export).
    """

    FILENAME = "state_store.sqlite"

    def __init__(self, params: ScoreParams | None = None, keep_anchors: bool = True) -> None:
        self.params = params or ScoreParams()
        self.keep_anchors = keep_anchors
        self._index: dict[str, int] = {}
        self._n_total = np.zeros(1024, dtype=np.int64)
        self._n_success = np.zeros(1024, dtype=np.int64)
        self._anchors: list[str | None] = []
        self._size = 0
        self._t = 1

    # ------------------------------------------------------------------ updates
    def _grow(self, need: int) -> None:
        cap = len(self._n_total)
        if need <= cap:
            return
        new_cap = max(need, 2 * cap)
        for name in ("_n_total", "_n_success"):
            arr = np.zeros(new_cap, dtype=np.int64)
            arr[:cap] = getattr(self, name)
            setattr(self, name, arr)

    def record_trajectory(self, keys: Iterable[str], won: bool, anchors: Iterable[str | None] | None = None) -> None:
        """Fold one finished trajectory into the statistics and advance t by one.

        Each distinct key of the trajectory is counted once (a state revisited within one trajectory is one
        visit); pass the terminal state too.

        Args:
          keys: the state keys of the trajectory, s_0 .. s_T (terminal included).
          won: whether the trajectory succeeded.
          anchors: optional anchor texts aligned with ``keys``; the first one seen for a key is kept.
        """
        keys = list(keys)
        texts = list(anchors) if anchors is not None else [None] * len(keys)
        if len(texts) != len(keys):
            raise ValueError(f"record_trajectory: {len(keys)} keys but {len(texts)} anchors")
        distinct: dict[str, str | None] = {}
        for key, text in zip(keys, texts):
            distinct.setdefault(key, text)
        index = self._index
        self._grow(self._size + len(distinct))
        rows = []
        for key, text in distinct.items():
            if not isinstance(key, str):
                raise TypeError(f"record_trajectory: state keys must be str, got {type(key).__name__}")
            row = index.get(key)
            if row is None:
                row = index[key] = self._size
                self._anchors.append(text if self.keep_anchors else None)
                self._size += 1
            rows.append(row)
        rows_arr = np.asarray(rows, dtype=np.int64)
        self._n_total[rows_arr] += 1
        if won:
            self._n_success[rows_arr] += 1
        self._t += 1

    def snapshot(self) -> StoreSnapshot:
        """A frozen view for scoring during an iteration (see the module docstring)."""
        return StoreSnapshot(self)

    # ------------------------------------------------------------------ export
    def anchor(self, key: str) -> str | None:
        """The first anchor text recorded for ``key`` (``None`` if unknown or not kept)."""
        row = self._index.get(key)
        return None if row is None else self._anchors[row]

    def records(self) -> list[dict[str, Any]]:
        """One plain dict per state, in insertion order: key, n_total, n_success, score, anchor."""
        scores = self.all_scores()
        return [
            {
                "key": key,
                "n_total": int(self._n_total[row]),
                "n_success": int(self._n_success[row]),
                "score": float(scores[row]),
                "anchor": self._anchors[row],
            }
            for key, row in self._index.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        """The whole store as plain Python data (no pandas needed)."""
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "t": self._t,
            "params": self.params.to_dict(),
            "states": self.records(),
        }

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write one row per state (key, n_total, n_success, score, anchor) to ``path``."""
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["key", "n_total", "n_success", "score", "anchor"])
            writer.writeheader()
            writer.writerows(self.records())
        return path

    def to_dataframe(self):
        """A pandas DataFrame with one row per state (needs pandas, which spo3 does not require)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("StateStore.to_dataframe needs pandas; use to_dict() or to_csv() without it") from exc
        return pd.DataFrame.from_records(self.records(), columns=["key", "n_total", "n_success", "score", "anchor"])

    def summary(self, high_score: float = 0.5) -> dict[str, float]:
        """Aggregate statistics: unique states, mean score, share of states with S >= ``high_score``, share
        truncated (S == 0), and t."""
        scores = self.all_scores()
        n = len(scores)
        return {
            "unique_states": n,
            "t": self._t,
            "mean_score": float(scores.mean()) if n else float("nan"),
            "high_score_share": float((scores >= high_score).mean()) if n else float("nan"),
            "truncated_share": float((scores == 0).mean()) if n else float("nan"),
        }

    # ------------------------------------------------------------------ persistence
    def _checksum(self) -> str:
        h = hashlib.sha256()
        h.update(f"{FORMAT}:{SCHEMA_VERSION}:{self._t}:{self._size}\n".encode())
        for key, row in self._index.items():
            h.update(f"{key},{self._n_total[row]},{self._n_success[row]}\n".encode())
        return h.hexdigest()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the store to ``path`` (a file, or a directory that gets ``state_store.sqlite``) atomically."""
        path = Path(path)
        if path.is_dir():
            path = path / self.FILENAME
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            self._write_sqlite(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def _write_sqlite(self, tmp: Path) -> None:
        con = sqlite3.connect(tmp)
        try:
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            con.execute(
                "CREATE TABLE states (row INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL,"
                " n_total INTEGER NOT NULL CHECK (n_total >= 0),"
                " n_success INTEGER NOT NULL CHECK (n_success >= 0 AND n_success <= n_total), anchor TEXT)"
            )
            meta = {
                "format": FORMAT,
                "schema_version": str(SCHEMA_VERSION),
                "t": str(self._t),
                "n_states": str(self._size),
                "params": json.dumps(self.params.to_dict(), sort_keys=True),
                "checksum": self._checksum(),
            }
            con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            con.executemany(
                "INSERT INTO states VALUES (?, ?, ?, ?, ?)",
                (
                    (row, key, int(self._n_total[row]), int(self._n_success[row]), self._anchors[row])
                    for key, row in self._index.items()
                ),
            )
            con.commit()
        finally:
            con.close()

    @classmethod
    def load(cls, path: str | os.PathLike, params: ScoreParams | None = None) -> "StateStore":
        """Read a store written by :meth:`save`.

        Args:
          path: the file, or a run directory holding ``state_store.sqlite``.
          params: score parameters to use; default the ones saved in the file.

        Raises:
          FileNotFoundError: nothing at ``path``.
          StateStoreError: the file is not an SQLite database, not a spo3 state store, from a newer schema, or
            its contents do not match their checksum (corrupt or edited).
        """
        path = Path(path)
        if path.is_dir():
            path = path / cls.FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"state store file not found: {path}")
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StateStoreError(f"{path}: cannot open as SQLite database ({exc})") from exc
        try:
            try:
                app_id = con.execute("PRAGMA application_id").fetchone()[0]
                version = con.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise StateStoreError(f"{path}: not a spo3 state store (not an SQLite database: {exc})") from exc
            if app_id != APPLICATION_ID:
                raise StateStoreError(f"{path}: not a spo3 state store (foreign SQLite file, application_id={app_id})")
            if version != SCHEMA_VERSION:
                raise StateStoreError(
                    f"{path}: state store schema version {version} is not supported (this spo3 reads {SCHEMA_VERSION})"
                )
            try:
                if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    raise StateStoreError(f"{path}: corrupt state store (SQLite integrity check failed)")
                meta = dict(con.execute("SELECT name, value FROM meta").fetchall())
                rows = con.execute("SELECT row, key, n_total, n_success, anchor FROM states ORDER BY row").fetchall()
            except sqlite3.DatabaseError as exc:
                raise StateStoreError(f"{path}: corrupt state store ({exc})") from exc
        finally:
            con.close()
        if meta.get("format") != FORMAT:
            raise StateStoreError(f"{path}: not a spo3 state store (format={meta.get('format')!r})")
        try:
            saved_params = ScoreParams(**json.loads(meta["params"]))
            store = cls(params or saved_params)
            store._t = int(meta["t"])
            n = len(rows)
            store._grow(n)
            for i, (row, key, n_total, n_success, anchor) in enumerate(rows):
                if row != i:
                    raise StateStoreError(f"{path}: corrupt state store (rows are not contiguous at {i})")
                store._index[key] = i
                store._n_total[i] = n_total
                store._n_success[i] = n_success
                store._anchors.append(anchor)
            store._size = n
        except (KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, StateStoreError):
                raise
            raise StateStoreError(f"{path}: corrupt state store metadata ({exc})") from exc
        if int(meta["n_states"]) != n or store._checksum() != meta["checksum"]:
            raise StateStoreError(f"{path}: corrupt state store (contents do not match the stored checksum)")
        return store
