"""Hugging Face causal language models as spo3 policies: :class:`HFPolicy` and :func:`build_hf_policy`.

Prompting follows upstream (verl-agent / 3SPO; ``shared/reference/upstream-interface.md`` §2.3): a decision's
prompt is ONE user message rendered through the tokenizer's chat template with ``add_generation_prompt=True``.
Batches are left-padded for generation (prompts end at the same column, so all rows decode in lockstep with one
KV cache) and laid out as ``[left padding | prompt | response | right padding]`` for scoring, with position ids
counted from each row's first real token so that scoring sees exactly the positions generation saw.

Log-probabilities, precisely:

* ``Response.logprobs`` (from :meth:`HFPolicy.sample`) at temperature ``tau > 0`` are ``log_softmax(z / tau)`` of
  the sampled token, ``z`` the model's logits: the distribution the token was drawn from (top-k, top-p, min-p and
  repetition penalties are all disabled). At ``tau == 0`` (greedy) that distribution is a point mass, so they are
  the model's own ``tau = 1`` log-probabilities instead.
* :meth:`HFPolicy.token_scores` and :meth:`HFPolicy.reference_logprobs` score with ``log_softmax(z / T_s)``,
  ``T_s = score_temperature``: verl's actor likewise divides the logits by the rollout temperature when it
  recomputes log-probabilities. ``build_hf_policy`` sets ``T_s`` to the training temperature (upstream 1.0), so
  sampling and scoring log-probabilities agree up to float error.
* So when a response was sampled by transformers' ``generate`` (no external backend) at the scoring temperature
  (or greedily with ``T_s = 1``), it carries ``Response.weights_version``, and while the weights have not changed
  since (:meth:`HFPolicy.weights_version`) its sampling log-probabilities serve as PPO's old log-probabilities
  without another forward pass (``optim.reuse_sampling_logprobs``). At any other temperature they are of a
  different distribution than the loss's, and an external engine's may differ numerically: those are never reused.

Reference policy: with LoRA (``lora_rank > 0``) it is the model with the adapter disabled (no second copy); with
full fine-tuning a frozen copy. :meth:`HFPolicy.freeze_reference` moves it to the current policy without ever
replacing a trainable parameter object, so an optimiser built earlier stays attached.

Determinism: the policy owns a ``torch.Generator``. ``generate()`` samples from the global torch RNG, so every
:meth:`HFPolicy.sample` call draws a seed from the policy's generator and generates under
``torch.random.fork_rng`` + ``torch.manual_seed``: the same seed gives the same samples, and the caller's global
RNG stream is left exactly as it was. Given per-input generators (per-task random streams), each response row
draws its tokens from its own generator instead (:class:`_StreamSampler`), independent of the batch around it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from spo3.config import PolicyConfig
from spo3.policies.base import Policy, PolicyInput, Response, TokenScores

__all__ = [
    "DEFAULT_LORA_TARGETS",
    "GenerationBackend",
    "Generated",
    "HFPolicy",
    "LoraSettings",
    "build_hf_policy",
    "token_logprobs_and_entropy",
]

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Attention and MLP projection names shared by Qwen2, Llama (SmolLM2) and Mistral-style models."""

FORMAT = "spo3.hf_policy"
VERSION = 1
META_FILE = "spo3_hf_policy.json"
WEIGHTS_FILE = "weights.safetensors"
ADAPTER_FILE = "adapter.safetensors"
REFERENCE_FILE = "reference.safetensors"
TOKENIZER_DIR = "tokenizer"

_SCORE_CHUNK_ELEMENTS = 1 << 25
"""Logit elements (32M floats, 128 MB in fp32) per chunk of the log-prob/entropy computation."""


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA adapter of an :class:`HFPolicy`."""

    rank: int
    alpha: int
    targets: tuple[str, ...]
    """Module-name suffixes actually adapted (those of ``DEFAULT_LORA_TARGETS`` present in the model)."""


@dataclass(frozen=True)
class Generated:
    """One continuation from a generation backend."""

    token_ids: tuple[int, ...]
    """Generated token ids; may run past a stop token (the policy cuts after the first one)."""
    logprobs: tuple[float, ...]
    """Per-token log-probabilities, aligned with ``token_ids``."""


class GenerationBackend(Protocol):
    """An external generation engine (e.g. :class:`spo3.policies.vllm_backend.VLLMBackend`).

    The policy renders and tokenises prompts itself, so the engine only continues token ids.
    """

    def generate(
        self, prompts: Sequence[Sequence[int]], n: Sequence[int], temperature: float, max_new_tokens: int,
        stop_ids: Sequence[int], seed: int,
    ) -> list[list[Generated]]:
        """``n[i]`` continuations of ``prompts[i]`` (greedy at ``temperature == 0``), reproducible from ``seed``."""
        ...

    def update_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load the policy's current weights (names as in a plain transformers model, LoRA merged). The tensors
        may share storage with the live model: copy what must outlive the call."""
        ...


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


class HFPolicy(Policy):
    """A causal language model (any ``AutoModelForCausalLM`` with a chat-template tokenizer) as a :class:`Policy`.

    Args:
      model: the model, already on its device and in its dtype.
      tokenizer: its tokenizer; must have a chat template. Responses end with ``<|im_end|>`` when the vocabulary
        has it (ChatML), else with the tokenizer's EOS.
      seed: seed of the sampling generator and of the LoRA initialisation.
      max_new_tokens: generation cap per response.
      lora_rank: 0 for full fine-tuning (the reference is a frozen copy); > 0 wraps the model in a peft LoRA
        adapter of this rank (dropout 0) and only the adapter trains.
      lora_alpha: LoRA scaling alpha.
      lora_targets: module-name suffixes LoRA may adapt; those present among the model's linear layers are used.
      score_temperature: temperature of :meth:`token_scores` and :meth:`reference_logprobs` (see the module doc).
      backend: an external generation engine; ``None`` generates with transformers' ``generate``.

    The model's ``generation_config`` is replaced by a neutral one: every sampling setting comes from
    :meth:`sample`, never from a checkpoint's defaults (e.g. transformers' global ``top_k=50``).
    """

    eos_id: int
    """The token that ends a response: ``<|im_end|>`` where the vocabulary has it, else the tokenizer's EOS."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        seed: int = 0,
        max_new_tokens: int = 64,
        lora_rank: int = 0,
        lora_alpha: int = 16,
        lora_targets: Sequence[str] = DEFAULT_LORA_TARGETS,
        score_temperature: float = 1.0,
        backend: GenerationBackend | None = None,
    ) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"HFPolicy: max_new_tokens={max_new_tokens} must be >= 1")
        if lora_rank < 0:
            raise ValueError(f"HFPolicy: lora_rank={lora_rank} must be >= 0")
        if not score_temperature > 0:
            raise ValueError(f"HFPolicy: score_temperature={score_temperature} must be > 0")
        self.max_new_tokens = max_new_tokens
        self.score_temperature = float(score_temperature)
        self.backend = backend
        self._generator = torch.Generator().manual_seed(seed)
        self._set_tokenizer(tokenizer)
        if len(self.tokenizer) > model.get_input_embeddings().num_embeddings:
            raise ValueError(
                f"HFPolicy: the tokenizer has {len(self.tokenizer)} tokens but the model embeds only "
                f"{model.get_input_embeddings().num_embeddings}"
            )
        model.generation_config = GenerationConfig(eos_token_id=self._stop_ids, pad_token_id=self._pad_id)
        self.lora: LoraSettings | None = None
        self._reference: PreTrainedModel | None = None
        if lora_rank > 0:
            self.lora = _lora_settings(model, lora_rank, lora_alpha, lora_targets)
            self.model = self._wrap_lora(model, self.lora, seed)
        else:
            self.model = model
            self._reference = _frozen_copy(model)
        self.model.eval()
        self._synced_version: int | None = None
        self._loads = 0
        # False while the reference (full fine-tuning: the frozen copy; LoRA: the base weights) is still the model
        # this policy was built from; checkpoints then leave it out and only fingerprint it.
        self._reference_frozen = False

    # ---------------------------------------------------------------- set-up helpers
    def _set_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if tokenizer.chat_template is None:
            raise ValueError("HFPolicy: the tokenizer has no chat template (prompts are rendered through one)")
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
        eos = im_end if im_end is not None else tokenizer.eos_token_id
        if eos is None:
            raise ValueError("HFPolicy: the tokenizer has neither <|im_end|> nor an EOS token to end responses")
        self.tokenizer = tokenizer
        self.eos_id = int(eos)
        self._stop_ids = sorted({self.eos_id} | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()))
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)

    @staticmethod
    def _wrap_lora(model: PreTrainedModel, lora: LoraSettings, seed: int) -> Any:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=0.0, target_modules=list(lora.targets))
        with torch.random.fork_rng(devices=_cuda_devices(model)):
            torch.manual_seed(seed)
            return get_peft_model(model, config)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def base_model(self) -> PreTrainedModel:
        """The transformers model (under the LoRA wrapper, if any)."""
        return self.model.get_base_model() if self.lora is not None else self.model

    def _next_seed(self) -> int:
        return int(torch.randint(0, 2**62, (1,), generator=self._generator))

    @contextlib.contextmanager
    def _seeded(self, seed: int) -> Iterator[None]:
        with torch.random.fork_rng(devices=_cuda_devices(self.model)):
            torch.manual_seed(seed)
            yield

    def prompt_token_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt rendered as one user message through the chat template with the generation
        prompt appended (what the model reads before its reply); each distinct prompt is encoded once."""
        unique = list(dict.fromkeys(prompts))
        if not unique:
            return []
        rendered = [
            self.tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            for p in unique
        ]
        encoded = self.tokenizer(rendered, add_special_tokens=False)["input_ids"]
        table = dict(zip(unique, encoded))
        return [table[p] for p in prompts]

    # ---------------------------------------------------------------- sampling
    def sample(
        self, inputs: Sequence[PolicyInput], n: Sequence[int], temperature: float = 1.0,
        generators: Sequence[torch.Generator] | None = None,
    ) -> list[list[Response]]:
        """``n[i]`` responses to ``inputs[i]``, all in one batched generation (see the module doc for the
        log-probabilities). Greedy decoding (``temperature == 0``) generates each input once and repeats it.
        With ``generators``, each response row samples its tokens from its own generator, seeded from its input's
        (:class:`_StreamSampler`); an external backend still takes one seed per call."""
        if len(n) != len(inputs):
            raise ValueError(f"sample: {len(inputs)} inputs but {len(n)} counts")
        if any(k < 0 for k in n):
            raise ValueError(f"sample: negative response count in n={list(n)}")
        if temperature < 0:
            raise ValueError(f"sample: temperature={temperature} must be >= 0")
        prompts = self.prompt_token_ids([inp.prompt for inp in inputs])
        counts = [min(k, 1) if temperature == 0 else k for k in n]
        streams = self._generators_for(inputs, generators) if generators is not None else None
        seed = self._next_seed() if streams is None or self.backend is not None else 0
        if not any(counts):
            return [[] for _ in inputs]
        if self.backend is None:
            row_streams = None
            if streams is not None and temperature > 0:
                row_streams = [
                    torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
                    for g, k in zip(streams, counts) for _ in range(k)
                ]
            generated = self._generate(prompts, counts, temperature, seed, row_streams)
        else:
            self._sync_backend()
            generated = self.backend.generate(prompts, counts, temperature, self.max_new_tokens, self._stop_ids, seed)
            if [len(g) for g in generated] != counts:
                raise RuntimeError(f"{type(self.backend).__name__}: asked for {counts} continuations, got "
                                   f"{[len(g) for g in generated]}")
        # Only transformers' own sampling at the scoring temperature records what token_scores would compute.
        same_distribution = self.score_temperature == (temperature if temperature > 0 else 1.0)
        version = self.weights_version() if self.backend is None and same_distribution else None
        out = []
        for gens, k in zip(generated, n):
            responses = [self._response(g, version) for g in gens]
            out.append(responses * k if temperature == 0 else responses)
        return out

    def _generate(
        self, prompts: list[list[int]], counts: list[int], temperature: float, seed: int,
        row_streams: list[torch.Generator] | None = None,
    ) -> list[list[Generated]]:
        rows = [p for p, k in zip(prompts, counts) for _ in range(k)]
        width = max(len(p) for p in rows)
        input_ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, p in enumerate(rows):  # left padding
            input_ids[i, width - len(p) :] = torch.tensor(p)
            attention[i, width - len(p) :] = 1
        sampling = temperature > 0
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens, do_sample=sampling, eos_token_id=self._stop_ids,
            pad_token_id=self._pad_id, use_cache=True,
            **({"temperature": temperature, "top_k": 0, "top_p": 1.0} if sampling else {}),
        )
        recorder = _SampledLogProbs(temperature if sampling else 1.0)
        processors = [recorder] + ([_StreamSampler(row_streams, temperature)] if row_streams is not None else [])
        with torch.no_grad(), self._seeded(seed):
            sequences = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                generation_config=config, logits_processor=LogitsProcessorList(processors),
                synced_gpus=False,  # under FSDP every process generates alone, on unsharded weights
            )
        new_tokens = sequences[:, width:]
        logprobs = recorder.logprobs(new_tokens).cpu().tolist()
        flat = [Generated(tuple(ids), tuple(lp)) for ids, lp in zip(new_tokens.cpu().tolist(), logprobs)]
        out, start = [], 0
        for k in counts:
            out.append(flat[start : start + k])
            start += k
        return out

    def _response(self, generated: Generated, weights_version: int | None = None) -> Response:
        """Cut after the first stop token (padding and anything past it go) and decode."""
        ids = list(generated.token_ids)
        end = next((i + 1 for i, t in enumerate(ids) if t in self._stop_ids), len(ids))
        ids = ids[:end]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        logprobs = tuple(float(x) for x in generated.logprobs[:end])
        return Response(text=text, token_ids=tuple(ids), logprobs=logprobs, weights_version=weights_version)

    def response_for(self, inp: PolicyInput, text: str) -> Response:
        """``text`` tokenised as a reply, followed by the end-of-turn token; no log-probabilities."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return Response(text=text, token_ids=tuple(ids) + (self.eos_id,), logprobs=())

    # ---------------------------------------------------------------- scoring
    def token_scores(self, inputs: Sequence[PolicyInput], responses: Sequence[Response], entropy: bool = True) -> TokenScores:
        """Per-token log-probabilities (with autograd), mask and entropy of ``responses`` given ``inputs``.

        Returns CPU tensors ``(B, T)``, ``T`` the longest response, whatever the model's device (the update
        combines them with CPU advantages; autograd follows the copy back to the device).
        """
        return self._score(self.model, inputs, responses, entropy)

    def reference_logprobs(self, inputs: Sequence[PolicyInput], responses: Sequence[Response]) -> torch.Tensor:
        """``(B, T)`` CPU log-probabilities under the reference policy (LoRA: adapter disabled; else the frozen copy)."""
        with torch.no_grad():
            if self._reference is not None:
                return self._score(self._reference, inputs, responses, entropy=False).logprobs
            with self.model.disable_adapter():
                return self._score(self.model, inputs, responses, entropy=False).logprobs

    def _score(self, model: Any, inputs: Sequence[PolicyInput], responses: Sequence[Response], entropy: bool) -> TokenScores:
        if len(inputs) != len(responses):
            raise ValueError(f"token_scores: {len(inputs)} inputs but {len(responses)} responses")
        prompts = self.prompt_token_ids([inp.prompt for inp in inputs])
        batch = len(responses)
        width = max((len(p) for p in prompts), default=0)
        length = max((len(r.token_ids) for r in responses), default=0)
        mask = torch.zeros((batch, length))
        if batch == 0 or length == 0:
            return TokenScores(logprobs=mask.clone(), mask=mask, entropy=mask.clone() if entropy else None)
        input_ids = torch.full((batch, width + length), self._pad_id, dtype=torch.long)
        attention = torch.zeros((batch, width + length), dtype=torch.long)
        for i, (p, r) in enumerate(zip(prompts, responses)):
            input_ids[i, width - len(p) : width] = torch.tensor(p)
            input_ids[i, width : width + len(r.token_ids)] = torch.tensor(r.token_ids)
            attention[i, width - len(p) : width + len(r.token_ids)] = 1
            mask[i, : len(r.token_ids)] = 1.0
        # generate() numbers positions from each row's first real token; so must scoring.
        positions = (attention.cumsum(-1) - 1).clamp_min(0)
        device = self.device
        logits = model(
            input_ids=input_ids.to(device), attention_mask=attention.to(device), position_ids=positions.to(device),
            logits_to_keep=length + 1, use_cache=False,
        ).logits[:, :-1]
        logp, ent = token_logprobs_and_entropy(logits, input_ids[:, width:].to(device), self.score_temperature, entropy)
        return TokenScores(logprobs=logp.cpu(), mask=mask, entropy=ent.cpu() if ent is not None else None)

    # ---------------------------------------------------------------- reference, parameters, modes
    def freeze_reference(self) -> None:
        """Make the current policy the reference. Full fine-tuning: copy the weights into the frozen copy. LoRA:
        add the adapter's update into the base weights and re-initialise the adapter in place (B = 0, so the
        policy is unchanged and the adapter-disabled reference now equals it)."""
        self._reference_frozen = True
        if self._reference is not None:
            with torch.no_grad():
                self._reference.load_state_dict(self.model.state_dict())
            return
        from peft.tuners.lora import LoraLayer

        with torch.no_grad(), self._seeded(self._next_seed()):
            for module in self.model.modules():
                if isinstance(module, LoraLayer):
                    for name in module.active_adapters:
                        base = module.get_base_layer()
                        base.weight.add_(module.get_delta_weight(name).to(base.weight.dtype))
                        module.reset_lora_parameters(name, init_lora_weights=True)

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        """The trainable parameters (LoRA: only the adapter's)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def train_mode(self, training: bool) -> None:
        self.model.train(training)

    def weights_version(self) -> int:
        """Grows with every change of the weights the policy samples from: tensor version counters move on every
        in-place update (optimiser steps, :meth:`freeze_reference` with LoRA), and :meth:`load` adds one."""
        return self._loads + sum(p._version for p in self.model.parameters())

    def inference_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` of the current policy as a plain transformers model of the base class would name them,
        with the LoRA update folded in (computed one layer at a time; the model itself is not modified)."""
        if self.lora is None:
            yield from self.model.state_dict().items()
            return
        from peft.tuners.lora import LoraLayer

        base = self.model.get_base_model()
        lora_layers = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
        for name, tensor in base.state_dict().items():  # detached tensors
            owner, _, leaf = name.rpartition(".")
            if owner.endswith(".base_layer") and owner.removesuffix(".base_layer") in lora_layers:
                layer = lora_layers[owner.removesuffix(".base_layer")]
                if leaf == "weight":
                    # Grad mode is thread-global: switch it off only here, never across a yield.
                    with torch.no_grad():
                        tensor = tensor + sum(layer.get_delta_weight(a).to(tensor.dtype) for a in layer.active_adapters)
                yield f"{owner.removesuffix('.base_layer')}.{leaf}", tensor
            elif ".lora_" not in name:
                yield name, tensor

    def _sync_backend(self) -> None:
        """Push the weights to the external backend if any parameter changed since the last push (tensor version
        counters move on every in-place update: optimiser steps, :meth:`load`, :meth:`freeze_reference`)."""
        assert self.backend is not None
        version = self.weights_version()
        if version != self._synced_version:
            self.backend.update_weights(self.inference_weights())
            self._synced_version = version

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        """Write the policy compactly: the trained weights (full fine-tuning: ``weights.safetensors``; LoRA:
        ``adapter.safetensors`` only), ``config.json``, ``tokenizer/`` and ``spo3_hf_policy.json``.

        The reference (full fine-tuning: the frozen copy; LoRA: the base weights) is written only once
        :meth:`freeze_reference` has changed it (``reference.safetensors``, or with LoRA the merged base in
        ``weights.safetensors``). Otherwise it is the model the policy was built from, so a 7B checkpoint is not
        doubled: the metadata keeps a fingerprint of it instead, and :meth:`load` refuses a policy built from a
        different model."""
        from safetensors.torch import save_file, save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in (WEIGHTS_FILE, ADAPTER_FILE, REFERENCE_FILE):
            (directory / stale).unlink(missing_ok=True)
        if self.lora is not None and not self._reference_frozen:
            save_file({k: v.detach().contiguous() for k, v in _adapter_state(self.model).items()}, str(directory / ADAPTER_FILE))
        else:
            save_model(self.model, str(directory / WEIGHTS_FILE))
        if self._reference is not None and self._reference_frozen:
            save_model(self._reference, str(directory / REFERENCE_FILE))
        self.base_model.config.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        meta = {
            "format": FORMAT, "version": VERSION, "model_class": _class_name(self.base_model),
            "dtype": str(next(self.base_model.parameters()).dtype).removeprefix("torch."),
            "lora": asdict(self.lora) if self.lora is not None else None,
            "max_new_tokens": self.max_new_tokens, "score_temperature": self.score_temperature,
            "reference_frozen": self._reference_frozen, "reference_fingerprint": self._reference_fingerprint(),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=1))

    def _reference_fingerprint(self) -> str:
        return _fingerprint(self._reference.state_dict() if self._reference is not None else _base_state(self.model))

    def load(self, directory: Path) -> None:
        """Load what :meth:`save` wrote into this policy (same architecture and LoRA settings), tokenizer included.
        Every file is checked before any weight changes; a foreign or damaged directory, or a checkpoint whose
        left-out reference is not this policy's, raises ``ValueError`` naming the file."""
        directory = Path(directory)
        meta = _read_meta(directory)
        saved_lora = LoraSettings(**{**meta["lora"], "targets": tuple(meta["lora"]["targets"])}) if meta["lora"] else None
        if saved_lora != self.lora:
            raise ValueError(f"{directory}: saved with LoRA settings {saved_lora}, this policy has {self.lora}")
        if meta["model_class"] != _class_name(self.base_model):
            raise ValueError(f"{directory}: holds a {meta['model_class']}, this policy a {_class_name(self.base_model)}")
        if (directory / ADAPTER_FILE).exists():
            weights = _read_weights(directory / ADAPTER_FILE, self.model, _adapter_state(self.model))
        else:
            weights = _read_weights(directory / WEIGHTS_FILE, self.model)
        reference = None
        if self._reference is not None and (directory / REFERENCE_FILE).exists():
            reference = _read_weights(directory / REFERENCE_FILE, self._reference)
        elif not meta["reference_frozen"] and self._reference_fingerprint() != meta["reference_fingerprint"]:
            raise ValueError(
                f"{directory / META_FILE}: the checkpoint leaves out its reference model, and this policy was built "
                "from a different one (build it from the same model source and seed, as the trainer does)"
            )
        tokenizer = _read_tokenizer(directory / TOKENIZER_DIR)
        if len(tokenizer) > self.base_model.get_input_embeddings().num_embeddings:
            raise ValueError(f"{directory / TOKENIZER_DIR}: {len(tokenizer)} tokens do not fit the model's embeddings")
        with torch.no_grad():
            self.model.load_state_dict(weights, strict=False)
            if reference is not None:
                self._reference.load_state_dict(reference, strict=False)  # type: ignore[union-attr]
        self._set_tokenizer(tokenizer)
        self._reference_frozen = bool(meta["reference_frozen"])
        self._loads += 1

    @classmethod
    def from_directory(
        cls, directory: Path, *, device: str = "cpu", seed: int = 0, backend: GenerationBackend | None = None,
    ) -> HFPolicy:
        """Rebuild a policy from a self-contained directory :meth:`save` wrote (no other input needed): one saved
        after :meth:`freeze_reference`. A compact checkpoint (reference left out) needs the policy built from its
        model source first, then :meth:`load`."""
        from transformers import AutoConfig, AutoModelForCausalLM

        directory = Path(directory)
        meta = _read_meta(directory)
        if not meta["reference_frozen"]:
            raise ValueError(
                f"{directory}: a compact checkpoint (its reference model is left out); build the policy from its model "
                "source (spo3.builders.build_policy with the run's config) and call load() instead"
            )
        try:
            config = AutoConfig.from_pretrained(directory)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{directory / 'config.json'}: unreadable model config ({exc})") from exc
        with torch.random.fork_rng(devices=[]):  # the random init is overwritten by load()
            model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, meta["dtype"]))
        lora = meta["lora"] or {}
        policy = cls(
            model.to(device), _read_tokenizer(directory / TOKENIZER_DIR), seed=seed, max_new_tokens=meta["max_new_tokens"],
            lora_rank=lora.get("rank", 0), lora_alpha=lora.get("alpha", 16),
            lora_targets=tuple(lora.get("targets", DEFAULT_LORA_TARGETS)), score_temperature=meta["score_temperature"],
            backend=backend,
        )
        policy.load(directory)
        return policy


# -------------------------------------------------------------------------------------------------- helpers
def _cuda_devices(model: torch.nn.Module) -> list[int]:
    device = next(model.parameters()).device
    return [device.index or 0] if device.type == "cuda" else []


def _class_name(model: torch.nn.Module) -> str:
    """The model's class name; under FSDP2 that of the class it wraps (FSDP2 swaps in a subclass "FSDP<name>")."""
    return next(c.__name__ for c in type(model).__mro__ if not c.__name__.startswith("FSDP"))


def _lora_settings(model: PreTrainedModel, rank: int, alpha: int, targets: Sequence[str]) -> LoraSettings:
    linear = {name.rpartition(".")[2] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    present = tuple(t for t in targets if t in linear)
    if not present:
        raise ValueError(
            f"LoRA: {type(model).__name__} has no linear layer named any of {list(targets)} (its linear layers: "
            f"{sorted(linear)})"
        )
    return LoraSettings(rank=rank, alpha=alpha, targets=present)


def _adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA adapter's tensors of a peft-wrapped model, under their state-dict names."""
    return {k: v for k, v in model.state_dict().items() if "lora_" in k}


def _base_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of a peft-wrapped model but the adapter's: the base weights."""
    return {k: v for k, v in model.state_dict().items() if "lora_" not in k}


def _fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """A cheap identity of a set of weights: name, shape, dtype and the first 1024 values of every tensor."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        head = tensor.detach().reshape(-1)[:1024].to("cpu", torch.float32).numpy().tobytes()
        h.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode() + head)
    return h.hexdigest()


def _frozen_copy(model: PreTrainedModel) -> PreTrainedModel:
    import copy

    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


def _read_meta(directory: Path) -> dict[str, Any]:
    path = directory / META_FILE
    if not directory.is_dir():
        raise ValueError(f"{directory}: no such policy directory")
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{directory}: not an HF policy directory (no {META_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: damaged ({exc})") from None
    required = {
        "format", "version", "model_class", "dtype", "lora", "max_new_tokens", "score_temperature",
        "reference_frozen", "reference_fingerprint",
    }
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION or required - set(meta):
        raise ValueError(f"{path}: not a {FORMAT} version {VERSION} file")
    return meta


def _read_weights(path: Path, module: torch.nn.Module, expected: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, checked to cover every tensor of ``expected`` (default: ``module``'s whole state,
    tied weights once) with the right shapes, so that a mismatch is reported before anything is loaded."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ValueError(f"{path}: unreadable weights ({exc})") from None
    expected = module.state_dict() if expected is None else expected
    for name, tensor in tensors.items():
        if name not in expected or expected[name].shape != tensor.shape:
            shape = tuple(expected[name].shape) if name in expected else "absent"
            raise ValueError(f"{path}: tensor {name} {tuple(tensor.shape)} does not fit this model ({shape})")
    covered = {expected[name].data_ptr() for name in tensors}
    missing = [name for name, t in expected.items() if t.data_ptr() not in covered]
    if missing:
        raise ValueError(f"{path}: lacks {len(missing)} tensors of this model, e.g. {missing[0]}")
    return tensors


def _read_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    if not directory.is_dir():
        raise ValueError(f"{directory}: missing tokenizer directory")
    try:
        return AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{directory}: unreadable tokenizer ({exc})") from None


def build_hf_policy(cfg: PolicyConfig, seed: int, corpus: Sequence[str] = ()) -> HFPolicy:
    """The :class:`HFPolicy` of ``cfg`` (``kind: hf``): model and tokenizer from
    :func:`spo3.policies.hf_models.load_model_and_tokenizer`, LoRA, dtype and device as configured, and scoring at
    the training temperature (1.0 when that is 0, i.e. greedy).

    Args:
      cfg: the policy section of the configuration.
      seed: initialisation and sampling seed.
      corpus: environment texts for the tiny model's tokenizer (``spo3.builders.env_corpus``).
    """
    from spo3.policies.hf_models import load_model_and_tokenizer

    if cfg.kind != "hf":
        raise ValueError(f"build_hf_policy: policy.kind={cfg.kind!r}, expected 'hf'")
    model, tokenizer = load_model_and_tokenizer(cfg.model, seed, corpus, getattr(torch, cfg.dtype))
    try:
        model = model.to(cfg.device)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"policy.device: cannot place the model on {cfg.device!r} ({exc})") from exc
    return HFPolicy(
        model, tokenizer, seed=seed, max_new_tokens=cfg.max_new_tokens, lora_rank=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha, score_temperature=cfg.temperature if cfg.temperature > 0 else 1.0,
    )
