"""The one guard between model replies and environment engines: sanitised commands and bounded engine calls.

A model reply can be anything: lone surrogates, control characters, a literal backslash, megabytes of text. Before
this guard, ``<action>\\h</action>`` reached TextWorld's Z-machine interpreter (dumb-frotz) as a *meta-command*,
which it rejected and re-read forever inside C, printing ``DUMB-FROTZ: unknown command`` at ~100 MB/s; a lone
surrogate raised ``UnicodeEncodeError``. Two layers keep every engine safe, whichever family it is:

1. :func:`sanitize_command` (the primary defence, applied to every action before any engine sees it): characters
   that cannot be encoded are dropped, control and separator characters and backslashes become spaces, whitespace
   runs collapse to one space, and the command is cut to :data:`MAX_COMMAND_CHARS`. No action of any
   environment's grammar uses these characters, so admissible actions pass unchanged.
2. :class:`GuardedEnv` bounds every ``reset``, ``step``, ``restore`` and ``snapshot`` by ``timeout_s``. When a call
   times out or raises, the engine is recreated, the episode ends as a failure (a ``done``, not won transition
   with ``info["env_failure"]``), the failure is counted (:attr:`GuardedEnv.failures`, and per iteration by the
   rollout as ``env_failures``) and logged once per kind, and training continues. A failing ``reset`` is retried
   once on the fresh engine; if that fails too it raises :class:`ResetFailed`, and the rollout ends that task's
   episodes as failures (a root without a state) while the other tasks go on. Only when *every* reset of a batch
   fails does the rollout stop, with :class:`EnvUnavailable`: that is a broken environment, not a flaky episode.

What is guaranteed about the time bound:

* In the main thread, an ``ITIMER_REAL`` alarm raises :class:`EnvTimeout` inside the call after ``timeout_s``.
  Python-level engine code (WebShop, most of ALFWorld, TextWorld's logic) is interrupted there.
* Code spinning inside a C library without returning to Python (the frotz meta-command loop was one) cannot be
  interrupted in-process: the alarm's handler only runs once C returns. A watchdog thread bounds that case too:
  if a call has not returned after ``2 * timeout_s``, it prints one line naming the call and ends the process
  with exit code :data:`EXIT_ENGINE_HUNG`, rather than let it spin and flood the disk. Checkpoints are atomic and
  the run lock of a dead process is recovered, so ``spo3 train RUN --resume`` continues the run.
* Outside the main thread only the watchdog applies.
* In an environment worker process (``env.workers``, forked) both apply: the worker's watchdog ending the worker
  is a worker death, so the pool restarts it and the episode ends as a counted failure.

Snapshots of a recreated engine: each :class:`GuardedSnapshot` remembers the commands that led to it from its task's
reset. A snapshot taken before a recreation is restored by replaying them on the fresh engine (every environment
is deterministic), so search trees that share the environment survive another branch's failure.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from spo3.envs.base import EnvError, Observation, TextEnv, Transition

__all__ = [
    "EXIT_ENGINE_HUNG",
    "EnvTimeout",
    "EnvUnavailable",
    "GuardedEnv",
    "GuardedSnapshot",
    "MAX_COMMAND_CHARS",
    "ResetFailed",
    "sanitize_command",
]

MAX_COMMAND_CHARS = 1000
"""Longest command sent to an engine (the longest admissible action of the shipped games is under 100
characters; a WebShop search query is under 300)."""

EXIT_ENGINE_HUNG = 70
"""Process exit status when an engine call is stuck in native code past twice its timeout."""

_log = logging.getLogger(__name__)
_WHITESPACE = re.compile(r"\s+")
T = TypeVar("T")


def _is_unsafe(char: str) -> bool:
    # Categories C* (control, format, surrogate, private use, unassigned) and Z* other than the plain space.
    return char == "\\" or (char != " " and unicodedata.category(char)[0] in "CZ")


def sanitize_command(action: str) -> str:
    """The command an engine receives for ``action`` (rules in the module docstring); never raises on a str.

    Raises:
      TypeError: ``action`` is not a str.
    """
    if not isinstance(action, str):
        raise TypeError(f"action must be a str, got {type(action).__name__}")
    # Only the first few thousand characters can matter, so a 4 MB reply costs microseconds.
    text = action[: 4 * MAX_COMMAND_CHARS].encode("utf-8", "ignore").decode("utf-8")
    if not text.isascii() or not text.isprintable() or "\\" in text:
        text = "".join(" " if _is_unsafe(c) else c for c in text)
    return _WHITESPACE.sub(" ", text).strip()[:MAX_COMMAND_CHARS].rstrip()


class EnvTimeout(EnvError):
    """An engine call that did not return within its time bound."""


class ResetFailed(EnvError):
    """A reset that failed on a fresh engine too; the message names the environment, the task and the cause."""


class EnvUnavailable(EnvError):
    """Every reset of a batch failed: the environment cannot run at all (raised by the rollout)."""


def _raise_timeout(signum: int, frame: Any) -> None:
    raise EnvTimeout("timed out")


class _Watchdog:
    """A daemon thread that ends the process when an armed deadline has passed (module docstring). Arming and
    disarming are plain assignments, so that an engine call pays no lock and no thread switch; the thread looks
    every :attr:`POLL_S` seconds."""

    POLL_S = 0.05

    def __init__(self) -> None:
        self.armed: tuple[float, str] | None = None
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, what: str) -> None:
        self.armed = (time.monotonic() + seconds, what)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="spo3-env-watchdog", daemon=True)
            self._thread.start()

    def disarm(self) -> None:
        self.armed = None

    def forget_thread(self) -> None:
        """In a forked child: the parent's thread did not come along, so the next :meth:`arm` starts one."""
        self.armed, self._thread = None, None

    def _run(self) -> None:
        while True:
            time.sleep(self.POLL_S)
            armed = self.armed
            if armed is not None and time.monotonic() > armed[0]:
                sys.stderr.write(
                    f"spo3: {armed[1]} has not returned and cannot be interrupted (stuck in native code); "
                    f"exiting with status {EXIT_ENGINE_HUNG}. Resume the run with --resume.\n"
                )
                sys.stderr.flush()
                os._exit(EXIT_ENGINE_HUNG)


_WATCHDOG = _Watchdog()
# An environment worker (spo3.envs.workers) is forked, often after the trainer's own engine calls started the
# watchdog; without this the worker would believe it has one and a hang in native code would never end.
os.register_at_fork(after_in_child=_WATCHDOG.forget_thread)


def bounded_call(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """``fn()``, raising :class:`EnvTimeout` after ``timeout_s`` (main thread) and ending the process after twice
    that if the call cannot be interrupted (module docstring). In the main thread the guard's SIGALRM handler is
    installed on first use and stays (the guard owns SIGALRM)."""
    _WATCHDOG.arm(2 * timeout_s, what)
    try:
        if threading.current_thread() is not threading.main_thread():
            return fn()
        if signal.getsignal(signal.SIGALRM) is not _raise_timeout:
            signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        _WATCHDOG.disarm()


_Path = tuple  # (parent path or None, task id at the root / command below it): shared, O(1) per step


def _commands(path: _Path) -> tuple[str, list[str]]:
    commands = []
    while path[0] is not None:
        path, command = path
        commands.append(command)
    return path[1], commands[::-1]


@dataclass(frozen=True, eq=False)
class GuardedSnapshot:
    """A state of a :class:`GuardedEnv`: the engine's snapshot and the way back to it from the task's reset."""

    generation: int
    """Which engine instance took ``inner``."""
    inner: Any
    """The engine's snapshot (None for the state after a failure)."""
    path: _Path
    observation: Observation
    done: bool
    failure: str | None = None


class GuardedEnv(TextEnv):
    """A :class:`TextEnv` whose engine calls are sanitised and bounded (module docstring).

    Args:
      make: builds the engine; called at once and again after every failure. It may return the same instance
        every time (an environment built elsewhere): recreation then amounts to a fresh reset of it.
      timeout_s: bound of each engine call (the replay of a stale snapshot gets one bound per command).
      name: how log lines name the environment.
    """

    def __init__(self, make: Callable[[], TextEnv], timeout_s: float, name: str | None = None) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self._make, self.timeout_s = make, float(timeout_s)
        self.inner = make()
        self.name = name or type(self.inner).__name__
        self.family = self.inner.family  # type: ignore[misc]
        self.max_steps = self.inner.max_steps
        self.failures: Counter[str] = Counter()
        """Failures so far, by kind ("step timeout", "restore ValueError", ...)."""
        self._generation = 0
        self._path: _Path | None = None
        self._observation: Observation | None = None
        self._done = False
        self._failure: str | None = None

    # ----------------------------------------------------------------------------------- forwarded queries
    def tasks(self, split: str) -> list[str]:
        return self.inner.tasks(split)

    def task_type(self, task_id: str) -> str:
        return self.inner.task_type(task_id)

    def walkthrough(self, task_id: str) -> list[str] | None:
        return self.inner.walkthrough(task_id)

    def step_cost(self, task_id: str) -> float:
        return self.inner.step_cost(task_id)

    def close(self) -> None:
        self.inner.close()

    # ------------------------------------------------------------------------------------- guarded calls
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return bounded_call(fn, self.timeout_s, f"{self.name}.{what}")

    def _fail(self, what: str, exc: BaseException) -> str:
        """Count and (once per kind) log a failure, recreate the engine; return the failure's description."""
        kind = f"{what} {'timeout' if isinstance(exc, EnvTimeout) else type(exc).__name__}"
        self.failures[kind] += 1
        detail = f"{self.name}.{what}: {'no answer within %g s' % self.timeout_s if isinstance(exc, EnvTimeout) else repr(exc)[:300]}"
        if self.failures[kind] == 1:
            _log.warning("%s; the episode ends as a failure and the environment is recreated (further failures of "
                         "this kind are only counted, as env_failures in the metrics)", detail)
        try:
            self.inner.close()
        except Exception:  # noqa: BLE001 - a broken engine may fail to close; it is being replaced anyway
            pass
        self.inner = self._make()
        self._generation += 1
        return detail

    def reset(self, task_id: str) -> Observation:
        """Start ``task_id``; a failing reset is retried once on a fresh engine.

        Raises:
          ResetFailed: the retry failed too (both failures are counted; no episode is running afterwards).
        """
        self._path = self._observation = None
        try:
            obs = self._call("reset", lambda: self.inner.reset(task_id))
        except Exception as exc:  # noqa: BLE001
            self._fail("reset", exc)
            try:
                obs = self._call("reset", lambda: self.inner.reset(task_id))
            except Exception as again:  # noqa: BLE001
                detail = self._fail("reset", again)
                raise ResetFailed(f"{detail} (task {task_id!r}; it failed on a fresh engine too)") from again
        self._path, self._observation, self._done, self._failure = (None, task_id), obs, False, None
        return obs

    def step(self, action: str) -> Transition:
        """Send the sanitised ``action``; after a failure, a failed ``done`` transition (module docstring)."""
        if self._observation is None or self._path is None:
            raise EnvError("no episode is running: call reset() first")
        if self._done:
            raise EnvError("the episode has ended: reset() or restore() first")
        command = sanitize_command(action)
        before = self._observation
        if self._failure is None:
            try:
                tr = self._call("step", lambda: self.inner.step(command))
            except Exception as exc:  # noqa: BLE001
                self._failure = self._fail("step", exc)
            else:
                self._path, self._observation, self._done = (self._path, command), tr.observation, tr.done
                return tr
        self._observation = Observation("", (), before.task_id, before.task, before.step + 1)
        self._done = True
        return Transition(self._observation, 0.0, done=True, won=False, changed=False,
                          info={"env_failure": self._failure, "truncated": False})

    def snapshot(self) -> GuardedSnapshot:
        if self._observation is None or self._path is None:
            raise EnvError("no episode is running: call reset() first")
        inner = None
        if self._failure is None:
            try:
                inner = self._call("snapshot", self.inner.snapshot)
            except Exception as exc:  # noqa: BLE001
                self._failure = self._fail("snapshot", exc)
        return GuardedSnapshot(self._generation, inner, self._path, self._observation, self._done, self._failure)

    def restore(self, snapshot: GuardedSnapshot) -> Observation:
        """Return to ``snapshot``; a snapshot of an earlier engine is replayed (module docstring). If that fails,
        the next step ends the episode as a failure."""
        if not isinstance(snapshot, GuardedSnapshot):
            raise EnvError(f"GuardedEnv.restore: expected a GuardedSnapshot, got {type(snapshot).__name__}")
        self._path, self._observation, self._done = snapshot.path, snapshot.observation, snapshot.done
        self._failure = snapshot.failure
        if snapshot.failure is not None:
            return snapshot.observation
        try:
            if snapshot.generation == self._generation:
                self._call("restore", lambda: self.inner.restore(snapshot.inner))
            else:
                task_id, commands = _commands(snapshot.path)
                self._call("restore", lambda: self.inner.reset(task_id))
                for command in commands:
                    self._call("restore", lambda: self.inner.step(command))
        except Exception as exc:  # noqa: BLE001
            self._failure = self._fail("restore", exc)
        return snapshot.observation
