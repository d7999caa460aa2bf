"""Hugging Face causal language models as spo3 policies: :class:`HFPolicy` and :func:`build_hf_policy`.

Prompting follows upstream (verl-agent / 3SPO; ``shared/reference/upstream-interface.md`` §2.3): a decision's
prompt is ONE user message rendered through the tokenizer's chat template with ``add_generation_prompt=True``.
The policy renders and tokenises prompts, hands the token ids to its rollout engine
(:mod:`spo3.policies.engines`: transformers ``generate`` on this model, or a colocated vLLM) and cuts and decodes
what comes back; it scores and trains itself. Scoring lays a batch out as ``[left padding | prompt | response |
right padding]`` with position ids counted from each row's first real token, exactly the positions left-padded
generation saw. Rows of one batch that share a prompt (siblings) read its keys and values from one pass over it
(``policy.share_prompts``; :meth:`HFPolicy._score_shared`).

Log-probabilities: ``Response.logprobs`` are the engine's, of the distribution each token was sampled from (see
:mod:`spo3.policies.engines.hf`); the trainer does not use them (it recomputes the old log-probabilities with this
model), they are logged. :meth:`HFPolicy.token_scores` and :meth:`HFPolicy.reference_logprobs` score with
``log_softmax(z / T_s)``, ``T_s = score_temperature``: verl's actor likewise divides the logits by the rollout
temperature when it recomputes log-probabilities. ``build_hf_policy`` sets ``T_s`` to the training temperature
(upstream 1.0), so sampling and scoring log-probabilities agree up to float error. So when a response was sampled
by the HF engine (the trainer's own model) at the scoring temperature (or greedily with ``T_s = 1``), it carries
``Response.weights_version``, and while the weights have not changed since (:meth:`HFPolicy.weights_version`) its
sampling log-probabilities serve as PPO's old log-probabilities without another forward pass
(``optim.reuse_sampling_logprobs``). Any other engine's (vLLM) are never reused, only logged.

Reference policy: with LoRA (``lora_rank > 0``) it is the model with the adapter disabled (no second copy); with
full fine-tuning a frozen copy. :meth:`HFPolicy.freeze_reference` moves it to the current policy without ever
replacing a trainable parameter object, so an optimiser built earlier stays attached.

Determinism: the policy owns a ``torch.Generator``; every :meth:`HFPolicy.sample` call draws the engine's seed
from it, so the same seed gives the same samples and the caller's global RNG stream is left as it was. Given per-input generators (per-task random
streams), each response row draws its tokens from its own generator instead (``SamplingSpec.row_streams``),
independent of the batch around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from transformers import DynamicCache, GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from spo3.config import PolicyConfig, SetupError
from spo3.policies.base import Policy, PolicyInput, Response, TokenScores
from spo3.policies.engines.base import Generated, GenerationEngine, SamplingSpec
from spo3.policies.engines.hf import HFEngine, cache_argument, left_padded, seeded
from spo3.policies.lora import DEFAULT_LORA_TARGETS, LoraSettings, fold_adapter, lora_settings, merged_weights, wrap_lora
from spo3.policies.scoring import token_logprobs_and_entropy

__all__ = ["DEFAULT_LORA_TARGETS", "HFPolicy", "LoraSettings", "build_hf_policy", "check_device", "token_logprobs_and_entropy"]

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
      engine: the rollout engine; ``None`` generates with transformers' ``generate`` on this model
        (:class:`~spo3.policies.engines.hf.HFEngine`).
      share_prompts: compute a prompt shared by several rows of a batch once (scoring: :meth:`_score_shared`;
        generation: ``SamplingSpec.share_prompts``); ``False`` computes every row on its own.

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
        engine: GenerationEngine | None = None,
        share_prompts: bool = True,
    ) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"HFPolicy: max_new_tokens={max_new_tokens} must be >= 1")
        if lora_rank < 0:
            raise ValueError(f"HFPolicy: lora_rank={lora_rank} must be >= 0")
        if not score_temperature > 0:
            raise ValueError(f"HFPolicy: score_temperature={score_temperature} must be > 0")
        self.max_new_tokens = max_new_tokens
        self.score_temperature = float(score_temperature)
        self.share_prompts = share_prompts
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
            self.lora = lora_settings(model, lora_rank, lora_alpha, lora_targets)
            self.model = wrap_lora(model, self.lora, seed)
        else:
            self.model = model
            self._reference = _frozen_copy(model)
        self.model.eval()
        self.engine = engine if engine is not None else HFEngine(self.model)
        self._synced: tuple[int, int] | None = None  # (base, adapter) weight versions the engine holds
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

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def base_model(self) -> PreTrainedModel:
        """The transformers model (under the LoRA wrapper, if any)."""
        return self.model.get_base_model() if self.lora is not None else self.model

    def _next_seed(self) -> int:
        return int(torch.randint(0, 2**62, (1,), generator=self._generator))

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
        (``SamplingSpec.row_streams``); an external engine (vLLM) still takes one seed per call."""
        if len(n) != len(inputs):
            raise ValueError(f"sample: {len(inputs)} inputs but {len(n)} counts")
        if any(k < 0 for k in n):
            raise ValueError(f"sample: negative response count in n={list(n)}")
        if temperature < 0:
            raise ValueError(f"sample: temperature={temperature} must be >= 0")
        prompts = self.prompt_token_ids([inp.prompt for inp in inputs])
        counts = [min(k, 1) if temperature == 0 else k for k in n]
        streams = self._generators_for(inputs, generators) if generators is not None else None
        seed = self._next_seed() if streams is None or not self.engine.shares_model else 0
        if not any(counts):
            return [[] for _ in inputs]
        row_streams = None
        if streams is not None and temperature > 0 and self.engine.shares_model:
            row_streams = tuple(
                torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
                for g, c in zip(streams, counts) for _ in range(c)
            )
        self._sync_engine()
        spec = SamplingSpec(
            temperature, self.max_new_tokens, tuple(self._stop_ids), self._pad_id, seed, row_streams, self.share_prompts,
        )
        generated = self.engine.generate(prompts, counts, spec)
        if [len(g) for g in generated] != counts:
            raise RuntimeError(f"{type(self.engine).__name__}: asked for {counts} continuations, got {[len(g) for g in generated]}")
        # Only the trainer's own model at the scoring temperature records what token_scores would compute.
        same_distribution = self.score_temperature == (temperature if temperature > 0 else 1.0)
        version = self.weights_version() if self.engine.shares_model and same_distribution else None
        out = []
        for gens, k in zip(generated, n):
            responses = [self._response(g, version) for g in gens]
            out.append(responses * k if temperature == 0 else responses)
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
        if self.share_prompts and len({tuple(p) for p in prompts}) < batch:
            return self._score_shared(model, prompts, responses, entropy)
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

    def _score_shared(
        self, model: Any, prompts: list[list[int]], responses: Sequence[Response], entropy: bool,
    ) -> TokenScores:
        """:meth:`_score` with one pass over each distinct prompt: the prompts' keys and values are computed once
        (with autograd), handed to every row of that prompt as its KV cache, and the responses are scored on top.
        The same layout and positions as :meth:`_score`, so the same numbers up to float rounding; k responses to
        a prompt cost one prompt pass instead of k (``policy.share_prompts``)."""
        distinct = list(dict.fromkeys(tuple(p) for p in prompts))
        which = {p: u for u, p in enumerate(distinct)}
        rows = torch.tensor([which[tuple(p)] for p in prompts])
        batch, width = len(responses), max(len(p) for p in distinct)
        length = max(len(r.token_ids) for r in responses)
        prompt_ids, prompt_attention = left_padded(distinct, width, self._pad_id)
        response_ids = torch.full((batch, length), self._pad_id, dtype=torch.long)
        mask = torch.zeros((batch, length))
        for i, r in enumerate(responses):
            response_ids[i, : len(r.token_ids)] = torch.tensor(r.token_ids)
            mask[i, : len(r.token_ids)] = 1.0
        attention = torch.cat([prompt_attention[rows], mask.long()], dim=1)
        positions = (attention.cumsum(-1) - 1).clamp_min(0)
        device = self.device
        cache = {cache_argument(self.base_model): DynamicCache()}  # filled by the prompt pass, read by the rows
        prefix = model(
            input_ids=prompt_ids.to(device), attention_mask=prompt_attention.to(device),
            position_ids=(prompt_attention.cumsum(-1) - 1).clamp_min(0).to(device), use_cache=True, logits_to_keep=1,
            **cache,
        )
        next(iter(cache.values())).batch_select_indices(rows.to(device))
        logits = model(
            input_ids=response_ids.to(device), attention_mask=attention.to(device), position_ids=positions[:, width:].to(device),
            use_cache=True, logits_to_keep=length, **cache,
        ).logits
        # The last prompt position predicts each response's first token; the response positions the rest.
        logits = torch.cat([prefix.logits[rows.to(device)], logits[:, :-1]], dim=1)
        logp, ent = token_logprobs_and_entropy(logits, response_ids.to(device), self.score_temperature, entropy)
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
        with seeded(self.model, self._next_seed()):
            fold_adapter(self.model)

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        """The trainable parameters (LoRA: only the adapter's)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def train_mode(self, training: bool) -> None:
        self.model.train(training)

    def weights_version(self) -> int:
        """Grows with every change of the weights the policy samples from: tensor version counters move on every
        in-place update (optimiser steps, :meth:`freeze_reference` with LoRA), and :meth:`load` adds one."""
        return self._loads + sum(p._version for p in self.model.parameters())

    def inference_weights(self, with_adapter: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` of the current policy as a plain transformers model of the base class would name them;
        with LoRA, the adapter's update folded in (one layer at a time; the model itself is not modified) or, with
        ``with_adapter=False``, the base weights alone."""
        if self.lora is None:
            yield from self.model.state_dict().items()
        else:
            yield from merged_weights(self.model, with_adapter)

    def _sync_engine(self) -> None:
        """Bring the engine's weights up to date if any parameter changed since the last sync (tensor version
        counters move on every in-place update: optimiser steps, :meth:`load`, :meth:`freeze_reference`). An engine
        that serves adapters gets the base weights only when they changed (first use, :meth:`freeze_reference`
        under LoRA, :meth:`load`) and the adapter otherwise; any other engine gets the full weights, LoRA folded in."""
        if self.engine.shares_model:
            return
        base = sum(p._version for name, p in self.model.named_parameters() if "lora_" not in name)
        adapter = sum(p._version for name, p in self.model.named_parameters() if "lora_" in name)
        synced = self._synced
        if self.lora is not None and self.engine.serves_adapters:
            if synced is None or synced[0] != base:
                self.engine.load_weights(self.inference_weights(with_adapter=False))
            if synced is None or synced != (base, adapter):
                self.engine.load_adapter(self.model.save_pretrained)
        elif synced != (base, adapter):
            self.engine.load_weights(self.inference_weights())
        self._synced = (base, adapter)

    # ---------------------------------------------------------------- persistence (spo3.policies.hf_checkpoint)
    def save(self, directory: Path) -> None:
        """Write the policy compactly (:func:`spo3.policies.hf_checkpoint.save_policy`)."""
        from spo3.policies.hf_checkpoint import save_policy

        save_policy(self, directory)

    def load(self, directory: Path) -> None:
        """Load what :meth:`save` wrote, checked first (:func:`spo3.policies.hf_checkpoint.load_policy`)."""
        from spo3.policies.hf_checkpoint import load_policy

        load_policy(self, directory)

    @classmethod
    def from_directory(
        cls, directory: Path, *, device: str = "cpu", seed: int = 0, engine: GenerationEngine | None = None,
    ) -> HFPolicy:
        """Rebuild a policy from a self-contained directory :meth:`save` wrote (no other input needed): one saved
        after :meth:`freeze_reference`. A compact checkpoint (reference left out) needs the policy built from its
        model source first, then :meth:`load`."""
        from spo3.policies.hf_checkpoint import policy_from_directory

        return policy_from_directory(cls, directory, device, seed=seed, engine=engine)


# -------------------------------------------------------------------------------------------------- helpers
def _frozen_copy(model: PreTrainedModel) -> PreTrainedModel:
    import copy

    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


def check_device(device: str) -> None:
    """Raise :class:`SetupError` naming the fix when ``policy.device`` asks for an accelerator torch cannot see."""
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise SetupError(
            f"policy.device={device}: torch sees no CUDA GPU (torch {torch.__version__}); use policy.device=cpu, or on "
            "a GPU machine install a CUDA build of torch (conda env create -f environment-gpu.yml)"
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise SetupError(f"policy.device={device}: torch sees no Apple MPS device; use policy.device=cpu")


def build_hf_policy(cfg: PolicyConfig, seed: int, corpus: Sequence[str] = ()) -> HFPolicy:
    """The :class:`HFPolicy` of ``cfg`` (``kind: hf``): model and tokenizer from
    :func:`spo3.policies.hf_models.load_model_and_tokenizer`, LoRA, dtype, device and rollout engine
    (``policy.backend``) as configured, and scoring at the training temperature (1.0 when that is 0, i.e. greedy).

    Args:
      cfg: the policy section of the configuration.
      seed: initialisation and sampling seed.
      corpus: environment texts for the tiny model's tokenizer (``spo3.builders.env_corpus``).
    """
    from spo3.policies.hf_models import load_model_and_tokenizer

    if cfg.kind != "hf":
        raise ValueError(f"build_hf_policy: policy.kind={cfg.kind!r}, expected 'hf'")
    check_device(cfg.device)  # before loading: a 1.5B model takes minutes to load on CPU
    model, tokenizer = load_model_and_tokenizer(cfg.model, seed, corpus, getattr(torch, cfg.dtype))
    try:
        model = model.to(cfg.device)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(f"policy.device: cannot place the model on {cfg.device!r} ({exc})") from exc
    engine = None
    if cfg.backend == "vllm":
        from spo3.policies.engines.vllm import VLLMEngine

        engine = VLLMEngine.colocated(model, tokenizer, cfg.model, cfg, seed)
    return HFPolicy(
        model, tokenizer, seed=seed, max_new_tokens=cfg.max_new_tokens, lora_rank=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha, score_temperature=cfg.temperature if cfg.temperature > 0 else 1.0, engine=engine,
        share_prompts=cfg.share_prompts,
    )
