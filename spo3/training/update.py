"""The PPO-clip policy update over step samples (loss from :func:`spo3.core.loss.policy_loss`).

As in verl: old and reference log-probabilities are computed once before the update, the batch is cut into
mini-batches in order (no shuffling), each mini-batch into micro-batches whose losses are accumulated (each divided
by the number of micro-batches), gradients are clipped by global norm, and AdamW steps once per mini-batch.

No forward pass is wasted: which mini-batches step is decided first (``optim.skip_no_signal`` skips those without
any non-zero advantage), and old and reference log-probabilities are computed only for the ones that do. The old
log-probabilities come from sampling when the policy recorded them under the current weights
(:meth:`~spo3.policies.base.Policy.recorded_logprobs`, ``optim.reuse_sampling_logprobs``), else from a forward pass.
With several training processes every process holds the whole batch, runs its share of each mini-batch's
micro-batches, and the gradients are averaged over the processes (:mod:`spo3.training.distributed`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch

from spo3.config import OptimConfig
from spo3.core.loss import policy_loss
from spo3.policies.base import Policy
from spo3.rollout.common import StepSample
from spo3.training.distributed import Distributed

__all__ = ["build_optimizer", "ppo_update"]


def build_optimizer(policy: Policy, optim: OptimConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """AdamW (0.9, 0.999) over the policy's trainable parameters."""
    params = [p for p in policy.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr or optim.lr, betas=(0.9, 0.999), weight_decay=optim.weight_decay)


def _chunks(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def ppo_update(
    policy: Policy, optimizer: torch.optim.Optimizer, samples: Sequence[StepSample], optim: OptimConfig,
    dist: Distributed | None = None,
) -> dict[str, float]:
    """One PPO update over ``samples`` (whose ``advantage`` fields are set). Returns mean diagnostics, plus
    ``optimizer_steps``, ``skipped_steps`` (mini-batches without any non-zero advantage) and ``grad_norm``.

    With ``dist`` (several processes, each passing the same ``samples``) this process runs only its share of the
    micro-batches, weighted so that the averaged gradient equals the one-process gradient."""
    if not samples:
        return {"optimizer_steps": 0, "skipped_steps": 0}
    dist = dist or Distributed()
    inputs = [s.input for s in samples]
    responses = [s.response for s in samples]
    advantages = torch.tensor([s.advantage for s in samples], dtype=torch.float64)
    micro = _chunks(len(samples), optim.micro_batch_size)
    per_mini = max(1, optim.mini_batch_size // optim.micro_batch_size)
    minis = [list(range(start, min(start + per_mini, len(micro)))) for start in range(0, len(micro), per_mini)]
    stepping = [
        group for group in minis
        if not (optim.skip_no_signal and all(bool((advantages[list(micro[g])] == 0).all()) for g in group))
    ]
    shares = [dist.share(group) for group in stepping]  # this process's micro-batches of each stepping mini-batch
    old: dict[int, torch.Tensor] = {}
    ref: dict[int, torch.Tensor] = {}
    with torch.no_grad(), dist.unsharded(policy):
        for g in sorted({g for share in shares for g, _ in share}):
            inp, resp = [inputs[i] for i in micro[g]], [responses[i] for i in micro[g]]
            recorded = policy.recorded_logprobs(resp) if optim.reuse_sampling_logprobs else None
            old[g] = recorded if recorded is not None else policy.token_scores(inp, resp, entropy=False).logprobs
            ref[g] = policy.reference_logprobs(inp, resp)

    gap = _sampling_logprob_gap(old, micro, responses)

    params = [p for p in policy.parameters() if p.requires_grad]
    sums: dict[str, float] = defaultdict(float)
    grad_norm = 0.0
    steps = 0
    skipped = (len(minis) - len(stepping)) * optim.ppo_epochs
    policy.train_mode(True)
    for _ in range(optim.ppo_epochs):
        for group, share in zip(stepping, shares):
            optimizer.zero_grad(set_to_none=True)
            for g, weight in share:
                idx = list(micro[g])
                scores = policy.token_scores([inputs[i] for i in idx], [responses[i] for i in idx], entropy=optim.entropy_coef > 0)
                adv = advantages[idx].to(scores.logprobs.dtype)
                loss, diag = policy_loss(
                    scores.logprobs, old[g].to(scores.logprobs.dtype), adv, scores.mask, ref[g].to(scores.logprobs.dtype),
                    scores.entropy, clip_ratio=optim.clip_ratio, dual_clip=optim.dual_clip, kl_coef=optim.kl_coef,
                    entropy_coef=optim.entropy_coef, agg_mode=optim.agg_mode,  # type: ignore[arg-type]
                )
                (loss * (weight * dist.world) / len(group)).backward()  # world 1: loss / len(group) exactly
                for k, v in diag.items():
                    sums[k] += weight * v / len(group)
            dist.reduce_gradients(params)
            grad_norm += float(torch.nn.utils.clip_grad_norm_(params, optim.grad_clip))
            optimizer.step()
            steps += 1
    policy.train_mode(False)
    sums = dist.sum_over_ranks(dict(sums))
    out = {k: v / steps for k, v in sums.items()} if steps else {}
    if steps:
        out["grad_norm"] = grad_norm / steps
    out.update(optimizer_steps=steps, skipped_steps=skipped)
    if gap is not None:
        out["sampling_logprob_gap"] = gap
    return out


def _sampling_logprob_gap(old: dict[int, torch.Tensor], micro: list[range], responses: Sequence) -> float | None:
    """Mean ``|recomputed - sampling|`` log-probability over the response tokens that carry sampling
    log-probabilities: how far the rollout engine's numbers (vLLM's kernels, another precision) are from the
    trainer's, over the micro-batches that step. Logged only: with ``optim.reuse_sampling_logprobs`` only the HF
    engine's (the trainer's own model, unchanged weights) stand in for recomputed ones; any other engine's never do."""
    diffs = []
    for g, tensor in old.items():
        for row, i in enumerate(micro[g]):
            sampled = responses[i].logprobs
            if sampled:
                diffs.append((tensor[row, : len(sampled)].double() - torch.tensor(sampled, dtype=torch.float64)).abs())
    return float(torch.cat(diffs).mean()) if diffs else None
