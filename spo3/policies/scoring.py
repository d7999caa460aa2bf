"""Per-token log-probabilities and entropies of a causal language model's logits, memory-bounded."""

from __future__ import annotations

import torch

__all__ = ["token_logprobs_and_entropy"]

_SCORE_CHUNK_ELEMENTS = 1 << 25
"""Logit elements (32M floats, 128 MB in fp32) per chunk of the log-prob/entropy computation."""


def token_logprobs_and_entropy(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probabilities of ``targets`` and the entropy of the full next-token distribution, ``softmax(logits / T)``.

    Uses ``log p(y) = z_y - logsumexp(z)`` and ``H = logsumexp(z) - sum(softmax(z) * z)`` (as verl's
    ``entropy_from_logits``), computed in fp32 over chunks of positions so that no full-size ``log_softmax`` or
    probability tensor is ever materialised; under autograd each chunk is checkpointed (recomputed in the backward
    pass), so the extra memory stays one chunk however large the vocabulary.

    Args:
      logits: ``(B, T, V)`` next-token logits (any float dtype).
      targets: ``(B, T)`` token ids.
      temperature: ``T > 0``.
      entropy: also compute the entropy.

    Returns:
      ``(B, T)`` fp32 log-probabilities and ``(B, T)`` fp32 entropies (or ``None``).
    """
    from torch.utils.checkpoint import checkpoint

    batch, length, vocab = logits.shape
    flat, flat_targets = logits.reshape(-1, vocab), targets.reshape(-1)
    rows = max(1, _SCORE_CHUNK_ELEMENTS // vocab)
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    for start in range(0, flat.shape[0], rows):
        args = (flat[start : start + rows], flat_targets[start : start + rows], temperature, entropy)
        if torch.is_grad_enabled() and flat.requires_grad:
            parts.append(checkpoint(_chunk_scores, *args, use_reentrant=False))
        else:
            parts.append(_chunk_scores(*args))
    logp = torch.cat([p[0] for p in parts]).view(batch, length)
    ent = torch.cat([p[1] for p in parts]).view(batch, length) if entropy else None
    return logp, ent


def _chunk_scores(logits: torch.Tensor, targets: torch.Tensor, temperature: float, entropy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    z = logits.float() / temperature
    lse = torch.logsumexp(z, dim=-1)
    logp = z.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - lse
    ent = lse - (torch.softmax(z, dim=-1) * z).sum(-1) if entropy else lse.new_zeros(0)
    return logp, ent
