"""A colocated vLLM engine (``policy.backend: vllm``; GPU only, ``pip install 'spo3[gpu]'``, vLLM 0.33.0).

**Never executed in CI**: vLLM needs CUDA and pins its own torch build. ``tests/policies/test_vllm_engine.py``
drives this class with a fake that has the call surface of vLLM 0.33.0 (``LLM.generate`` with token-id prompts and
``lora_request``, ``LLM.apply_model``, ``LLM.reset_prefix_cache``, ``SamplingParams``, ``LoRARequest``).

* **Colocated.** The engine runs in the trainer's process and on its GPU: :meth:`VLLMEngine.start` sets
  ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (engine core and worker in-process) so that :meth:`load_weights` hands the
  trainer's tensors to the model without serialising them, and ``gpu_memory_utilization`` (a config field) caps the
  share of GPU memory vLLM takes for weights and KV cache, leaving the rest to training.
* **Sampling.** ``n`` completions per prompt in one request (``SamplingParams(n=...)``), each with the sampled
  tokens' log-probabilities (``logprobs=0``). Request ``i`` gets seed ``spec.seed + i``. vLLM's default
  ``logprobs_mode="raw_logprobs"`` reports the model's temperature-1 distribution; :meth:`start` asks for
  ``processed_logprobs`` so they are those of the distribution sampled from, as the HF engine's. The trainer
  recomputes old log-probabilities with its own model; these are only logged.
* **Weight sync without a restart.** Full weights go through the model's own loader,
  ``LLM.apply_model(lambda model: model.load_weights(weights))`` (vLLM's ``load_weights`` takes transformers
  names and fuses q/k/v and gate/up itself). A LoRA adapter is written in peft's format to a fresh directory and
  served through ``LoRARequest(name, new int id, path)`` on every later ``generate``: vLLM loads an adapter per id,
  so a new id per sync is what makes it reload. Either way the prefix cache is reset (its KV entries were computed
  with the old weights).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from spo3.policies.engines.base import Generated, GenerationEngine, SamplingSpec

__all__ = ["VLLM_VERSION", "VLLMEngine"]

VLLM_VERSION = "0.33.0"
"""The vLLM release this engine is written against (the ``gpu`` extra pins it)."""


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"policy.backend=vllm needs vllm {VLLM_VERSION} (CUDA GPUs only): pip install 'spo3[gpu]'"
        ) from exc
    return vllm


class VLLMEngine(GenerationEngine):
    """Generation through a vLLM ``LLM`` held in this process.

    Args:
      llm: a ``vllm.LLM`` (or an object with its call surface).
      sampling_params: the ``SamplingParams`` class; ``None`` imports vLLM's.
      lora_request: the ``LoRARequest`` class; ``None`` imports vLLM's.
      serves_adapters: the engine was started with LoRA enabled, so a LoRA policy sends only its adapter.
    """

    def __init__(
        self, llm: Any, sampling_params: type | None = None, lora_request: type | None = None,
        serves_adapters: bool = False,
    ) -> None:
        self.llm = llm
        self._sampling_params = sampling_params
        self._lora_request_cls = lora_request
        self.serves_adapters = serves_adapters
        self._adapter: Any = None
        self._adapter_ids = 0
        self._adapter_root: Path | None = None

    @classmethod
    def start(
        cls, model: str, *, dtype: str, seed: int, gpu_memory_utilization: float, max_model_len: int | None = None,
        lora_rank: int = 0, **engine_kwargs: Any,
    ) -> VLLMEngine:
        """Start ``vllm.LLM`` on ``model`` (a directory or hub name) in this process, colocated with training."""
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        vllm = _import_vllm()
        if lora_rank > 0:
            engine_kwargs.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
        llm = vllm.LLM(
            model=model, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len, logprobs_mode="processed_logprobs", **engine_kwargs,
        )
        from vllm.lora.request import LoRARequest

        return cls(llm, vllm.SamplingParams, LoRARequest, serves_adapters=lora_rank > 0)

    @classmethod
    def colocated(cls, model: Any, tokenizer: Any, source: str, cfg: Any, seed: int) -> VLLMEngine:
        """The engine of a policy built from ``policy`` config ``cfg``: vLLM reads ``source`` when it is a model
        directory, else the trainer's freshly built ``model`` and ``tokenizer`` saved to a temporary directory
        (random-init and packaged models), so that it starts from exactly the trainer's weights."""
        _import_vllm()  # fail before writing anything
        if not Path(source).is_dir():
            directory = tempfile.mkdtemp(prefix="spo3-vllm-model-")
            model.save_pretrained(directory)
            tokenizer.save_pretrained(directory)
            source = directory
        return cls.start(
            source, dtype=cfg.dtype, seed=seed, gpu_memory_utilization=cfg.gpu_memory_utilization,
            lora_rank=cfg.lora_rank,
        )

    def generate(self, prompts: Sequence[Sequence[int]], n: Sequence[int], spec: SamplingSpec) -> list[list[Generated]]:
        """``n[i]`` continuations of token-id prompt ``i`` with the sampled tokens' log-probabilities."""
        params_cls = self._sampling_params or _import_vllm().SamplingParams
        asked = [i for i, k in enumerate(n) if k > 0]
        requests = [{"prompt_token_ids": list(prompts[i])} for i in asked]
        params = [
            params_cls(
                n=n[i], temperature=spec.temperature, top_p=1.0, top_k=0, min_p=0.0, max_tokens=spec.max_new_tokens,
                stop_token_ids=list(spec.stop_ids), logprobs=0, seed=spec.seed + i, detokenize=False,
            )
            for i in asked
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self._adapter) if requests else []
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} requests")
        result: list[list[Generated]] = [[] for _ in prompts]
        for i, output in zip(asked, outputs):
            for completion in output.outputs:
                ids = tuple(int(t) for t in completion.token_ids)
                # With logprobs=0 each step's entry holds exactly the sampled token.
                logprobs = tuple(float(step[t].logprob) for step, t in zip(completion.logprobs, ids))
                result[i].append(Generated(token_ids=ids, logprobs=logprobs))
        return result

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load full weights through the model's own ``load_weights`` and drop the stale prefix cache."""
        pairs = list(weights)  # every tensor-parallel worker reads the same list
        self.llm.apply_model(lambda model: model.load_weights(pairs))
        self.llm.reset_prefix_cache()

    def load_adapter(self, write: Callable[[Path], None]) -> None:
        """Write the adapter to a fresh directory and serve it under a new LoRA id from the next call on."""
        if not self.serves_adapters:
            raise RuntimeError("VLLMEngine: started without LoRA, so it cannot serve an adapter")
        if self._adapter_root is None:
            self._adapter_root = Path(tempfile.mkdtemp(prefix="spo3-vllm-lora-"))
        self._adapter_ids += 1
        directory = self._adapter_root / f"adapter-{self._adapter_ids}"
        write(directory)
        lora_cls = self._lora_request_cls
        if lora_cls is None:
            from vllm.lora.request import LoRARequest as lora_cls
        previous, self._adapter = self._adapter, lora_cls(
            lora_name=f"spo3-{self._adapter_ids}", lora_int_id=self._adapter_ids, lora_path=str(directory),
        )
        if previous is not None:  # vLLM has read it at its first use
            shutil.rmtree(previous.lora_path, ignore_errors=True)
        self.llm.reset_prefix_cache()
