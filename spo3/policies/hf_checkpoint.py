"""The on-disk format of an :class:`spo3.policies.hf.HFPolicy`: compact checkpoints, checked before anything loads.

A directory holds the trained weights (full fine-tuning: ``weights.safetensors``; LoRA: ``adapter.safetensors``
only), ``config.json``, ``tokenizer/`` and ``spo3_hf_policy.json``. The reference (full fine-tuning: the frozen
copy; LoRA: the base weights) is written only once ``freeze_reference`` has changed it (``reference.safetensors``,
or with LoRA the merged base in ``weights.safetensors``). Otherwise it is the model the policy was built from, so a
7B checkpoint is not doubled: the metadata keeps a fingerprint of it instead, and loading refuses a policy built
from a different model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch
from transformers import PreTrainedTokenizerBase

from spo3.policies.lora import DEFAULT_LORA_TARGETS, LoraSettings

# The functions take the HFPolicy (spo3.policies.hf, which imports this module) by duck typing.
HFPolicy = Any

__all__ = ["load_policy", "policy_from_directory", "save_policy"]

FORMAT = "spo3.hf_policy"
VERSION = 1
META_FILE = "spo3_hf_policy.json"
WEIGHTS_FILE = "weights.safetensors"
ADAPTER_FILE = "adapter.safetensors"
REFERENCE_FILE = "reference.safetensors"
TOKENIZER_DIR = "tokenizer"


def save_policy(policy: HFPolicy, directory: Path) -> None:
    """Write ``policy`` compactly into ``directory`` (see the module doc)."""
    from safetensors.torch import save_file, save_model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (WEIGHTS_FILE, ADAPTER_FILE, REFERENCE_FILE):
        (directory / stale).unlink(missing_ok=True)
    if policy.lora is not None and not policy._reference_frozen:
        save_file({k: v.detach().contiguous() for k, v in adapter_state(policy.model).items()}, str(directory / ADAPTER_FILE))
    else:
        save_model(policy.model, str(directory / WEIGHTS_FILE))
    if policy._reference is not None and policy._reference_frozen:
        save_model(policy._reference, str(directory / REFERENCE_FILE))
    policy.base_model.config.save_pretrained(directory)
    policy.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
    meta = {
        "format": FORMAT, "version": VERSION, "model_class": _class_name(policy.base_model),
        "dtype": str(next(policy.base_model.parameters()).dtype).removeprefix("torch."),
        "lora": asdict(policy.lora) if policy.lora is not None else None,
        "max_new_tokens": policy.max_new_tokens, "score_temperature": policy.score_temperature,
        "reference_frozen": policy._reference_frozen, "reference_fingerprint": _reference_fingerprint(policy),
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=1))


def load_policy(policy: HFPolicy, directory: Path) -> None:
    """Load what :func:`save_policy` wrote into ``policy`` (same architecture and LoRA settings), tokenizer
    included. Every file is checked before any weight changes; a foreign or damaged directory, or a checkpoint whose
    left-out reference is not this policy's, raises ``ValueError`` naming the file."""
    directory = Path(directory)
    meta = _read_meta(directory)
    saved_lora = LoraSettings(**{**meta["lora"], "targets": tuple(meta["lora"]["targets"])}) if meta["lora"] else None
    if saved_lora != policy.lora:
        raise ValueError(f"{directory}: saved with LoRA settings {saved_lora}, this policy has {policy.lora}")
    if meta["model_class"] != _class_name(policy.base_model):
        raise ValueError(f"{directory}: holds a {meta['model_class']}, this policy a {_class_name(policy.base_model)}")
    if (directory / ADAPTER_FILE).exists():
        weights = _read_weights(directory / ADAPTER_FILE, policy.model, adapter_state(policy.model))
    else:
        weights = _read_weights(directory / WEIGHTS_FILE, policy.model)
    reference = None
    if policy._reference is not None and (directory / REFERENCE_FILE).exists():
        reference = _read_weights(directory / REFERENCE_FILE, policy._reference)
    elif not meta["reference_frozen"] and _reference_fingerprint(policy) != meta["reference_fingerprint"]:
        raise ValueError(
            f"{directory / META_FILE}: the checkpoint leaves out its reference model, and this policy was built "
            "from a different one (build it from the same model source and seed, as the trainer does)"
        )
    tokenizer = _read_tokenizer(directory / TOKENIZER_DIR)
    if len(tokenizer) > policy.base_model.get_input_embeddings().num_embeddings:
        raise ValueError(f"{directory / TOKENIZER_DIR}: {len(tokenizer)} tokens do not fit the model's embeddings")
    with torch.no_grad():
        policy.model.load_state_dict(weights, strict=False)
        if reference is not None:
            policy._reference.load_state_dict(reference, strict=False)  # type: ignore[union-attr]
    policy._set_tokenizer(tokenizer)
    policy._reference_frozen = bool(meta["reference_frozen"])
    policy._loads += 1


def policy_from_directory(cls: Any, directory: Path, device: str, **kwargs: Any) -> HFPolicy:
    """Rebuild a policy from a self-contained directory (one saved after ``freeze_reference``); ``kwargs`` go to
    the constructor (seed, engine)."""
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
        model.to(device), _read_tokenizer(directory / TOKENIZER_DIR), max_new_tokens=meta["max_new_tokens"],
        lora_rank=lora.get("rank", 0), lora_alpha=lora.get("alpha", 16),
        lora_targets=tuple(lora.get("targets", DEFAULT_LORA_TARGETS)), score_temperature=meta["score_temperature"],
        **kwargs,
    )
    load_policy(policy, directory)
    return policy


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA adapter's tensors of a peft-wrapped model, under their state-dict names."""
    return {k: v for k, v in model.state_dict().items() if "lora_" in k}


def base_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of a peft-wrapped model but the adapter's: the base weights."""
    return {k: v for k, v in model.state_dict().items() if "lora_" not in k}


def _reference_fingerprint(policy: HFPolicy) -> str:
    return _fingerprint(policy._reference.state_dict() if policy._reference is not None else base_state(policy.model))


def _fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """A cheap identity of a set of weights: name, shape, dtype and the first 1024 values of every tensor."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        head = tensor.detach().reshape(-1)[:1024].to("cpu", torch.float32).numpy().tobytes()
        h.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode() + head)
    return h.hexdigest()


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


def _class_name(model: torch.nn.Module) -> str:
    """The model's class name; under FSDP2 that of the class it wraps (FSDP2 swaps in a subclass "FSDP<name>")."""
    return next(c.__name__ for c in type(model).__mro__ if not c.__name__.startswith("FSDP"))
