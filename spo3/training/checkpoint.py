"""Checkpoints that resume a run exactly: policy, optimiser, every RNG, the state store and the counters.

Layout: ``<run>/checkpoints/iter_000004/`` with ``policy/`` (the policy's own files, e.g. safetensors),
``optimizer.pt``, ``rng.pt`` (torch generator states), ``state_store.sqlite``, ``trainer.json`` (iteration,
counters, task-sampler and numpy RNG states) and ``manifest.json`` (SHA-256 of every file, and the run's
fingerprint: the config fields that define the run, see :mod:`spo3.training.run_dir`). A checkpoint is written into
a temporary directory, every file and the directory are fsynced, and the directory is renamed into place (then its
parent is fsynced), so neither a crash nor a power cut leaves a half-written one; loading verifies that the manifest
lists exactly the files present (none outside the checkpoint) and every file's hash, and names the first problem.

Only directories named ``iter_NNNNNN`` whose manifest spo3 wrote count as checkpoints: a user's copy such as
``iter_best`` is never loaded and never pruned.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spo3.core.score import ScoreParams
from spo3.policies.base import Policy
from spo3.state.store import StateStore

__all__ = [
    "CheckpointError", "checkpoints", "latest_checkpoint", "load_checkpoint", "save_checkpoint", "verify_checkpoint",
]

FORMAT = "spo3.training.checkpoint"
VERSION = 1
NAME = re.compile(r"iter_(\d{6})")
"""The only directory names that are checkpoints."""
TMP_PREFIX = ".tmp-iter_"
"""Temporary directories of checkpoints being written (removed at the next start if a kill left one)."""
REQUIRED = ("optimizer.pt", "rng.pt", StateStore.FILENAME, "trainer.json")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or damaged."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != "manifest.json")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Checkpoint:
    directory: Path
    trainer: dict[str, Any]
    """Iteration, counters and JSON-able RNG states written by the trainer."""
    rng: dict[str, Any]
    """Torch RNG states (global and policy)."""

    def optimizer_state(self) -> dict[str, Any]:
        """The optimiser's whole state dict, as ``optimizer.state_dict()`` of one process returns it."""
        return torch.load(self.directory / "optimizer.pt", weights_only=True)


def save_checkpoint(
    run_dir: Path,
    iteration: int,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    store: StateStore,
    trainer_state: dict[str, Any],
    keep: int = 2,
    fingerprint: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of ``iteration`` (completed iterations) atomically and durably, and keep the ``keep``
    newest checkpoints (other directories are left alone)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter_{iteration:06d}"
    tmp = root / f"{TMP_PREFIX}{iteration:06d}-{os.getpid()}"
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
            "files": {p.relative_to(tmp).as_posix(): _sha256(p) for p in _files(tmp)},
            **({"fingerprint": fingerprint} if fingerprint is not None else {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        for path in [*_files(tmp), tmp / "manifest.json"]:
            _fsync(path)
        for directory in sorted({p.parent for p in _files(tmp)} | {tmp}, key=lambda d: -len(d.parts)):
            _fsync(directory)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoint directories of a run (``iter_NNNNNN`` with a spo3 manifest), oldest first; unverified."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.iterdir() if NAME.fullmatch(p.name) and p.is_dir()] if root.is_dir() else []
    return sorted(p for p in found if _written_by_spo3(p))


def _written_by_spo3(directory: Path) -> bool:
    try:
        return json.loads((directory / "manifest.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return True  # a damaged manifest: still ours to report (verify_checkpoint names the problem)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint directory of a run (None if there is none); unverified."""
    found = checkpoints(run_dir)
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(f"{manifest_path}: not a spo3 checkpoint of version {VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise CheckpointError(f"{manifest_path}: damaged manifest (it lists no files)")
    root = directory.resolve()
    for rel in files:
        if not isinstance(rel, str) or Path(rel).is_absolute() or not (root / rel).resolve().is_relative_to(root):
            raise CheckpointError(f"{manifest_path}: damaged manifest (entry {rel!r} lies outside the checkpoint)")
    listed = set(files)
    missing = [name for name in REQUIRED if name not in listed]
    if not any(rel.startswith("policy/") for rel in listed):
        missing.append("policy/")
    if missing:
        raise CheckpointError(f"{manifest_path}: partial manifest (it does not list {', '.join(missing)})")
    unlisted = sorted(p.relative_to(directory).as_posix() for p in _files(directory))
    unlisted = [rel for rel in unlisted if rel not in listed]
    if unlisted:
        raise CheckpointError(f"{manifest_path}: partial manifest (it does not list {', '.join(unlisted[:3])})")
    for rel, digest in files.items():
        path = directory / rel
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from checkpoint")
        if _sha256(path) != digest:
            raise CheckpointError(f"{path}: damaged (SHA-256 differs from the manifest)")
    return manifest


def load_checkpoint(
    directory: Path, policy: Policy, optimizer: torch.optim.Optimizer | None, score_params: ScoreParams | None = None,
) -> tuple[Checkpoint, StateStore]:
    """Verify and load a checkpoint into ``policy`` and ``optimizer`` (``None``: leave the optimiser state to the
    caller, :meth:`Checkpoint.optimizer_state`); return it and its state store (scoring with ``score_params``,
    default the ones it was saved with)."""
    directory = Path(directory)
    verify_checkpoint(directory)
    policy.load(directory / "policy")
    rng = torch.load(directory / "rng.pt", weights_only=True)
    policy.set_rng_state(rng["policy"])
    store = StateStore.load(directory / StateStore.FILENAME, score_params)
    checkpoint = Checkpoint(directory, json.loads((directory / "trainer.json").read_text()), rng)
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint.optimizer_state())
    return checkpoint, store
