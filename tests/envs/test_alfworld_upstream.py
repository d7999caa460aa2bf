"""AlfworldEnv (cached text generation) equals ALFWorld's own environment at every step, across game switches.

ALFWorld's own env (spo3.envs.alfworld.upstream) is a separate TextWorld engine with TextWorld's uncached grammar
and its own planner library, loading every game fresh. spo3's env follows it through a sequence of games of
different task types, starting from an empty parse cache, so later games run on parses cached by earlier ones.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from spo3.envs.alfworld import AlfworldEnv
from spo3.envs.alfworld.grammar import clear_parse_cache
from spo3.envs.alfworld.upstream import record_of, upstream_env, upstream_reset, upstream_step

pytestmark = [pytest.mark.alfworld, pytest.mark.slow]

ROOT = "json_2.1.1/valid_unseen/"
GAMES = [  # three task types, hence three grammars (the task sentence differs), in two scenes
    ROOT + "look_at_obj_in_light-AlarmClock-None-DeskLamp-308/trial_T20190908_222917_366542/game.tw-pddl",
    ROOT + "pick_clean_then_place_in_recep-SoapBar-None-Cabinet-424/trial_T20190908_214926_337906/game.tw-pddl",
    ROOT + "pick_two_obj_and_place-SoapBar-None-Cabinet-424/trial_T20190909_081720_491733/game.tw-pddl",
]
MAX_STEPS = 8


def test_every_step_matches_alfworlds_own_env_across_game_switches(alfworld_data_dir: Path):
    clear_parse_cache()
    ours = AlfworldEnv(alfworld_data_dir, max_steps=MAX_STEPS)
    theirs = upstream_env(alfworld_data_dir, GAMES, max_steps=MAX_STEPS)
    rng = random.Random(0)
    played = []
    for episode in range(len(GAMES) + 1):  # the last episode replays an earlier game, after the others ran
        path, expected = upstream_reset(theirs)
        task_id = Path(path).resolve().relative_to(alfworld_data_dir.resolve()).as_posix()
        observation = ours.reset(task_id)
        assert record_of(observation) == expected
        walkthrough = ours.walkthrough(task_id)
        # Half the walkthrough, then random admissible commands and an occasional inadmissible one (a no-op),
        # until the episode is won or truncated: done, won, truncation and no-ops are all compared.
        prefix = walkthrough[: len(walkthrough) // 2] if episode % 2 == 0 else []
        while True:
            if prefix:
                action = prefix.pop(0)
            elif rng.random() < 0.15:
                action = "fly to the moon"
            else:
                action = rng.choice(observation.admissible_actions)
            transition = ours.step(action)
            assert record_of(transition) == upstream_step(theirs, action), (task_id, action)
            observation = transition.observation
            if transition.done:
                break
        played.append(task_id)
    assert len(set(played)) >= 2 and set(played) <= set(GAMES)
