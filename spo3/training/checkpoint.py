"""Checkpoints that resume a run exactly: policy, optimiser, every RNG, the state store and the counters.

Layout: ``<run>/checkpoints/iter_000004/`` with ``policy/`` (the policy's own files, e.g. safetensors),
``optimizer.pt``, ``rng.pt`` (torch generator states), ``state_store.sqlite``, ``trainer.json`` (iteration,
counters, task-sampler and numpy RNG states) and ``manifest.json`` (SHA-256 of every file). A checkpoint is
written into a temporary directory and renamed into place, so a crash never leaves a half-written one; loading
verifies every file against the manifest and names the first damaged file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spo3.policies.base import Policy
from spo3.state.store import StateStore

__all__ = ["CheckpointError", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = "spo3.training.checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or damaged."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")


@dataclass
class Checkpoint:
    directory: Path
    trainer: dict[str, Any]
    """Iteration, counters and JSON-able RNG states written by the trainer."""
    rng: dict[str, Any]
    """Torch RNG states (global and policy)."""


def save_checkpoint(
    run_dir: Path,
    iteration: int,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    store: StateStore,
    trainer_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write the checkpoint of ``iteration`` (completed iterations) atomically and keep the ``keep`` newest."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter_{iteration:06d}"
    tmp = root / f".tmp-iter_{iteration:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        policy.save(tmp / "policy")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"torch": torch.get_rng_state(), "policy": policy.rng_state()}, tmp / "rng.pt")
        store.save(tmp / StateStore.FILENAME)
        (tmp / "trainer.json").write_text(json.dumps({"iteration": iteration, **trainer_state}, sort_keys=True))
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "iteration": iteration,
            "files": {str(p.relative_to(tmp)): _sha256(p) for p in _files(tmp)},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in sorted(root.glob("iter_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint directory of a run (None if there is none)."""
    found = sorted((Path(run_dir) / "checkpoints").glob("iter_*"))
    return found[-1] if found else None


def verify_checkpoint(directory: Path) -> dict[str, Any]:
    """Check the manifest and every file's SHA-256; return the manifest or raise naming the problem."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: not a checkpoint (no manifest.json)") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{manifest_path}: damaged manifest ({exc.msg})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(f"{manifest_path}: not a spo3 checkpoint of version {VERSION}")
    for rel, digest in manifest["files"].items():
        path = directory / rel
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from checkpoint")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path}: damaged (SHA-256 differs from the manifest)")
    return manifest


def load_checkpoint(directory: Path, policy: Policy, optimizer: torch.optim.Optimizer | None) -> tuple[Checkpoint, StateStore]:
    """Verify and load a checkpoint into ``policy`` and ``optimizer``; return it and its state store."""
    directory = Path(directory)
    verify_checkpoint(directory)
    policy.load(directory / "policy")
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=True))
    rng = torch.load(directory / "rng.pt", weights_only=True)
    policy.set_rng_state(rng["policy"])
    store = StateStore.load(directory / StateStore.FILENAME)
    trainer = json.loads((directory / "trainer.json").read_text())
    return Checkpoint(directory, trainer, rng), store
