"""A run directory's life cycle: one writer at a time, leftovers cleaned, and a resume that never dead-ends and
never continues someone else's run.

* **One writer.** :class:`RunLock` holds an exclusive ``flock`` on ``<run>/.lock`` (which names the holder's PID) for
  the whole of training. A second process on the same directory stops at once with a message naming that PID. The
  kernel releases the lock when its holder dies, so a lock file left by a killed process is simply taken over.
* **Leftovers.** Temporary checkpoint directories that a kill left behind are removed at the next start (under
  the lock, so never while another process writes them).
* **Where to resume** (:func:`resume_point`): no checkpoint at all (a crash before the first one, or a fresh
  directory) starts the run from the beginning and says so; otherwise the newest *intact* checkpoint is used, and
  every newer one that is damaged is named with the reason and set aside as ``iter_NNNNNN.damaged``.
* **Whose run.** Each checkpoint carries the run's :func:`fingerprint`: the fields that define the run (algorithm,
  score parameters, environment and task list, policy, seed). Resuming with a different fingerprint is refused with
  one line naming the fields that differ, unless each of them is passed to ``--allow-config-change``; allowed
  changes are printed, appended to ``<run>/config_changes.jsonl`` and take effect (the state store is reloaded
  with the new score parameters).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from spo3.config import TrainConfig
from spo3.training.checkpoint import TMP_PREFIX, CheckpointError, checkpoints, verify_checkpoint

__all__ = [
    "ResumeError", "ResumePoint", "RunLock", "RunLockedError", "fingerprint", "log_config_changes", "remove_leftovers",
    "resume_point",
]

FINGERPRINT_FIELDS = (
    "algo.name", "algo.alpha", "algo.xi", "algo.zeta", "algo.eps", "algo.g_max", "algo.omega_k", "algo.state_scope",
    "env.name", "env.train_split", "policy.kind", "policy.model", "policy.lora_rank", "seed",
)
"""Config fields of the fingerprint; ``env.tasks`` (a digest of the training task list) completes it."""


class RunLockedError(RuntimeError):
    """Another live process holds the run directory."""


class ResumeError(RuntimeError):
    """A run that cannot be resumed as asked (the message says why and what to do)."""


class RunLock:
    """An exclusive lock on a run directory for the lifetime of one training process (module docstring)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = self.path.read_text().strip() or "unknown"
            raise RunLockedError(
                f"{self.path.parent} is in use by process {holder} (lock {self.path}); wait for it to finish or "
                "stop it, or choose another log.run_name"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (its PID is stale, which is harmless)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_leftovers(run_dir: Path, say: Callable[[str], None] = print) -> list[Path]:
    """Delete temporary checkpoint directories left by a killed process (call only while holding the lock)."""
    root = Path(run_dir) / "checkpoints"
    leftovers = sorted(root.glob(f"{TMP_PREFIX}*")) if root.is_dir() else []
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    if leftovers:
        say(f"removed {len(leftovers)} unfinished checkpoint director{'y' if len(leftovers) == 1 else 'ies'} "
            f"left by an interrupted run: {', '.join(p.name for p in leftovers)}")
    return leftovers


def fingerprint(cfg: TrainConfig, train_tasks: Sequence[str]) -> dict[str, Any]:
    """The fields that define a run (module docstring), as ``{dotted field: value}``."""
    out: dict[str, Any] = {}
    for name in FINGERPRINT_FIELDS:
        value: Any = cfg
        for part in name.split("."):
            value = getattr(value, part)
        out[name] = value
    out["env.tasks"] = hashlib.sha256("\n".join(train_tasks).encode()).hexdigest()[:16]
    return json.loads(json.dumps(out))  # the form it has when read back from a manifest


@dataclass
class ResumePoint:
    """Where a run (re)starts."""

    checkpoint: Path | None
    """The checkpoint to load (None: start from the beginning)."""
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Allowed fingerprint changes, ``{field: (checkpoint's value, new value)}``."""


def _differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def resume_point(
    run_dir: Path,
    current: dict[str, Any],
    which: str = "auto",
    allow_config_change: Sequence[str] = (),
    say: Callable[[str], None] = print,
) -> ResumePoint:
    """Choose the checkpoint to resume ``run_dir`` from (module docstring).

    Args:
      run_dir: the run directory.
      current: the fingerprint of the configuration being resumed.
      which: ``"auto"`` (the newest intact checkpoint) or a checkpoint directory name or path.
      allow_config_change: fingerprint fields that may differ from the checkpoint's.
      say: where progress messages go.

    Raises:
      ResumeError: a foreign checkpoint, a named checkpoint that is damaged, or no intact checkpoint at all.
    """
    run_dir = Path(run_dir)
    found = checkpoints(run_dir)
    if which != "auto":
        named = Path(which) if Path(which).is_dir() else run_dir / "checkpoints" / which
        if named.resolve() not in {p.resolve() for p in found}:
            raise ResumeError(f"--resume {which}: not a checkpoint of {run_dir} (have: {[p.name for p in found]})")
        found = [p for p in found if p.resolve() == named.resolve()]
    if not found:
        say(f"--resume: no checkpoint in {run_dir / 'checkpoints'}; starting the run from the beginning")
        return ResumePoint(None)
    skipped = []
    for candidate in reversed(found):
        try:
            manifest = verify_checkpoint(candidate)
        except CheckpointError as exc:
            skipped.append((candidate, str(exc)))
            continue
        break
    else:
        reasons = "; ".join(reason for _, reason in skipped)
        raise ResumeError(
            f"--resume: no intact checkpoint in {run_dir / 'checkpoints'} ({reasons}). Remove the checkpoints "
            "directory to start the run again from the beginning"
        )
    for path, reason in skipped:
        aside = path.with_name(f"{path.name}.damaged")
        if aside.exists():
            aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        path.rename(aside)
        say(f"--resume: skipped {path.name}: {reason} (kept as {aside.name})")
    old = manifest.get("fingerprint")
    changes: dict[str, tuple[Any, Any]] = {}
    if old is None:
        say(f"--resume: {candidate.name} predates run fingerprints; cannot check that it belongs to this run")
    else:
        changes = _differences(old, current)
        refused = [k for k in changes if k not in allow_config_change]
        if refused:
            listed = ", ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
            raise ResumeError(
                f"--resume refused: {candidate} belongs to a different run ({listed}); pass "
                f"--allow-config-change {' '.join(refused)} to resume it with these changes"
            )
        for k, (before, after) in changes.items():
            say(f"--resume: {k} changes from {before!r} to {after!r} (allowed by --allow-config-change)")
    if which == "auto" or skipped:
        say(f"--resume: continuing from {candidate.name}")
    return ResumePoint(candidate, changes)


def log_config_changes(run_dir: Path, checkpoint: Path, changes: dict[str, tuple[Any, Any]]) -> None:
    """Append allowed fingerprint changes to ``<run>/config_changes.jsonl`` (one record per resume)."""
    if not changes:
        return
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "checkpoint": checkpoint.name,
              "changes": {k: {"from": a, "to": b} for k, (a, b) in changes.items()}}
    with (Path(run_dir) / "config_changes.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
