"""The one interface every text environment implements.

An agent talks to a :class:`TextEnv` in text: :meth:`TextEnv.reset` starts a task and returns an
:class:`Observation`; :meth:`TextEnv.step` takes an action string and returns a :class:`Transition`. Because the
3SPO tree search branches from visited states, every environment can :meth:`TextEnv.snapshot` its state and
:meth:`TextEnv.restore` it exactly (same observation, same admissible actions, same future), without replaying
the episode from its reset.

Environments know nothing of policies or of the trainer: :mod:`spo3.envs.prompts` turns an
observation into an LLM prompt and :mod:`spo3.rollout` is where environments and policies meet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

__all__ = ["EnvError", "Observation", "TextEnv", "Transition"]


class EnvError(RuntimeError):
    """Misuse of an environment (stepping a finished episode, restoring a foreign snapshot, unknown task...)."""


@dataclass(frozen=True)
class Observation:
    """What the agent sees at one step."""

    text: str
    """The raw observation text, without prompt template or history: the "anchor" that state keys are made of."""
    admissible_actions: tuple[str, ...]
    """Actions the environment accepts here, in the environment's own (deterministic) order."""
    task_id: str
    """The task being played (an ALFWorld game path relative to the data root, a TextWorld game id, a WebShop
    goal id)."""
    task: str
    """The task description given to the agent ("put a clean apple in fridge.", a WebShop instruction)."""
    step: int
    """Number of actions taken in this episode before this observation (0 at reset)."""


@dataclass(frozen=True)
class Transition:
    """The result of one :meth:`TextEnv.step`."""

    observation: Observation
    """The observation after the action."""
    reward: float
    """Environment reward of this step: ``reward_scale * won`` (WebShop: ``reward_scale`` iff the purchase scored
    1.0), 0 otherwise."""
    done: bool
    """The episode has ended (won, lost, bought, or the step limit was reached)."""
    won: bool
    """The episode ended in success on this step."""
    changed: bool
    """Whether the action changed the environment's state. False for no-ops such as ALFWorld's
    "Nothing happens." or an unknown WebShop action; the 3SPO state key then stays the same."""
    info: Mapping[str, Any] = field(default_factory=dict)
    """Extra facts: ``truncated`` (ended by the step limit), ``score`` (WebShop task score in [0, 1]), ..."""


class TextEnv(ABC):
    """A text environment with exact snapshot/restore.

    Subclasses set :attr:`family` (which prompt templates and action parser apply) and :attr:`max_steps`, and
    must make :meth:`snapshot`/:meth:`restore` exact and cheap: restoring must not replay the episode from reset.
    A snapshot is an opaque, immutable value; it may be restored any number of times, in any order, into the
    environment instance that produced it (and, where documented, into another instance of the same kind).
    """

    family: ClassVar[str] = "generic"
    """Prompt/parse family: ``"alfworld"``, ``"webshop"`` or ``"textworld"``."""
    max_steps: int = 50
    """Episode step limit: the step that reaches it returns ``done=True`` (``won=False`` unless it won) and
    ``info["truncated"] = True``."""

    @abstractmethod
    def tasks(self, split: str) -> list[str]:
        """Task ids of a split in a deterministic, sorted order (seeded shuffles belong to the caller)."""

    @abstractmethod
    def task_type(self, task_id: str) -> str:
        """A coarse category for per-type metrics (ALFWorld: the six task types)."""

    @abstractmethod
    def reset(self, task_id: str) -> Observation:
        """Start an episode of ``task_id`` and return its first observation."""

    @abstractmethod
    def step(self, action: str) -> Transition:
        """Apply ``action``. Unknown or inadmissible actions are no-ops (``changed=False``), never errors.

        Raises:
          EnvError: if no episode is running or it has already ended.
        """

    @abstractmethod
    def snapshot(self) -> Any:
        """An opaque, immutable value from which :meth:`restore` recreates the current state exactly."""

    @abstractmethod
    def restore(self, snapshot: Any) -> Observation:
        """Return to the state captured by :meth:`snapshot` and return that state's observation."""

    asynchronous: ClassVar[bool] = False
    """True when :meth:`begin_reset` / :meth:`begin_transition` return before the work is done (environments in
    worker processes, :mod:`spo3.envs.workers`), so that a caller can start many and overlap them."""

    def begin_reset(self, task_id: str) -> Callable[[], tuple[Observation, Any]]:
        """Start :meth:`reset` then :meth:`snapshot`; the returned callable gives ``(observation, snapshot)``."""
        obs = self.reset(task_id)
        snapshot = self.snapshot()
        return lambda: (obs, snapshot)

    def flush(self) -> None:
        """Start the work begun by :meth:`begin_reset` / :meth:`begin_transition` that an asynchronous environment
        holds back to send at once (waiting for an answer starts it too). Here nothing is held back."""

    def begin_transition(self, snapshot: Any, action: str) -> Callable[[], tuple[Transition, Any]]:
        """Start :meth:`restore` of ``snapshot``, :meth:`step` of ``action`` and :meth:`snapshot` of the result; the
        returned callable gives ``(transition, new snapshot)``. Here the work is done at once."""
        self.restore(snapshot)
        transition = self.step(action)
        after = self.snapshot()
        return lambda: (transition, after)

    def walkthrough(self, task_id: str) -> list[str] | None:
        """An expert action sequence that wins ``task_id``, if the environment knows one."""
        return None

    def step_cost(self, task_id: str) -> float:
        """An estimate of the CPU time of one step of ``task_id``, relative to the environment's other tasks. A
        batch's tasks are dealt to the environment workers by it (:func:`spo3.envs.workers.worker_envs`), so that
        each worker gets about the same work in every round. 1.0 (all tasks alike) unless the environment knows
        better; a wrong estimate costs time, never a different result."""
        return 1.0

    def close(self) -> None:
        """Release resources (processes, files)."""
