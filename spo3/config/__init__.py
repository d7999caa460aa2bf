"""Configuration: the training settings (:mod:`spo3.config.settings`) and the dataclass/YAML machinery that loads
and checks them (:mod:`spo3.config.loading`).

    from spo3.config import load_config
    cfg = load_config("configs/textworld_tabular.yaml", ["algo.alpha=35"])
"""

from spo3.config.loading import ConfigError, SetupError, apply_overrides, describe, field_docs, from_dict, load_yaml, to_dict
from spo3.config.settings import (
    AlfworldConfig,
    AlgoConfig,
    DistConfig,
    EnvConfig,
    EvalConfig,
    LogConfig,
    OptimConfig,
    PolicyConfig,
    TextWorldConfig,
    TrainConfig,
    WarmStartConfig,
    WebShopConfig,
    load_config,
)

__all__ = [
    "AlfworldConfig",
    "AlgoConfig",
    "ConfigError",
    "DistConfig",
    "SetupError",
    "EnvConfig",
    "EvalConfig",
    "LogConfig",
    "OptimConfig",
    "PolicyConfig",
    "TextWorldConfig",
    "TrainConfig",
    "WarmStartConfig",
    "WebShopConfig",
    "apply_overrides",
    "describe",
    "field_docs",
    "from_dict",
    "load_config",
    "load_yaml",
    "to_dict",
]
