"""The interface every rollout engine implements (see the package doc)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

__all__ = ["Generated", "GenerationEngine", "SamplingSpec"]


@dataclass(frozen=True)
class Generated:
    """One continuation from an engine."""

    token_ids: tuple[int, ...]
    """Generated token ids; may run past a stop token (the policy cuts after the first one)."""
    logprobs: tuple[float, ...]
    """Per-token log-probabilities of the sampled tokens, aligned with ``token_ids``."""


@dataclass(frozen=True)
class SamplingSpec:
    """How to continue the prompts of one :meth:`GenerationEngine.generate` call."""

    temperature: float
    """Sampling temperature; 0 is greedy decoding."""
    max_new_tokens: int
    """Generation cap per continuation."""
    stop_ids: tuple[int, ...]
    """Token ids that end a continuation."""
    pad_id: int
    """Padding token for engines that batch by padding."""
    seed: int
    """The call's seed (drawn from the policy's generator): the same seed gives the same continuations."""
    row_streams: tuple[torch.Generator, ...] | None = None
    """One generator per continuation row (per-task random streams): each row draws its tokens from its own
    generator, independent of the batch around it. Honoured by the HF engine; vLLM uses ``seed`` only."""
    share_prompts: bool = False
    """Compute a prompt with several continuations once (the HF engine prefills it once and hands its keys and
    values to every row; vLLM caches prefixes itself): the same distributions up to float rounding."""


class GenerationEngine(ABC):
    """Continues token-id prompts; the policy keeps it in step with the trainer's weights.

    ``shares_model``: the engine generates with the trainer's live model, so nothing is ever synced (HF). Otherwise
    the policy calls :meth:`load_weights` and (with ``serves_adapters``) :meth:`load_adapter` before sampling
    whenever the trainer's weights changed, first use included.
    """

    shares_model: bool = False
    """True when the engine generates with the trainer's own model object."""
    serves_adapters: bool = False
    """True when a LoRA policy's adapter is applied by the engine (so only the adapter is sent after an update);
    False: the policy sends full weights with the adapter folded in."""

    @abstractmethod
    def generate(self, prompts: Sequence[Sequence[int]], n: Sequence[int], spec: SamplingSpec) -> list[list[Generated]]:
        """``n[i]`` continuations of ``prompts[i]`` (greedy at ``spec.temperature == 0``), reproducible from
        ``spec.seed``."""

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the engine's model weights with ``(name, tensor)`` pairs named as in a plain transformers model.
        The tensors may share storage with the live model: copy what must outlive the call."""
        raise NotImplementedError(f"{type(self).__name__} does not take weights")

    def load_adapter(self, write: Callable[[Path], None]) -> None:
        """Serve a new LoRA adapter; ``write(directory)`` saves it there in peft's format."""
        raise NotImplementedError(f"{type(self).__name__} does not serve LoRA adapters")
