"""Text environments behind one interface (:class:`spo3.envs.base.TextEnv`).

The families live in their own modules and are imported on demand (each pulls in a heavy engine):
:mod:`spo3.envs.textworld_games` (generated TextWorld games), :mod:`spo3.envs.alfworld` (real ALFWorld games;
:mod:`spo3.envs.alfworld.data` installs them), :mod:`spo3.envs.webshop` (WebShop). :mod:`spo3.envs.prompts` and
:mod:`spo3.envs.projection` turn observations into LLM prompts and replies into actions;
:mod:`spo3.envs.experts` holds scripted policies. :func:`spo3.builders.build_env` builds one from a config.
"""

from spo3.envs.base import EnvError, Observation, TextEnv, Transition

__all__ = ["EnvError", "Observation", "TextEnv", "Transition"]
