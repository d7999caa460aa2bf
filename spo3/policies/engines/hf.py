"""Generation with transformers' ``generate`` on the trainer's own model (the default engine, ``policy.backend: hf``).

Batches are left-padded (prompts end at the same column, so all rows decode in lockstep with one KV cache).
With ``SamplingSpec.share_prompts`` a prompt with several continuations (siblings) is prefilled once and its keys
and values are repeated for its rows (``policy.share_prompts``).
Log-probabilities at temperature ``tau > 0`` are ``log_softmax(z / tau)`` of the sampled token, ``z`` the model's
logits: the distribution the token was drawn from (top-k, top-p, min-p and repetition penalties are all disabled).
At ``tau == 0`` (greedy) that distribution is a point mass, so they are the model's own ``tau = 1`` log-probabilities.

Determinism: ``generate()`` samples from the global torch RNG, so every call generates under
``torch.random.fork_rng`` + ``torch.manual_seed(spec.seed)``: the same seed gives the same samples, and the
caller's global RNG stream is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterator, Sequence

import torch
from transformers import DynamicCache, GenerationConfig, LogitsProcessor, LogitsProcessorList

from spo3.policies.engines.base import Generated, GenerationEngine, SamplingSpec

__all__ = ["HFEngine", "cache_argument", "left_padded", "seeded"]


@contextlib.contextmanager
def seeded(model: torch.nn.Module, seed: int) -> Iterator[None]:
    """Run under the global torch RNG seeded with ``seed`` (CPU and the model's CUDA device), restoring the caller's
    RNG state afterwards."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def left_padded(rows: Sequence[Sequence[int]], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows as ``(len(rows), width)`` tensors ``(ids, attention)``, each row right-aligned (left padding,
    so that all rows end at the same column and decode in lockstep). Rows must be at most ``width`` long."""
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(list(row))
            attention[i, width - len(row) :] = 1
    return ids, attention


def cache_argument(model: Any) -> str:
    """The name of the KV-cache argument of a transformers model's ``forward`` (and ``generate``): transformers
    renamed ``past_key_values`` to ``cache``; the wrong one would be swallowed by ``**kwargs`` and ignored."""
    parameters = inspect.signature(type(model).forward).parameters
    if "cache" in parameters:
        return "cache"
    if "past_key_values" in parameters:
        return "past_key_values"
    raise TypeError(f"{type(model).__name__}.forward takes neither cache nor past_key_values")


class _SampledLogProbs(LogitsProcessor):
    """Records the log-probability of each sampled token while ``generate`` runs, keeping one step of
    ``(rows, V)`` log-probabilities at a time (``output_scores`` would keep all of them).

    Custom processors run before transformers' sampling warpers (temperature, top-k, ...), so ``scores`` are
    the raw logits; step ``t``'s sampled token is only visible at step ``t + 1`` (or in the final sequences).
    """

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature
        self._latest: torch.Tensor | None = None
        self._steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._latest is not None:
            self._steps.append(self._latest.gather(1, input_ids[:, -1:]).squeeze(1))
        self._latest = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def logprobs(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """``(rows, L)`` log-probabilities of the ``(rows, L)`` generated tokens."""
        if self._latest is not None and len(self._steps) < new_tokens.shape[1]:
            self._steps.append(self._latest.gather(1, new_tokens[:, len(self._steps)].unsqueeze(1)).squeeze(1))
        self._latest = None
        return torch.stack(self._steps, dim=1)


class _StreamSampler(LogitsProcessor):
    """Draws each row's next token from the row's own generator (inverse CDF of ``softmax(scores / T)``) and leaves
    only that token possible, so that ``generate``'s own draw is forced: a row's tokens then depend on its stream
    and its logits only, not on the other rows of the batch (per-task random streams). Runs after
    :class:`_SampledLogProbs`, which records the unmodified log-probabilities."""

    def __init__(self, generators: Sequence[torch.Generator], temperature: float) -> None:
        self.generators = list(generators)
        self.temperature = temperature

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        cdf = torch.softmax(scores.double() / self.temperature, dim=-1).cumsum(-1)
        u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators]).to(cdf.device)
        picks = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), right=True).clamp_max(scores.shape[-1] - 1)
        return torch.full_like(scores, -torch.inf).scatter_(1, picks, 0.0)


class HFEngine(GenerationEngine):
    """``model.generate`` over all continuations of a call as one left-padded batch.

    Args:
      model: the trainer's model (a transformers model, possibly peft-wrapped), already on its device.
    """

    shares_model = True

    def __init__(self, model: Any) -> None:
        self.model = model

    def generate(self, prompts: Sequence[Sequence[int]], n: Sequence[int], spec: SamplingSpec) -> list[list[Generated]]:
        rows = [p for p, k in zip(prompts, n) for _ in range(k)]
        if not rows:
            return [[] for _ in prompts]
        width = max(len(p) for p in rows)
        input_ids, attention = left_padded(rows, width, spec.pad_id)
        sampling = spec.temperature > 0
        config = GenerationConfig(
            max_new_tokens=spec.max_new_tokens, do_sample=sampling, eos_token_id=list(spec.stop_ids),
            pad_token_id=spec.pad_id, use_cache=True,
            **({"temperature": spec.temperature, "top_k": 0, "top_p": 1.0} if sampling else {}),
        )
        recorder = _SampledLogProbs(spec.temperature if sampling else 1.0)
        processors = [recorder]
        if spec.row_streams is not None and sampling:
            if len(spec.row_streams) != len(rows):
                raise ValueError(f"HFEngine: {len(spec.row_streams)} row streams for {len(rows)} continuations")
            processors.append(_StreamSampler(spec.row_streams, spec.temperature))
        device = next(self.model.parameters()).device
        with torch.no_grad(), seeded(self.model, spec.seed):
            prefilled = self._prefill_once(prompts, n, width, spec.pad_id, device) if spec.share_prompts else {}
            sequences = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention.to(device),
                generation_config=config, logits_processor=LogitsProcessorList(processors),
                synced_gpus=False,  # under FSDP every process generates alone, on unsharded weights
                **prefilled,
            )
        new_tokens = sequences[:, width:]
        logprobs = recorder.logprobs(new_tokens).cpu().tolist()
        flat = [Generated(tuple(ids), tuple(lp)) for ids, lp in zip(new_tokens.cpu().tolist(), logprobs)]
        out, start = [], 0
        for k in n:
            out.append(flat[start : start + k])
            start += k
        return out

    def _prefill_once(self, prompts: Sequence[Sequence[int]], n: Sequence[int], width: int, pad_id: int, device: Any) -> dict:
        """When some prompt has several continuations: each prompt but its last token run once, left-padded as in
        the batch, its keys and values repeated for its rows, as the KV cache ``generate`` continues from (it then
        feeds only the last column). ``{}`` when every prompt has at most one row (nothing to share)."""
        used = [u for u, k in enumerate(n) if k > 0]
        if width < 2 or all(n[u] == 1 for u in used):
            return {}
        ids, attention = left_padded([list(prompts[u])[:-1] for u in used], width - 1, pad_id)
        # generate()'s own position ids: counted from each row's first real token, padding at 1.
        positions = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 1)
        name = cache_argument(self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model)
        cache = DynamicCache()
        self.model(
            input_ids=ids.to(device), attention_mask=attention.to(device), position_ids=positions.to(device),
            use_cache=True, logits_to_keep=1, **{name: cache},
        )
        cache.batch_select_indices(torch.repeat_interleave(torch.arange(len(used)), torch.tensor([n[u] for u in used])).to(device))
        return {name: cache}
