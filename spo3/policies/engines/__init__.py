"""Rollout engines: what turns token-id prompts into sampled continuations with their log-probabilities.

:class:`~spo3.policies.engines.base.GenerationEngine` is the interface; :class:`~spo3.policies.engines.hf.HFEngine`
(transformers ``generate`` on the trainer's own model, the default and the one CI runs) and
:class:`~spo3.policies.engines.vllm.VLLMEngine` (a colocated vLLM ``LLM``, ``policy.backend: vllm``) implement it
side by side. The :class:`~spo3.policies.hf.HFPolicy` renders and tokenises prompts, cuts and decodes responses,
scores and trains; the engine only continues token ids and receives the trainer's weights when they change.
"""

from spo3.policies.engines.base import Generated, GenerationEngine, SamplingSpec

__all__ = ["Generated", "GenerationEngine", "SamplingSpec"]
