"""LoRA adapters (peft) of an :class:`spo3.policies.hf.HFPolicy`: which layers, wrapping, folding an adapter into the
base weights, and the merged weights an inference engine loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

__all__ = ["DEFAULT_LORA_TARGETS", "LoraSettings", "fold_adapter", "lora_settings", "merged_weights", "wrap_lora"]

DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Attention and MLP projection names shared by Qwen2, Llama (SmolLM2) and Mistral-style models."""


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA adapter of an :class:`~spo3.policies.hf.HFPolicy`."""

    rank: int
    alpha: int
    targets: tuple[str, ...]
    """Module-name suffixes actually adapted (those of the requested targets present in the model)."""


def lora_settings(model: torch.nn.Module, rank: int, alpha: int, targets: Sequence[str]) -> LoraSettings:
    """The settings adapting those of ``targets`` that name linear layers of ``model``."""
    linear = {name.rpartition(".")[2] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    present = tuple(t for t in targets if t in linear)
    if not present:
        raise ValueError(
            f"LoRA: {type(model).__name__} has no linear layer named any of {list(targets)} (its linear layers: "
            f"{sorted(linear)})"
        )
    return LoraSettings(rank=rank, alpha=alpha, targets=present)


def wrap_lora(model: torch.nn.Module, lora: LoraSettings, seed: int) -> Any:
    """``model`` wrapped in a peft LoRA adapter (dropout 0), its initialisation seeded by ``seed``."""
    from peft import LoraConfig, get_peft_model

    from spo3.policies.engines.hf import seeded

    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=0.0, target_modules=list(lora.targets))
    with seeded(model, seed):
        return get_peft_model(model, config)


def fold_adapter(model: Any) -> None:
    """Add each adapter's update into its base weight and re-initialise the adapter in place (B = 0, so the model's
    function is unchanged). Draws the re-initialisation from the global torch RNG: seed it around the call."""
    from peft.tuners.lora import LoraLayer

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoraLayer):
                for name in module.active_adapters:
                    base = module.get_base_layer()
                    base.weight.add_(module.get_delta_weight(name).to(base.weight.dtype))
                    module.reset_lora_parameters(name, init_lora_weights=True)


def merged_weights(model: Any, with_adapter: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of a peft-wrapped model named as the plain transformers model: with the adapter's update
    folded in (one layer at a time; the model is not modified), or the base weights alone."""
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    lora_layers = {name: m for name, m in base.named_modules() if isinstance(m, LoraLayer)}
    for name, tensor in base.state_dict().items():  # detached tensors
        owner, _, leaf = name.rpartition(".")
        if owner.endswith(".base_layer") and owner.removesuffix(".base_layer") in lora_layers:
            layer = lora_layers[owner.removesuffix(".base_layer")]
            if leaf == "weight" and with_adapter:
                # Grad mode is thread-global: switch it off only here, never across a yield.
                with torch.no_grad():
                    tensor = tensor + sum(layer.get_delta_weight(a).to(tensor.dtype) for a in layer.active_adapters)
            yield f"{owner.removesuffix('.base_layer')}.{leaf}", tensor
        elif ".lora_" not in name:
            yield name, tensor
