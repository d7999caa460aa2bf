"""Real ALFWorld text games: the environment (:mod:`~spo3.envs.alfworld.env`), installing the games
(:mod:`~spo3.envs.alfworld.data`), TextWorld's grammar with memoised parses (:mod:`~spo3.envs.alfworld.grammar`) and
ALFWorld's own environment as an independent reference for tests and benchmarks (:mod:`~spo3.envs.alfworld.upstream`).
"""

from spo3.envs.alfworld import env
from spo3.envs.alfworld.env import (
    DEFAULT_GAME_CACHE_SIZE,
    TASK_TYPES,
    AlfworldEnv,
    AlfworldSnapshot,
    clear_game_cache,
    set_game_cache_size,
    task_type_of,
)

__all__ = list(env.__all__)  # the package re-exports the environment module's public names
