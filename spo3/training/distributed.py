"""Training on several processes with torch.distributed, launched by torchrun or accelerate (docs/scaling.md).

    torchrun --standalone --nproc_per_node=2 -m spo3.cli train configs/textworld_tabular.yaml

Every process ("rank") runs the same loop (:func:`spo3.training.loop.train`); this module is the one place where
they talk to each other. One iteration with ``W`` ranks:

1. Every rank draws the same global batch of tasks and plays its contiguous share (:meth:`Distributed.shard`).
   Each task samples from its own streams, derived from ``(seed, iteration, global task index)``
   (:class:`spo3.rollout.common.TaskStream`), so a task's rollouts do not depend on the rank that plays it.
2. Rank 0 owns the state store and broadcasts the frozen snapshot that the iteration scores against.
3. At each update, every rank computes its own tasks' rewards and advantages (groups never span tasks); the samples
   are then gathered on every rank in the one-process order (policy call, then global task index), and the
   micro-batches of each mini-batch are dealt round-robin over the ranks (:meth:`Distributed.share`). Each rank
   scales its micro-batch losses by ``W / micro-batches in the mini-batch`` and the gradients are averaged over the
   ranks, so the optimiser step equals the one-process step up to the order of float additions. 3SPO's per-round
   updates run in lockstep (:meth:`Distributed.lockstep`): a rank whose searches have finished takes part in the
   other ranks' remaining rounds with no samples of its own.
4. The finished trajectories and the rollout counts are gathered on rank 0, which folds them into the store, logs,
   evaluates and writes the checkpoints.

Strategies (``dist.strategy``): ``ddp`` keeps a whole model on every rank and averages gradients with one
all_reduce per parameter after the last micro-batch of a mini-batch (what DDP does, without its hooks, since ranks
run different numbers of micro-batches). For the tabular policy this is exact once the ranks agree which row of
the logit table holds which (context, action) entry: rows are created lazily in order of first use, which differs
between ranks, so :func:`align_policy` merges every rank's new entries in rank order before each update (rows
created since the last update are untouched, so renumbering them changes nothing). ``fsdp`` shards a language
model's parameters, gradients and optimiser state (FSDP2 ``fully_shard`` per decoder layer, bf16 parameters, fp32
gradient reduction); generation and old/reference log-probabilities run on temporarily unsharded weights, and
every rank runs the same number of forward/backward passes (a rank short of micro-batches repeats one with
weight 0).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence, TypeVar

import torch

from spo3.config import ConfigError, TrainConfig
from spo3.policies.base import Policy
from spo3.rollout.common import RolloutResult, RolloutStats, StepSample

__all__ = ["Distributed", "align_policy", "gather_result", "init_distributed"]

T = TypeVar("T")


@dataclass
class Distributed:
    """This process's place among the training processes; with ``world == 1`` every collective is the identity.

    Args:
      rank: this process's rank (0 is the main process).
      world: number of processes.
      local_rank: rank on this node (selects the CUDA device).
      strategy: ``ddp`` or ``fsdp`` (see the module doc).
      device: the device collectives use (``cuda:<local_rank>`` for NCCL, else ``cpu``).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    strategy: str = "ddp"
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        """Rank 0: owns the state store, logs, evaluates and writes checkpoints."""
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """The model is sharded with FSDP (every rank must run the same forward/backward passes)."""
        return self.world > 1 and self.strategy == "fsdp"

    # ------------------------------------------------------------------ tasks and objects
    def shard(self, items: Sequence[T]) -> tuple[int, list[T]]:
        """This rank's contiguous share of ``items`` and the global index of its first item (shares differ in
        length by at most one; a rank may get none when there are fewer items than ranks)."""
        size, extra = divmod(len(items), self.world)
        start = self.rank * size + min(self.rank, extra)
        stop = start + size + (self.rank < extra)
        return start, list(items[start:stop])

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, device=self._object_device)
        return box[0]

    def all_gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's ``obj`` in rank order on rank 0; ``None`` elsewhere."""
        if self.world == 1:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.is_main else None
        torch.distributed.gather_object(obj, out, dst=0)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    @property
    def _object_device(self) -> torch.device | None:
        return torch.device(self.device) if self.device.startswith("cuda") else None

    # ------------------------------------------------------------------ rollout
    def lockstep(self, rounds: Iterable[list[StepSample]], policy: Policy) -> Iterator[list[StepSample]]:
        """``rounds`` (one list of samples per expansion round, generated by ``policy``), continued with empty
        rounds until every rank's rounds are exhausted, so that all ranks run the same number of per-round
        updates."""
        it = iter(rounds)
        while True:
            with self.unsharded(policy):
                item = next(it, None)
            if not self.any(item is not None):
                return
            yield item if item is not None else []

    def gather_samples(self, samples: list[StepSample], task_offset: int) -> list[StepSample]:
        """Every rank's update samples (rewards and advantages already set) on every rank, in the order one
        process would have produced them: by policy call, then global task index (stable within a task)."""
        if self.world == 1:
            return samples
        keyed = [((s.call, task_offset + s.group), s) for s in samples]  # group = the task's index in this rank's share
        merged = [pair for part in self.all_gather(keyed) for pair in part]
        merged.sort(key=lambda pair: pair[0])
        return [s for _, s in merged]

    # ------------------------------------------------------------------ update
    def share(self, group: Sequence[int]) -> list[tuple[int, float]]:
        """This rank's micro-batches of one mini-batch (indices ``group``) as ``(index, weight)``: dealt
        round-robin; under FSDP padded with weight-0 repeats so that every rank runs the same number."""
        mine = [(g, 1.0) for g in group[self.rank :: self.world]]
        if self.sharded:
            mine += [(group[0], 0.0)] * (-(-len(group) // self.world) - len(mine))
        return mine

    def reduce_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average the gradients over the ranks (DDP; FSDP has already reduce-scattered them in backward)."""
        if self.world == 1 or self.sharded:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
            p.grad.div_(self.world)

    def sum_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        """Key-wise sum of every rank's ``values``."""
        if self.world == 1:
            return values
        total: dict[str, float] = {}
        for part in self.all_gather(values):
            for k, v in part.items():
                total[k] = total.get(k, 0.0) + v
        return total

    @contextlib.contextmanager
    def unsharded(self, policy: Policy) -> Iterator[None]:
        """Whole weights on every rank for the duration (FSDP: generation and scoring without collectives, so
        ranks may run different numbers of forward passes); a no-op otherwise. Every rank must enter it."""
        if not self.sharded:
            yield
            return
        from torch.distributed.fsdp import FSDPModule

        modules = [m for root in _fsdp_roots(policy) for m in root.modules() if isinstance(m, FSDPModule)]
        for m in modules:
            m.set_reshard_after_forward(False, recurse=False)
            m.unshard()
        try:
            yield
        finally:
            for m in modules:
                m.reshard()
                m.set_reshard_after_forward(True, recurse=False)

    @contextlib.contextmanager
    def full_state(self, policy: Policy, optimizer: torch.optim.Optimizer) -> Iterator[None]:
        """FSDP: gather the whole state dicts of the policy's models and of the optimiser (every rank must enter);
        on rank 0 their ``state_dict()`` return them for the duration, in a one-process run's format (tied weights
        share one tensor, the optimiser's state is keyed by parameter index), so that ``save_checkpoint`` writes
        the same files as one process would. A no-op otherwise."""
        if not self.sharded:
            yield
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # whole tensors, on rank 0, in CPU memory
        roots = _fsdp_roots(policy)
        owners: list[Any] = [*roots, optimizer]
        states: list[Any] = [_whole_model_state(root, get_model_state_dict(root, options=options)) for root in roots]
        if optimizer.state:
            gathered = get_optimizer_state_dict(roots[0], optimizer, options=options)  # rank 0's alone holds tensors
            states.append(_by_index(gathered, _optimizer_fqns(roots[0], optimizer)) if self.is_main else None)
        else:  # no step yet: nothing to gather (and DCP would initialise the state, with a step count of 1)
            states.append(optimizer.state_dict())
        if self.is_main:
            for owner, state in zip(owners, states):
                owner.state_dict = lambda *args, _state=state, **kwargs: _state  # instance attribute shadows the method
        try:
            yield
        finally:
            if self.is_main:
                for owner in owners:
                    del owner.state_dict

    def load_optimizer(self, policy: Policy, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Load a whole optimiser state (a checkpoint's, one-process format) into ``optimizer``; under FSDP every
        rank passes the whole state and keeps its own shard of it."""
        if not self.sharded or not state["state"]:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        root = _fsdp_roots(policy)[0]
        by_name = _by_name(state, _optimizer_fqns(root, optimizer))
        # strict=False: parameters that never had a gradient have no state, as in one process
        set_optimizer_state_dict(root, optimizer, by_name, options=StateDictOptions(full_state_dict=True, strict=False))
        for group, saved in zip(optimizer.param_groups, state["param_groups"], strict=True):  # DCP makes tuples lists
            group.update({k: v for k, v in saved.items() if k != "params"})

    def lend(self, policy: Policy, optimizer: torch.optim.Optimizer, evaluating: bool, saving: bool) -> None:
        """Take part in rank 0's evaluation (:meth:`unsharded`) and checkpoint (:meth:`full_state`) of this
        iteration, which need the whole weights under FSDP; a no-op otherwise."""
        if evaluating:
            with self.unsharded(policy):
                pass
        if saving:
            with self.full_state(policy, optimizer):
                pass

    def close(self) -> None:
        """Leave the process group (the last call of a run)."""
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def init_distributed(cfg: TrainConfig) -> tuple[Distributed, TrainConfig]:
    """Join the process group the launcher describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``
    and ``MASTER_PORT``, as set by torchrun and accelerate); one process when ``WORLD_SIZE`` is unset or 1.

    Returns the process's :class:`Distributed` and the config it trains with: on CUDA each rank takes the device
    ``cuda:<LOCAL_RANK>``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(strategy=cfg.dist.strategy), cfg
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.dist.strategy == "fsdp" and cfg.policy.kind != "hf":
        raise ConfigError("dist.strategy: fsdp shards a language model (policy.kind=hf); the tabular policy uses ddp")
    on_cuda = cfg.policy.kind == "hf" and cfg.policy.device.startswith("cuda")
    backend = cfg.dist.backend if cfg.dist.backend != "auto" else ("nccl" if on_cuda else "gloo")
    if backend == "nccl" and not on_cuda:
        raise ConfigError("dist.backend: nccl needs the policy on a CUDA device (policy.device=cuda)")
    device = "cpu"
    if on_cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
        cfg = dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, device=device))
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            backend, rank=rank, world_size=world, timeout=datetime.timedelta(minutes=cfg.dist.timeout_minutes),
        )
    return Distributed(rank, world, local_rank, cfg.dist.strategy, device if backend == "nccl" else "cpu"), cfg


def prepare_policy(dist: Distributed, policy: Policy) -> None:
    """Make every rank's policy rank 0's (parameters broadcast, as DDP does at start), then shard it under FSDP."""
    if dist.world == 1:
        return
    with torch.no_grad():
        for p in policy.parameters():
            buf = p.data.to(dist.device)
            torch.distributed.broadcast(buf, src=0)
            p.data.copy_(buf)
    if dist.sharded:
        # A shared prompt adds a forward pass only where a batch repeats a prompt, which differs between ranks:
        # their FSDP all-gathers would no longer pair up (a hang). Every row computed on its own keeps them in step.
        if hasattr(policy, "share_prompts"):
            policy.share_prompts = False
        _fully_shard(policy)


def _fsdp_roots(policy: Policy) -> list[torch.nn.Module]:
    """The models FSDP shards: the policy's language model and, with full fine-tuning, its frozen reference copy."""
    model = getattr(policy, "model", None)
    if model is None:
        raise ConfigError("dist.strategy: fsdp needs a language-model policy (policy.kind=hf)")
    reference = getattr(policy, "_reference", None)
    return [model] + ([reference] if reference is not None else [])


def _whole_model_state(root: torch.nn.Module, gathered: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``gathered`` (DCP's whole state dict of ``root``) with each tensor on its own storage (safetensors refuses
    views into a shared buffer), except that names of one shared parameter (tied embeddings) share one tensor, as
    in ``root.state_dict()`` of an unsharded model."""
    owner = {name: id(t) for name, t in root.state_dict(keep_vars=True).items()}
    copies: dict[Any, torch.Tensor] = {}
    return {name: copies.setdefault(owner.get(name, name), t.clone()) for name, t in gathered.items()}


def _optimizer_fqns(root: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the optimiser's parameters in its own order, i.e. by the index ``optimizer.state_dict()``
    keys them with (DCP's whole optimiser state keys them by name)."""
    names = {p: name for name, p in root.named_parameters()}
    return [names[p] for group in optimizer.param_groups for p in group["params"]]


def _by_index(state: dict[str, Any], fqns: list[str]) -> dict[str, Any]:
    """A name-keyed optimiser state (DCP's) keyed by parameter index (``Optimizer.state_dict()``'s)."""
    index = {name: i for i, name in enumerate(fqns)}
    return {
        "state": {index[name]: value for name, value in state["state"].items()},
        "param_groups": [{**g, "params": [index[name] for name in g["params"]]} for g in state["param_groups"]],
    }


def _by_name(state: dict[str, Any], fqns: list[str]) -> dict[str, Any]:
    """The inverse of :func:`_by_index`."""
    return {
        "state": {fqns[i]: value for i, value in state["state"].items()},
        "param_groups": [{**g, "params": [fqns[i] for i in g["params"]]} for g in state["param_groups"]],
    }


def _fully_shard(policy: Policy) -> None:
    """FSDP2 full shard of a language-model policy: each decoder layer, then the root, of the model and of the
    reference copy; parameters computed in bf16, gradients reduced in fp32 (the stored shards keep the model's
    dtype: float32 gives fp32 master weights)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for model in _fsdp_roots(policy):
        # With LoRA the root is the transformers model inside peft's wrapper: generate() enters it directly, and
        # FSDP2 needs every first forward to enter through its root.
        root = model.get_base_model() if hasattr(model, "get_base_model") else model
        for name, layer in list(root.named_modules()):
            if re.search(r"(^|\.)layers\.\d+$", name):
                fully_shard(layer, mp_policy=mp)
        fully_shard(root, mp_policy=mp)


def align_policy(dist: Distributed, policy: Policy) -> None:
    """Make the ranks agree on the layout of a policy whose parameters grow during rollouts (the tabular policy's
    lazily created rows): every rank's new entries are merged in rank order. A no-op for other policies."""
    pending = getattr(policy, "pending_entries", None)
    if dist.world == 1 or pending is None:
        return
    policy.adopt_entries([key for part in dist.all_gather(pending()) for key in part])  # type: ignore[attr-defined]


def gather_result(
    dist: Distributed, result: RolloutResult, sample_counts: tuple[int, int],
) -> tuple[RolloutResult, tuple[int, int]] | None:
    """Rank 0: the iteration's finished trajectories of every rank (in rank order, i.e. global task order), the
    summed rollout costs and the summed ``sample_counts``; ``None`` on the other ranks. Timings are the slowest
    rank's (the ranks run in parallel). The step samples stay where they are (the update has used them)."""
    parts = dist.gather((result.trajectories, result.stats, sample_counts, result.expansions))
    if parts is None:
        return None
    if len(parts) == 1:
        return result, sample_counts
    stats = RolloutStats()
    for _, part, _, _ in parts:
        for f in dataclasses.fields(RolloutStats):
            a, b = getattr(stats, f.name), getattr(part, f.name)
            setattr(stats, f.name, max(a, b) if f.name.startswith("time_") else a + b)
    trajectories = [t for trajs, _, _, _ in parts for t in trajs]
    counts = (sum(c[0] for _, _, c, _ in parts), sum(c[1] for _, _, c, _ in parts))
    expansions = [e for *_, part in parts for e in part]
    return RolloutResult([], trajectories, stats, expansions), counts
