"""Policies that choose among the admissible actions with one softmax: the shared half of the tabular and the
linear policy.

A response is the chosen action rendered in upstream's format (``<think></think><action>...</action>``), its single
"token" is the action's index among the admissible actions, and its entropy is that of the softmax over them. So
these policies go through the same protocol, advantages and PPO loss as a language model. A subclass supplies the
parameter vector and :meth:`ActionSoftmaxPolicy._padded`, the ``(B, A_max)`` logits computed from a given vector
(the current weights or the frozen reference).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Iterable, Sequence

import torch

from spo3.policies.base import Policy, PolicyInput, Response, TokenScores

__all__ = ["ActionSoftmaxPolicy", "format_action", "parse_action"]

_PREFIX, _SUFFIX = "<think></think><action>", "</action>"


def format_action(action: str) -> str:
    """Render an action the way an LLM policy is asked to reply (so action parsing treats both alike)."""
    return f"{_PREFIX}{action}{_SUFFIX}"


def parse_action(text: str) -> str:
    """The action inside :func:`format_action`'s rendering (or ``text`` itself if it is not rendered)."""
    if text.startswith(_PREFIX) and text.endswith(_SUFFIX):
        return text[len(_PREFIX) : -len(_SUFFIX)]
    return text


def pad_logits(per_input: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack ragged per-input logit vectors to ``(B, A_max)``, -inf beyond each input's action count."""
    width = max(len(x) for x in per_input)
    out = torch.full((len(per_input), width), -math.inf, dtype=per_input[0].dtype)
    rows = torch.repeat_interleave(torch.arange(len(per_input)), torch.tensor([len(x) for x in per_input]))
    cols = torch.cat([torch.arange(len(x)) for x in per_input])
    return out.index_put((rows, cols), torch.cat(list(per_input)))


class ActionSoftmaxPolicy(Policy):
    """Softmax over the admissible actions of each decision; logits from one parameter vector."""

    weights: torch.nn.Parameter
    """Every trainable parameter, in one preallocated vector (so the optimiser state never has to be rebuilt)."""
    _reference: torch.Tensor
    """The frozen reference copy of :attr:`weights`."""

    @abstractmethod
    def _padded(self, table: torch.Tensor, inputs: Sequence[PolicyInput]) -> torch.Tensor:
        """``(B, A_max)`` logits of ``inputs`` under parameter vector ``table``, -inf beyond each action count."""

    def sample(
        self, inputs: Sequence[PolicyInput], n: Sequence[int], temperature: float = 1.0,
        generators: Sequence[torch.Generator] | None = None,
    ) -> list[list[Response]]:
        if len(n) != len(inputs):
            raise ValueError(f"sample: {len(inputs)} inputs but {len(n)} counts")
        if not inputs:
            return []
        streams = self._generators_for(inputs, generators)
        with torch.no_grad():
            logits = self._padded(self.weights, inputs)
            logp = torch.log_softmax(logits, dim=-1)
            out = []
            for i, (inp, k) in enumerate(zip(inputs, n)):
                if temperature == 0:
                    picks = [int(torch.argmax(logp[i]))] * k
                else:  # over this input's own actions only: the draw must not depend on the batch's padding
                    probs = torch.softmax(logits[i, : len(inp.actions)] / temperature, dim=-1)
                    picks = torch.multinomial(probs, k, replacement=True, generator=streams[i]).tolist() if k else []
                out.append([Response(format_action(inp.actions[j]), (j,), (float(logp[i, j]),)) for j in picks])
        return out

    def _scores(self, table: torch.Tensor, inputs: Sequence[PolicyInput], responses: Sequence[Response], entropy: bool) -> TokenScores:
        if len(inputs) != len(responses):
            raise ValueError(f"{len(inputs)} inputs but {len(responses)} responses")
        logp = torch.log_softmax(self._padded(table, inputs), dim=-1)
        chosen = torch.tensor([[r.token_ids[0]] for r in responses])
        ent = None
        if entropy:
            p = logp.exp()
            ent = -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1, keepdim=True)
        return TokenScores(logprobs=logp.gather(1, chosen), mask=torch.ones(len(responses), 1, dtype=logp.dtype), entropy=ent)

    def token_scores(self, inputs: Sequence[PolicyInput], responses: Sequence[Response], entropy: bool = True) -> TokenScores:
        return self._scores(self.weights, inputs, responses, entropy)

    def reference_logprobs(self, inputs: Sequence[PolicyInput], responses: Sequence[Response]) -> torch.Tensor:
        with torch.no_grad():
            return self._scores(self._reference, inputs, responses, entropy=False).logprobs

    def freeze_reference(self) -> None:
        """Make the current weights the reference policy (after a supervised warm start)."""
        self._reference = self.weights.detach().clone()

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return [self.weights]

    def probabilities(self, inp: PolicyInput) -> dict[str, float]:
        """The action distribution at one decision (for inspection and tests)."""
        with torch.no_grad():
            p = torch.softmax(self._padded(self.weights, [inp])[0], dim=-1)
        return {a: float(p[j]) for j, a in enumerate(inp.actions)}

    def response_for(self, inp: PolicyInput, text: str) -> Response:
        action = parse_action(text)
        if action not in inp.actions:
            raise ValueError(f"{type(self).__name__}: {action!r} is not an admissible action here")
        return Response(format_action(action), (inp.actions.index(action),), ())
