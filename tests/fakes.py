"""Scripted stand-ins for multi-turn tests: a hand-built deterministic environment and a scripted policy."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from spo3.envs.base import EnvError, Observation, TextEnv, Transition
from spo3.policies.base import Policy, PolicyInput, Response, TokenScores
from spo3.policies.tabular import TabularPolicy, format_action

NOOP = "Nothing happens."


class GraphEnv(TextEnv):
    """States are names, actions are edges; unknown actions are no-ops; reaching a goal wins.

    Args:
      graph: ``{state: {action: next_state}}``.
      starts: ``{task_id: start_state}``.
      goals: winning states.
      max_steps: episode step limit.
    """

    family = "alfworld"

    def __init__(self, graph: Mapping[str, Mapping[str, str]], starts: Mapping[str, str], goals: Iterable[str], max_steps: int = 10):
        self.graph, self.starts, self.goals, self.max_steps = graph, dict(starts), set(goals), max_steps
        self._state: tuple[str, str, int, bool, str] | None = None  # task, state, step, done, last text
        self.resets = self.restores = self.steps = 0

    @staticmethod
    def text(state: str) -> str:
        return f"You are in {state}."

    def tasks(self, split: str) -> list[str]:
        return sorted(self.starts)

    def task_type(self, task_id: str) -> str:
        return "graph"

    def _obs(self) -> Observation:
        task, state, step, _, text = self._state  # type: ignore[misc]
        return Observation(text, tuple(sorted(self.graph.get(state, {}))), task, "reach a goal", step)

    def reset(self, task_id: str) -> Observation:
        self.resets += 1
        self._state = (task_id, self.starts[task_id], 0, False, self.text(self.starts[task_id]))
        return self._obs()

    def step(self, action: str) -> Transition:
        if self._state is None or self._state[3]:
            raise EnvError("step on a finished or unstarted episode")
        self.steps += 1
        task, state, step, _, _ = self._state
        nxt = self.graph.get(state, {}).get(action)
        changed = nxt is not None and nxt != state
        new_state = nxt if nxt is not None else state
        text = self.text(new_state) if nxt is not None else NOOP
        won = new_state in self.goals
        limit = step + 1 >= self.max_steps
        done = won or limit
        self._state = (task, new_state, step + 1, done, text)
        return Transition(self._obs(), float(won), done, won, changed, {"truncated": limit and not won})

    def snapshot(self) -> Any:
        return self._state

    def restore(self, snapshot: Any) -> Observation:
        self.restores += 1
        self._state = snapshot
        return self._obs()


class ScriptedPolicy(Policy):
    """Replies with ``choose(input, i)`` as the i-th of the n samples for an input; records every call."""

    def __init__(self, choose: Callable[[PolicyInput, int], str]):
        self.choose = choose
        self.calls: list[list[tuple[str, int]]] = []
        self._generator = torch.Generator()

    def sample(self, inputs: Sequence[PolicyInput], n: Sequence[int], temperature: float = 1.0, generators=None) -> list[list[Response]]:
        self.calls.append([(inp.prompt, k) for inp, k in zip(inputs, n)])
        out = []
        for inp, k in zip(inputs, n):
            out.append([Response(format_action(a := self.choose(inp, i)), (hash(a) % 97,), (0.0,)) for i in range(k)])
        return out

    def token_scores(self, inputs, responses, entropy=True) -> TokenScores:
        z = torch.zeros(len(responses), 1)
        return TokenScores(z, torch.ones_like(z), z if entropy else None)

    def reference_logprobs(self, inputs, responses) -> torch.Tensor:
        return torch.zeros(len(responses), 1)

    def freeze_reference(self) -> None:
        pass

    def parameters(self):
        return []

    def response_for(self, inp, text) -> Response:
        return Response(text, (0,), ())

    def save(self, directory) -> None:
        pass

    def load(self, directory) -> None:
        pass



class ScriptedTabular(TabularPolicy):
    """A tabular policy (real parameters, real updates) whose samples are scripted: the i-th of the n samples for
    an input is the action ``choose(input, i)``."""

    def __init__(self, choose: Callable[[PolicyInput, int], str], **kwargs: Any):
        super().__init__(**kwargs)
        self.choose = choose

    def sample(self, inputs: Sequence[PolicyInput], n: Sequence[int], temperature: float = 1.0, generators=None) -> list[list[Response]]:
        return [[self.response_for(inp, self.choose(inp, i)) for i in range(k)] for inp, k in zip(inputs, n)]

    def set_logits(self, inp: PolicyInput, logits: Sequence[float]) -> None:
        """Set the logits of the decision ``inp`` (one per admissible action), leaving the reference as it is."""
        with torch.no_grad():
            self.logits[self._rows(inp)] = torch.tensor(list(logits), dtype=self.logits.dtype)
