"""Aligned plain-text tables, as the command line and the notebooks print them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

__all__ = ["Column", "text_table"]


@dataclass(frozen=True)
class Column:
    """One column of :func:`text_table`."""

    header: str
    cell: Callable[[Mapping[str, Any]], str]
    """A row's cell, formatted as text."""
    width: int = 0
    """Cells are padded to this width (0: no padding, for a last free-text column)."""
    right: bool = False
    """Right-align (numbers) instead of left-align."""


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A header line and one line per row, cells padded to their column's width and separated by one space."""

    def line(cells: Sequence[str]) -> str:
        return " ".join(f"{c:>{col.width}}" if col.right else f"{c:<{col.width}}" for c, col in zip(cells, columns)).rstrip()

    return "\n".join([line([c.header for c in columns])] + [line([c.cell(r) for c in columns]) for r in rows])
