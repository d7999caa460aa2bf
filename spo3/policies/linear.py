"""A linear softmax policy over hashed text features of (observation, action): the cheapest policy that
generalises across states.

The tabular policy learns one logit per (state, action) and so cannot carry anything from one game to the next;
in the paper's regime (16 new games per step out of thousands) nearly every state it meets is new to it. A
language model generalises but costs ~1,000x more per decision on CPU. This policy sits between: the logit of
action ``a`` in a decision whose prompt is ``p`` is

    logit(p, a) = (1 / sqrt(|F(p, a)|)) * sum_{f in F(p, a)} w[h(f)]

over a set of binary features ``F(p, a)``, hashed into ``dim`` weights ``w`` (the hashing trick):

* ``a:<word>`` and ``A:<action>``: the action's words and the whole action (a per-action bias);
* ``o:<word>|<aword>``: each distinct word of the *current observation* paired with each word of the action
  ("coin" in view -> "take"), and ``h:<word>|<aword>``: the same for the rest of the prompt (the task and the
  K-step history, e.g. "go north" one step ago -> "south" is going back).

* for a bracketed action (WebShop's ``click[x]`` and ``search[x]``) also ``m:arg``, once per word of ``x`` found
  in the task, and ``m:next``, once per word of the current observation's segment that follows the one reading
  ``x`` (on a results page, the title after a product's id) found in the task. A product id says nothing of the
  product, and word pairs are specific to the words of one goal, so without these counts the policy cannot learn
  "open the product whose title matches the instruction" or "pick the option the instruction names" in a way that
  carries over to new goals. Other families' actions have no brackets, so their features are unchanged.

The prompt is split with the phrases the templates of :mod:`spo3.envs.prompts` share: everything from "admissible
actions" on is left out (it lists the candidates, identical for every action), and "current observation is"
separates the history from the current observation. Words are lower-cased alphanumeric runs. The 1/sqrt scaling
keeps a logit's change per optimiser step of the same order whatever the prompt's length. Hashes are CRC-32
(stable across processes), so a run is reproducible and a checkpoint portable.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from spo3.policies.base import PolicyInput
from spo3.policies.softmax import ActionSoftmaxPolicy, pad_logits

__all__ = ["LinearPolicy", "features"]

_WORD = re.compile(r"[a-z0-9]+")
_ACTIONS_PHRASE = "admissible actions"
_CURRENT_PHRASE = "current observation is"
_TASK_PHRASE = "your task is to:"
_BRACKETED = re.compile(r"[a-z ]+\[(.+)\]")
_SEGMENT = " [sep] "
"""WebShop's separator of page elements (lower-cased)."""


def _words(text: str) -> list[str]:
    return sorted(set(_WORD.findall(text.lower())))


def _prompt_sections(prompt: str) -> tuple[str, str]:
    """(history text, current-observation text) of a rendered prompt, lower-cased."""
    lowered = prompt.lower()
    cut = lowered.find(_ACTIONS_PHRASE)
    body = lowered if cut < 0 else lowered[:cut]
    head, sep, current = body.rpartition(_CURRENT_PHRASE)
    return (head, current) if sep else ("", body)


def _match_features(history: str, current: str, action: str) -> list[str]:
    """``m:arg`` / ``m:next`` per task word in a bracketed action's argument / in the segment after it (see above)."""
    bracketed = _BRACKETED.fullmatch(action.lower())
    if not bracketed:
        return []
    _, sep, task = history.partition(_TASK_PHRASE)
    task_words = set(_WORD.findall(task.split("\n", 1)[0])) if sep else set()
    argument = bracketed.group(1)
    segments = [part.strip().strip(".").strip().strip("'") for part in current.split(_SEGMENT)]
    after = segments[segments.index(argument) + 1] if argument in segments[:-1] else ""
    return (["m:arg"] * sum(w in task_words for w in _words(argument))
            + ["m:next"] * sum(w in task_words for w in _words(after)))


def features(prompt: str, action: str) -> list[str]:
    """The feature names of (prompt, action), before hashing (for inspection and tests)."""
    history_text, current_text = _prompt_sections(prompt)
    history, current = _words(history_text), _words(current_text)
    action_words = _words(action)
    return (
        [f"A:{action}"] + [f"a:{w}" for w in action_words]
        + [f"o:{p}|{w}" for p in current for w in action_words]
        + [f"h:{p}|{w}" for p in history for w in action_words]
        + _match_features(history_text, current_text, action)
    )


def _crc(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


class LinearPolicy(ActionSoftmaxPolicy):
    """Softmax over admissible actions with logits linear in hashed (prompt, action) features.

    Args:
      seed: seed of the sampling generator.
      dim: number of hashed weights (a power of two is customary; collisions are rare below ~dim/10 features).
      cache_size: prompts whose feature indices are kept (a rollout scores the same prompts again in its update).
    """

    FILES = ("linear.safetensors", "linear.json")

    def __init__(self, seed: int = 0, dim: int = 1 << 18, cache_size: int = 4096) -> None:
        if dim < 1:
            raise ValueError(f"LinearPolicy: dim={dim} must be >= 1")
        self.dim = int(dim)
        self.weights = torch.nn.Parameter(torch.zeros(self.dim, dtype=torch.float64))
        self._reference = self.weights.detach().clone()
        self._generator = torch.Generator().manual_seed(seed)
        self._cache: OrderedDict[tuple[str, tuple[str, ...]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()
        self._cache_size = cache_size

    def _indices(self, inp: PolicyInput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(feature indices, their action position, per-action scale) of one decision, cached by prompt."""
        if not inp.actions:
            raise ValueError(f"LinearPolicy: no admissible actions in context {inp.context!r}")
        key = (inp.prompt, inp.actions)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        rows, owner, scale = [], [], []
        for j, action in enumerate(inp.actions):
            names = features(inp.prompt, action)
            rows.append(np.fromiter(map(_crc, names), dtype=np.int64, count=len(names)) % self.dim)
            owner.append(np.full(len(names), j, dtype=np.int64))
            scale.append(1.0 / math.sqrt(len(names)))
        entry = (torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(owner)), torch.tensor(scale, dtype=torch.float64))
        self._cache[key] = entry
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return entry

    def _padded(self, table: torch.Tensor, inputs: Sequence[PolicyInput]) -> torch.Tensor:
        per_input = []
        for inp in inputs:
            index, owner, scale = self._indices(inp)
            sums = torch.zeros(len(inp.actions), dtype=table.dtype).index_add(0, owner, table[index])
            per_input.append(sums * scale)
        return pad_logits(per_input)

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"weights": self.weights.detach().clone(), "reference": self._reference.clone()}, str(directory / self.FILES[0]))
        (directory / self.FILES[1]).write_text(json.dumps({"dim": self.dim}))

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        try:
            tensors = load_file(str(directory / self.FILES[0]))
            dim = json.loads((directory / self.FILES[1]).read_text())["dim"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{directory}: not a readable linear policy ({exc})") from exc
        if dim != self.dim or tensors["weights"].shape != (self.dim,):
            raise ValueError(f"{directory}: linear policy of dim {dim} does not fit this one (dim {self.dim})")
        with torch.no_grad():
            self.weights.copy_(tensors["weights"])
        self._reference = tensors["reference"].clone()
