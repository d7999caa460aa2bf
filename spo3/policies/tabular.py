"""A tabular softmax policy: one logit per (decision context, admissible action).

It isolates the algorithms from model capacity and makes many-seed experiments cheap, while going through the
same protocol, advantages and PPO loss as a language model (see :mod:`spo3.policies.softmax`). It cannot transfer
anything between states; :mod:`spo3.policies.linear` can.

Logits live in one preallocated parameter vector (``capacity`` entries, created lazily in order of first use),
so the optimiser state never has to be rebuilt; exceeding the capacity is a clear error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file, save_file

from spo3.policies.base import PolicyInput
from spo3.policies.softmax import ActionSoftmaxPolicy, format_action

__all__ = ["TabularPolicy", "format_action"]


class TabularPolicy(ActionSoftmaxPolicy):
    """Softmax over admissible actions per context.

    Args:
      seed: seed of the sampling generator.
      capacity: maximum number of (context, action) entries.
      init_logit: initial logit of every entry (0 gives a uniform policy).
    """

    FILES = ("tabular.safetensors", "tabular_index.json")

    def __init__(self, seed: int = 0, capacity: int = 1 << 18, init_logit: float = 0.0) -> None:
        if capacity < 1:
            raise ValueError(f"TabularPolicy: capacity={capacity} must be >= 1")
        self.capacity = capacity
        self.init_logit = float(init_logit)
        self.weights = torch.nn.Parameter(torch.full((capacity,), self.init_logit, dtype=torch.float64))
        self._reference = self.weights.detach().clone()
        self._index: dict[tuple[str, str], int] = {}
        self._agreed = 0  # rows [0, _agreed) have the same meaning on every training process (adopt_entries)
        self._generator = torch.Generator().manual_seed(seed)

    # ---------------------------------------------------------------- table
    def _rows(self, inp: PolicyInput) -> list[int]:
        if not inp.actions:
            raise ValueError(f"TabularPolicy: no admissible actions in context {inp.context!r}")
        rows = []
        for action in inp.actions:
            key = (inp.context, action)
            row = self._index.get(key)
            if row is None:
                if len(self._index) >= self.capacity:
                    raise RuntimeError(
                        f"TabularPolicy: capacity {self.capacity} exhausted; raise policy.tabular_capacity"
                    )
                row = self._index[key] = len(self._index)
            rows.append(row)
        return rows

    def _padded(self, table: torch.Tensor, inputs: Sequence[PolicyInput]) -> torch.Tensor:
        """``(B, A_max)`` logits with -inf beyond each input's action count."""
        rows = [self._rows(inp) for inp in inputs]
        width = max(len(r) for r in rows)
        index = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        valid = torch.tensor([[j < len(r) for j in range(width)] for r in rows])
        return table[index].masked_fill(~valid, -math.inf)

    def pending_entries(self) -> list[tuple[str, str]]:
        """The (context, action) entries created since the row layout was last agreed, in row order."""
        return list(self._index)[self._agreed :]

    def adopt_entries(self, entries: Sequence[tuple[str, str]]) -> None:
        """Renumber the rows created since the last agreement to follow ``entries`` (every training process's
        :meth:`pending_entries`, in rank order), so that all processes share one row layout and can average their
        gradients. Exact: rows created since the last update have never been stepped, so they hold the same value
        (and optimiser state) as every unused row, and only the index changes."""
        agreed = list(self._index)[: self._agreed]
        new = [e for e in dict.fromkeys(tuple(e) for e in entries) if e not in self._index or self._index[e] >= self._agreed]
        if set(self.pending_entries()) - set(new):
            raise ValueError("TabularPolicy.adopt_entries: the entries leave out some of this policy's new rows")
        if len(agreed) + len(new) > self.capacity:
            raise RuntimeError(f"TabularPolicy: capacity {self.capacity} exhausted; raise policy.tabular_capacity")
        self._index = {key: row for row, key in enumerate(agreed + new)}
        self._agreed = len(self._index)

    @property
    def logits(self) -> torch.nn.Parameter:
        """The table of logits, one per (context, action) entry (the parameter vector)."""
        return self.weights

    @property
    def size(self) -> int:
        """Number of (context, action) entries in use."""
        return len(self._index)

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        n = len(self._index)
        save_file(
            {"logits": self.weights.detach()[:n].clone(), "reference": self._reference[:n].clone()},
            str(directory / self.FILES[0]),
        )
        # The (context, action) tuples as they are (JSON writes them as lists): a list per entry, made at every
        # checkpoint, set off a full garbage collection every other checkpoint once the table was large (the soak).
        meta = {"capacity": self.capacity, "init_logit": self.init_logit, "index": list(self._index)}
        (directory / self.FILES[1]).write_text(json.dumps(meta))

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        try:
            tensors = load_file(str(directory / self.FILES[0]))
            meta = json.loads((directory / self.FILES[1]).read_text())
            index = {(c, a): i for i, (c, a) in enumerate(meta["index"])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{directory}: not a readable tabular policy ({exc})") from exc
        n = len(index)
        if tensors["logits"].shape != (n,) or n > self.capacity:
            raise ValueError(f"{directory}: tabular policy with {n} entries does not fit (capacity {self.capacity})")
        with torch.no_grad():
            self.weights.fill_(meta["init_logit"])
            self.weights[:n] = tensors["logits"]
            self._reference = torch.full_like(self._reference, meta["init_logit"])
            self._reference[:n] = tensors["reference"]
        self.init_logit = meta["init_logit"]
        self._index = index
        self._agreed = len(index)
