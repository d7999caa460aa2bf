"""spo3: State-Score-Supervised Policy Optimization (3SPO) for multi-turn LLM agents.

Layers, bottom to top (each imports only those below it):

* :mod:`spo3.core` -- the formulas (score, step reward, advantages, loss);
* :mod:`spo3.state` -- state keys and the state-history store;
* :mod:`spo3.envs` -- text environments (ALFWorld, TextWorld games, WebShop), prompts and action parsing;
* :mod:`spo3.policies` -- tabular and Hugging Face policies;
* :mod:`spo3.rollout` -- group rollouts (GRPO/GiGPO) and the ranked backtracking tree search (3SPO);
* :mod:`spo3.training` -- the training loop, credit assignment, the PPO update, checkpoints, warm start, evaluation;
* :mod:`spo3.experiments` -- multi-seed comparisons at equal budgets and the quickstart;
* :mod:`spo3.cli` -- the ``spo3`` command.

Beside them, used by several layers: :mod:`spo3.config` (settings as dataclasses, loaded from YAML) and
:mod:`spo3.metrics` (run records, interval statistics, plots).
"""

__version__ = "0.1.0"
