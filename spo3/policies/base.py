"""The one policy protocol shared by tabular and language-model policies.

A policy sees a batch of :class:`PolicyInput` (the rendered prompt an LLM reads, plus the decision-context key
and admissible actions a tabular policy indexes), samples ``n_i`` responses for input ``i`` in one batched call,
and scores given responses token by token for the PPO update. Policies know nothing of environments: the rollout
layer builds the inputs and parses the responses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

__all__ = ["Policy", "PolicyInput", "Response", "TokenScores"]


@dataclass(frozen=True)
class PolicyInput:
    """One decision to make."""

    prompt: str
    """The user message an LLM policy reads (``spo3.envs.prompts.render_prompt``)."""
    context: str
    """A key identifying the decision context (the task-scoped state key); tabular policies index it."""
    actions: tuple[str, ...]
    """Admissible actions at this decision; tabular policies choose among them."""


@dataclass(frozen=True)
class Response:
    """One sampled response."""

    text: str
    """The decoded response (for LLMs: reasoning in ``<think>`` and the action in ``<action>`` tags)."""
    token_ids: tuple[int, ...]
    """Response token ids (tabular: the index of the chosen action in ``PolicyInput.actions``)."""
    logprobs: tuple[float, ...]
    """Per-token log-probabilities under the sampling distribution."""
    weights_version: int | None = field(default=None, compare=False)
    """Set by a policy whose ``logprobs`` are exactly what :meth:`Policy.token_scores` computes (same distribution,
    same temperature): the version of its weights at sampling time (see :meth:`Policy.recorded_logprobs`).
    ``None``: the sampling log-probabilities cannot stand in for a forward pass."""


@dataclass
class TokenScores:
    """Per-token scores of a batch of responses, padded on the right to ``T`` tokens."""

    logprobs: torch.Tensor
    """``(B, T)`` log-probabilities of the response tokens (carries gradients when requested)."""
    mask: torch.Tensor
    """``(B, T)`` 1.0 for response tokens, 0.0 for padding."""
    entropy: torch.Tensor | None = None
    """``(B, T)`` entropy of the full next-token distribution at each position, or ``None``."""


class Policy(ABC):
    """Protocol of every policy. Sampling is seeded by the policy's own ``torch.Generator`` (``_generator``, set
    in the subclass's constructor)."""

    @abstractmethod
    def sample(
        self, inputs: Sequence[PolicyInput], n: Sequence[int], temperature: float = 1.0,
        generators: Sequence[torch.Generator] | None = None,
    ) -> list[list[Response]]:
        """Sample ``n[i]`` responses for ``inputs[i]``, all inputs in one batched call.

        ``temperature == 0`` means greedy decoding (then the ``n[i]`` responses are identical). ``generators``
        (one per input) draws input ``i``'s responses from ``generators[i]`` alone, so that they do not depend on
        the other inputs of the batch (per-task random streams); by default every draw comes from the policy's own
        generator.
        """

    @abstractmethod
    def token_scores(self, inputs: Sequence[PolicyInput], responses: Sequence[Response], entropy: bool = True) -> TokenScores:
        """Score ``responses[j]`` given ``inputs[j]`` under the current parameters (with autograd enabled)."""

    @abstractmethod
    def reference_logprobs(self, inputs: Sequence[PolicyInput], responses: Sequence[Response]) -> torch.Tensor:
        """``(B, T)`` log-probabilities under the frozen reference policy (no gradients)."""

    def recorded_logprobs(self, responses: Sequence[Response]) -> torch.Tensor | None:
        """``(B, T)`` log-probabilities of ``responses`` under the current weights taken from what sampling recorded,
        equal to ``token_scores(...).logprobs`` up to float error without a forward pass; ``None`` unless every
        response carries ``weights_version`` equal to the current :meth:`weights_version` (weights unchanged since
        sampling). Used as PPO's old log-probabilities (``optim.reuse_sampling_logprobs``)."""
        version = self.weights_version()
        if version is None or not responses:
            return None
        if any(r.weights_version != version or len(r.logprobs) != len(r.token_ids) for r in responses):
            return None
        length = max(len(r.token_ids) for r in responses)
        out = torch.zeros((len(responses), length))
        for i, r in enumerate(responses):
            out[i, : len(r.logprobs)] = torch.tensor(r.logprobs)
        return out

    def weights_version(self) -> int | None:
        """A number that grows whenever the weights change; ``None`` (the default) for policies that do not
        record reusable sampling log-probabilities."""
        return None

    @abstractmethod
    def freeze_reference(self) -> None:
        """Make the current parameters the reference policy (e.g. after a supervised warm start)."""

    @abstractmethod
    def parameters(self) -> Iterable[torch.nn.Parameter]:
        """Trainable parameters."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the policy (weights and whatever is needed to rebuild it) into ``directory``."""

    @abstractmethod
    def load(self, directory: Path) -> None:
        """Load what :meth:`save` wrote, in place."""

    @abstractmethod
    def response_for(self, inp: PolicyInput, text: str) -> Response:
        """The :class:`Response` this policy would have produced to say ``text`` (token ids; log-probabilities
        may be empty), e.g. an expert's reply used as a supervised target."""

    # Sampling randomness: every policy owns a torch.Generator (set by the subclass), so sampling never touches
    # the global RNG and a checkpoint can capture it exactly.
    _generator: torch.Generator

    def _generators_for(self, inputs: Sequence[PolicyInput], generators: Sequence[torch.Generator] | None) -> list[torch.Generator]:
        """The generator of each input: ``generators`` where given, else the policy's own."""
        if generators is None:
            return [self._generator] * len(inputs)
        if len(generators) != len(inputs):
            raise ValueError(f"sample: {len(inputs)} inputs but {len(generators)} generators")
        return list(generators)

    def reseed(self, seed: int) -> None:
        """Reset the sampling RNG to ``seed``."""
        self._generator.manual_seed(seed)

    def rng_state(self) -> dict[str, Any]:
        """The sampling RNG state, for exact resumption."""
        return {"generator": self._generator.get_state()}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`rng_state`."""
        self._generator.set_state(state["generator"])

    def train_mode(self, training: bool) -> None:
        """Switch dropout-like behaviour; a no-op for policies without any."""
