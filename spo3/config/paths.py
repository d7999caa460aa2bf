"""Where spo3 keeps derived data (generated games, converted weights, warm starts, translated planning tasks)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """spo3's cache root: ``$SPO3_CACHE``, else ``~/.cache/spo3`` (never inside the repository)."""
    root = os.environ.get("SPO3_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "spo3"
