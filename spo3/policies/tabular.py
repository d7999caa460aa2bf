"""A tabular softmax policy: one logit per (decision context, admissible action).

It isolates the algorithms from model capacity and makes many-seed experiments cheap, while going through the
same protocol, advantages and PPO loss as a language model: a response is the chosen action rendered in
upstream's format (``<think></think><action>...</action>``), its single "token" is the action's index among the
admissible actions, and its entropy is that of the softmax over them.

Logits live in one preallocated parameter vector (``capacity`` entries, created lazily in order of first use),
so the optimiser state never has to be rebuilt; exceeding the capacity is a clear error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import torch
from safetensors.torch import load_file, save_file

from spo3.policies.base import Policy, PolicyInput, Response, TokenScores

__all__ = ["TabularPolicy", "format_action"]


def format_action(action: str) -> str:
    """Render an action the way an LLM policy is asked to reply (so action parsing treats both alike)."""
    return f"<think></think><action>{action}</action>"


class TabularPolicy(Policy):
    """Softmax over admissible actions per context.

    Args:
      seed: seed of the sampling generator.
      capacity: maximum number of (context, action) entries.
      init_logit: initial logit of every entry (0 gives a uniform policy).
    """

    FILES = ("tabular.safetensors", "tabular_index.json")

    def __init__(self, seed: int = 0, capacity: int = 1 << 18, init_logit: float = 0.0) -> None:
        if capacity < 1:
            raise ValueError(f"TabularPolicy: capacity={capacity} must be >= 1")
        self.capacity = capacity
        self.init_logit = float(init_logit)
        self.logits = torch.nn.Parameter(torch.full((capacity,), self.init_logit, dtype=torch.float64))
        self._reference = self.logits.detach().clone()
        self._index: dict[tuple[str, str], int] = {}
        self._generator = torch.Generator().manual_seed(seed)

    # ---------------------------------------------------------------- table
    def _rows(self, inp: PolicyInput) -> list[int]:
        if not inp.actions:
            raise ValueError(f"TabularPolicy: no admissible actions in context {inp.context!r}")
        rows = []
        for action in inp.actions:
            key = (inp.context, action)
            row = self._index.get(key)
            if row is None:
                if len(self._index) >= self.capacity:
                    raise RuntimeError(
                        f"TabularPolicy: capacity {self.capacity} exhausted; raise policy.tabular_capacity"
                    )
                row = self._index[key] = len(self._index)
            rows.append(row)
        return rows

    def _padded(self, table: torch.Tensor, inputs: Sequence[PolicyInput]) -> torch.Tensor:
        """``(B, A_max)`` logits with -inf beyond each input's action count."""
        rows = [self._rows(inp) for inp in inputs]
        width = max(len(r) for r in rows)
        index = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        valid = torch.tensor([[j < len(r) for j in range(width)] for r in rows])
        return table[index].masked_fill(~valid, -math.inf)

    @property
    def size(self) -> int:
        """Number of (context, action) entries in use."""
        return len(self._index)

    # ---------------------------------------------------------------- protocol
    def sample(self, inputs: Sequence[PolicyInput], n: Sequence[int], temperature: float = 1.0) -> list[list[Response]]:
        if len(n) != len(inputs):
            raise ValueError(f"sample: {len(inputs)} inputs but {len(n)} counts")
        if not inputs:
            return []
        with torch.no_grad():
            logits = self._padded(self.logits, inputs)
            logp = torch.log_softmax(logits, dim=-1)
            out = []
            for i, (inp, k) in enumerate(zip(inputs, n)):
                if temperature == 0:
                    picks = [int(torch.argmax(logp[i]))] * k
                else:
                    # Only this input's actions: multinomial's use of the generator depends on the vector's
                    # length, and the batch's padding width must not change what an input draws.
                    probs = torch.softmax(logits[i, : len(inp.actions)] / temperature, dim=-1)
                    picks = torch.multinomial(probs, k, replacement=True, generator=self._generator).tolist() if k else []
                out.append([Response(format_action(inp.actions[j]), (j,), (float(logp[i, j]),)) for j in picks])
        return out

    def _scores(self, table: torch.Tensor, inputs: Sequence[PolicyInput], responses: Sequence[Response], entropy: bool) -> TokenScores:
        if len(inputs) != len(responses):
            raise ValueError(f"{len(inputs)} inputs but {len(responses)} responses")
        logp = torch.log_softmax(self._padded(table, inputs), dim=-1)
        chosen = torch.tensor([[r.token_ids[0]] for r in responses])
        ent = None
        if entropy:
            p = logp.exp()
            ent = -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1, keepdim=True)
        return TokenScores(logprobs=logp.gather(1, chosen), mask=torch.ones(len(responses), 1, dtype=logp.dtype), entropy=ent)

    def token_scores(self, inputs: Sequence[PolicyInput], responses: Sequence[Response], entropy: bool = True) -> TokenScores:
        return self._scores(self.logits, inputs, responses, entropy)

    def reference_logprobs(self, inputs: Sequence[PolicyInput], responses: Sequence[Response]) -> torch.Tensor:
        with torch.no_grad():
            return self._scores(self._reference, inputs, responses, entropy=False).logprobs

    def freeze_reference(self) -> None:
        """Make the current table the reference policy (after a supervised warm start)."""
        self._reference = self.logits.detach().clone()

    def parameters(self) -> Iterable[torch.nn.Parameter]:
        return [self.logits]

    def probabilities(self, inp: PolicyInput) -> dict[str, float]:
        """The action distribution at one decision (for inspection and tests)."""
        with torch.no_grad():
            p = torch.softmax(self._padded(self.logits, [inp])[0], dim=-1)
        return {a: float(p[j]) for j, a in enumerate(inp.actions)}

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        n = len(self._index)
        save_file(
            {"logits": self.logits.detach()[:n].clone(), "reference": self._reference[:n].clone()},
            str(directory / self.FILES[0]),
        )
        meta = {"capacity": self.capacity, "init_logit": self.init_logit, "index": [list(k) for k in self._index]}
        (directory / self.FILES[1]).write_text(json.dumps(meta))

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        try:
            tensors = load_file(str(directory / self.FILES[0]))
            meta = json.loads((directory / self.FILES[1]).read_text())
            index = {(c, a): i for i, (c, a) in enumerate(meta["index"])}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{directory}: not a readable tabular policy ({exc})") from exc
        n = len(index)
        if tensors["logits"].shape != (n,) or n > self.capacity:
            raise ValueError(f"{directory}: tabular policy with {n} entries does not fit (capacity {self.capacity})")
        with torch.no_grad():
            self.logits.fill_(meta["init_logit"])
            self.logits[:n] = tensors["logits"]
            self._reference = torch.full_like(self._reference, meta["init_logit"])
            self._reference[:n] = tensors["reference"]
        self.init_logit = meta["init_logit"]
        self._index = index

    def response_for(self, inp: PolicyInput, text: str) -> Response:
        action = text
        if text.startswith("<think></think><action>") and text.endswith("</action>"):
            action = text[len("<think></think><action>") : -len("</action>")]
        if action not in inp.actions:
            raise ValueError(f"TabularPolicy: {action!r} is not an admissible action here")
        return Response(format_action(action), (inp.actions.index(action),), ())

