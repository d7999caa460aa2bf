"""Supervised warm start on expert trajectories, so that small models start RL from a non-trivial policy.

Experts are the environments' walkthroughs (ALFWorld, TextWorld) and the WebShop oracle. Each expert episode is
replayed through the same :class:`~spo3.rollout.common.Stepper` as RL rollouts, so the supervised inputs are
exactly the prompts the policy later sees; the target is the expert action in the reply format the action parser
expects (``<think></think><action>...</action>``). Only episodes the expert wins are used. After training, the
warm-started policy becomes the reference policy of the KL term.

The result is cached on disk (``warm_start.cache``) under a hash of everything it depends on: the initial policy
(its saved files: weights, tokenizer, settings), its and torch's RNG states, the expert decisions (so the data and
the environment settings), the warm-start settings, the micro-batch size, the policy config and this module's and
the policy class's source. Methods and ablations that share a warm start then load it (bit-identical weights, RNG
states and losses) instead of retraining it. The expert decisions are always recomputed: they are part of the key
and leave the environment as a retrain would.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

import spo3
from spo3.config import TrainConfig, to_dict
from spo3.config.paths import cache_root
from spo3.envs.base import TextEnv
from spo3.envs.experts import ScriptedPolicy, WalkthroughPolicy
from spo3.policies.base import Policy, PolicyInput, Response
from spo3.policies.tabular import format_action
from spo3.rollout.common import RolloutStats, Stepper
from spo3.state.keys import Scope
from spo3.training.builders import stratified_subset

__all__ = ["expert_decisions", "expert_for", "supervised_update", "warm_start", "warm_start_key"]

CACHE_FORMAT = 1
"""Bumped whenever what a cache entry holds changes."""


def expert_for(env: TextEnv) -> ScriptedPolicy:
    """The environment's expert: the WebShop oracle, or the walkthrough player."""
    from spo3.envs.webshop import WebShopEnv, WebShopOracle

    return WebShopOracle(env) if isinstance(env, WebShopEnv) else WalkthroughPolicy(env)


def expert_decisions(
    env: TextEnv, tasks: Sequence[str], expert: ScriptedPolicy, scope: Scope = "global", history_length: int = 2
) -> list[tuple[PolicyInput, str]]:
    """``(decision input, expert reply)`` for every step of every task's expert episode that ends in a win."""
    stepper = Stepper(env.family, scope, history_length, RolloutStats())
    out: list[tuple[PolicyInput, str]] = []
    for task in tasks:
        node, episode = stepper.root(env, task), []
        while not node.done:
            env.restore(node.snapshot)  # experts may read the environment's state (the WebShop oracle does)
            reply = format_action(expert.act(node.obs))
            episode.append((stepper.decision(node), reply))
            node, _, _, _ = stepper.step(env, node, Response(reply, (), ()))
        if node.won:
            out += episode
    return out


def supervised_update(
    policy: Policy, decisions: Sequence[tuple[PolicyInput, str]], epochs: int, lr: float, batch_size: int, seed: int
) -> list[float]:
    """Minimise the token-mean negative log-likelihood of the expert replies; returns the mean loss per epoch."""
    targets = [(inp, policy.response_for(inp, text)) for inp, text in decisions]
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    losses = []
    policy.train_mode(True)
    for _ in range(epochs):
        order = rng.permutation(len(targets))
        epoch_loss = []
        for start in range(0, len(order), batch_size):
            batch = [targets[i] for i in order[start : start + batch_size]]
            scores = policy.token_scores([b[0] for b in batch], [b[1] for b in batch], entropy=False)
            loss = -(scores.logprobs * scores.mask).sum() / scores.mask.sum().clamp_min(1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            epoch_loss.append(float(loss.detach()))
        losses.append(float(np.mean(epoch_loss)))
    policy.train_mode(False)
    return losses


def warm_start(policy: Policy, env: TextEnv, tasks: Sequence[str], cfg: TrainConfig) -> list[float]:
    """Train ``policy`` on expert replies for the training tasks ``cfg.warm_start`` chooses (k of every type, the
    first N, or all), then make it the reference policy; or load the identical result from the cache. Returns the
    per-epoch losses."""
    ws = cfg.warm_start
    if ws.per_type:
        chosen = stratified_subset(tasks, env.task_type, ws.per_type, cfg.seed)
    else:
        chosen = list(tasks)[: ws.tasks] if ws.tasks else list(tasks)
    decisions = expert_decisions(env, chosen, expert_for(env), cfg.algo.state_scope, cfg.env.history_length)
    if not decisions:
        raise RuntimeError(f"warm start: the expert won none of the {len(chosen)} tasks; nothing to learn from")
    entry = None
    if ws.cache:
        entry = (Path(ws.cache_dir) if ws.cache_dir else cache_root() / "warm_start") / warm_start_key(policy, decisions, cfg)
        cached = _load_entry(policy, entry)
        if cached is not None:
            return cached
    losses = supervised_update(policy, decisions, ws.epochs, ws.lr, cfg.optim.micro_batch_size, cfg.seed)
    policy.freeze_reference()
    if entry is not None:
        _store_entry(policy, entry, losses)
    return losses


def warm_start_key(policy: Policy, decisions: Sequence[tuple[PolicyInput, str]], cfg: TrainConfig) -> str:
    """The cache key of a warm start: a sha256 over every input of :func:`warm_start` (module docstring)."""
    h = hashlib.sha256()
    settings = {
        "format": CACHE_FORMAT, "spo3": spo3.__version__, "seed": cfg.seed, "warm_start": [cfg.warm_start.epochs,
        cfg.warm_start.tasks, cfg.warm_start.lr], "micro_batch_size": cfg.optim.micro_batch_size,
        "policy": to_dict(cfg.policy),
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    for module in (sys.modules[__name__], sys.modules[type(policy).__module__]):
        h.update(inspect.getsource(module).encode())
    for inp, reply in decisions:
        h.update(json.dumps([inp.prompt, inp.context, list(inp.actions), reply]).encode())
    for tensor in (torch.get_rng_state(), policy.rng_state()["generator"]):
        h.update(tensor.numpy().tobytes())
    with tempfile.TemporaryDirectory(prefix="spo3-warm-key-") as tmp:
        policy.save(Path(tmp))
        h.update(_tree_digest(Path(tmp)).encode())
    return h.hexdigest()[:32]


def _tree_digest(root: Path) -> str:
    """sha256 over the relative paths and bytes of every file under ``root`` but a top-level ``DIGEST``."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p != root / "DIGEST"):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _store_entry(policy: Policy, entry: Path, losses: list[float]) -> None:
    """Write the warm-started policy, the RNG states after it and the losses; atomically (a rename), so that a
    reader never sees half an entry. ``DIGEST`` checks the entry's files when it is loaded."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        policy.save(tmp / "policy")
        torch.save({"torch": torch.get_rng_state(), "policy": policy.rng_state()["generator"]}, tmp / "rng.pt")
        (tmp / "losses.json").write_text(json.dumps(losses))
        (tmp / "DIGEST").write_text(_tree_digest(tmp))
        os.replace(tmp, entry)
    except OSError:  # another run stored the same entry meanwhile (identical), or the disk is full: no cache then
        shutil.rmtree(tmp, ignore_errors=True)


def _load_entry(policy: Policy, entry: Path) -> list[float] | None:
    """The cached losses after loading the entry's policy and RNG states, or None if there is no entry. A damaged
    entry (its files do not match its digest) is reported, removed and retrained, before any weight changes."""
    if not entry.is_dir():
        return None
    try:
        if _tree_digest(entry) != (entry / "DIGEST").read_text():
            raise ValueError("its files do not match its digest")
        losses = json.loads((entry / "losses.json").read_text())
        rng = torch.load(entry / "rng.pt", weights_only=True)
        policy.load(entry / "policy")
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        warnings.warn(f"warm start cache entry {entry} is damaged ({exc}); removing it and retraining", stacklevel=2)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    torch.set_rng_state(rng["torch"])
    policy.set_rng_state({"generator": rng["policy"]})
    return [float(x) for x in losses]
