"""Training: the loop (rollout -> statistics -> rewards -> advantages -> update), credit assignment, the PPO
update, checkpoints, the supervised warm start, evaluation, and building envs/policies from a config.

    from spo3.config import load_config
    from spo3.training import train
    run_dir = train(load_config("configs/textworld_tabular.yaml", ["algo.name=grpo"]))
"""

from spo3.training.loop import train

__all__ = ["train"]
