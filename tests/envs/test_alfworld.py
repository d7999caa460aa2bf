"""AlfworldEnv on real valid_unseen games: walkthrough wins, no-op commands, exact snapshot/restore, prompts.

Cold resets cost 1-2 s each, so every test uses the same four games (loaded once into the process-wide cache
through the session's shared env).
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import spo3.envs.alfworld.env as alfworld_module
from spo3.envs.alfworld import TASK_TYPES, AlfworldEnv, AlfworldSnapshot, task_type_of
from spo3.envs.alfworld.data import AlfworldDataError
from spo3.envs.base import EnvError
from spo3.envs.experts import WalkthroughPolicy, play_episode
from spo3.envs.prompts import render_prompt

pytestmark = pytest.mark.alfworld

ROOT = "json_2.1.1/valid_unseen/"
LOOK = ROOT + "look_at_obj_in_light-AlarmClock-None-DeskLamp-308/trial_T20190908_222917_366542/game.tw-pddl"
CLEAN = ROOT + "pick_clean_then_place_in_recep-SoapBar-None-Cabinet-424/trial_T20190908_214926_337906/game.tw-pddl"
PICK_TWO = ROOT + "pick_two_obj_and_place-SoapBar-None-Cabinet-424/trial_T20190909_081720_491733/game.tw-pddl"
PICK = ROOT + "pick_and_place_simple-SoapBottle-None-Toilet-424/trial_T20190907_004321_405868/game.tw-pddl"

NOTHING = "Nothing happens."


def outcome(transition):
    return (transition.observation, transition.reward, transition.done, transition.won, transition.changed,
            dict(transition.info))


def test_split_listing_is_sorted_and_has_the_papers_task_counts(alfworld_env):
    tasks = alfworld_env.tasks("valid_unseen")
    assert len(tasks) == 134 and tasks == sorted(tasks) and all(t.startswith(ROOT) for t in tasks)
    assert LOOK in tasks and CLEAN in tasks
    counts = Counter(alfworld_env.task_type(t) for t in tasks)
    assert counts == {"pick_and_place": 24, "look_at_obj_in_light": 18, "pick_clean_then_place_in_recep": 31,
                      "pick_heat_then_place_in_recep": 23, "pick_cool_then_place_in_recep": 21,
                      "pick_two_obj_and_place": 17}


def test_task_type_uses_upstreams_substring_order():
    assert task_type_of(PICK_TWO) == "pick_two_obj_and_place"
    assert task_type_of(PICK) == "pick_and_place"  # pick_and_place_simple-...
    assert task_type_of("x/pick_heat_then_place_in_recep-Egg-None-Fridge-10/t/game.tw-pddl") == TASK_TYPES[3]
    with pytest.raises(EnvError, match="cannot tell the ALFWorld task type of 'kitchen'"):
        task_type_of("kitchen")


@pytest.mark.parametrize("task_id", [LOOK, CLEAN, PICK_TWO, PICK], ids=["look", "clean", "pick_two", "pick"])
def test_walkthrough_replay_wins(alfworld_data_dir, task_id):
    env = AlfworldEnv(alfworld_data_dir, reward_scale=10.0)  # upstream's reward
    walkthrough = env.walkthrough(task_id)
    transitions = play_episode(env, task_id, WalkthroughPolicy(env))
    assert [t.observation.step for t in transitions] == list(range(1, len(walkthrough) + 1))
    assert transitions[-1].won and transitions[-1].done and transitions[-1].reward == 10.0
    assert all(t.changed and not t.done and t.reward == 0.0 for t in transitions[:-1])
    assert transitions[-1].info == {"truncated": False}


def test_reset_observation_and_task(alfworld_env):
    obs = alfworld_env.reset(LOOK)
    assert obs.text.startswith("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room.")
    assert obs.text.endswith("\n\nYour task is to: examine the alarmclock with the desklamp.")
    assert obs.task == "examine the alarmclock with the desklamp." and obs.task_id == LOOK and obs.step == 0
    assert obs.admissible_actions[:3] == ("go to bed 1", "go to desk 1", "go to desk 2")
    assert obs.admissible_actions[-3:] == ("help", "inventory", "look")


def test_invalid_command_is_a_no_op(alfworld_env):
    alfworld_env.reset(LOOK)
    before = alfworld_env.step("go to desk 2").observation
    for command in ("fly to the moon", "take alarmclock 1 from desk 1", "", "GO TO DESK 1"):
        tr = alfworld_env.step(command)
        assert (tr.observation.text, tr.changed, tr.reward, tr.done, tr.won) == (NOTHING, False, 0.0, False, False)
        assert tr.observation.admissible_actions == before.admissible_actions
    # The state did not move: the next real command acts exactly as it would have right after "go to desk 2".
    assert alfworld_env.step("take alarmclock 1 from desk 2").observation.text == (
        "You pick up the alarmclock 1 from the desk 2."
    )
    assert alfworld_env.step(" go to desk 1 ").changed  # TextWorld strips commands


def test_step_limit_truncates(alfworld_data_dir):
    env = AlfworldEnv(alfworld_data_dir, max_steps=3)
    env.reset(LOOK)
    transitions = [env.step(a) for a in ("look", "go to desk 2", "look")]
    assert [t.done for t in transitions] == [False, False, True]
    assert transitions[-1].info == {"truncated": True} and not transitions[-1].won
    with pytest.raises(EnvError, match="the episode has ended"):
        env.step("look")
    env.reset(LOOK)
    cut = [env.step(a) for a in env.walkthrough(LOOK)[:3]]  # the walkthrough has 4 steps
    assert cut[-1].done and cut[-1].info == {"truncated": True} and not cut[-1].won
    exact = AlfworldEnv(alfworld_data_dir, max_steps=4)
    last = play_episode(exact, LOOK, WalkthroughPolicy(exact))[-1]  # winning on the last allowed step
    assert (last.done, last.won, last.info) == (True, True, {"truncated": False})


def test_warm_reset_does_not_parse_again(alfworld_env, monkeypatch):
    first = alfworld_env.reset(CLEAN)
    alfworld_env.step("look")

    def no_cold_load(self, path):
        raise AssertionError(f"{path} was parsed again")

    monkeypatch.setattr(alfworld_module._Engine, "_load_cold", no_cold_load)
    assert alfworld_env.reset(CLEAN) == first
    assert AlfworldEnv(alfworld_env.data_dir).reset(CLEAN) == first  # the cache is process-wide
    alfworld_env.reset(LOOK)
    assert alfworld_env.reset(CLEAN) == first


def test_cold_loads_reuse_translations_cached_on_disk(alfworld_env, monkeypatch, tmp_path):
    import fast_downward

    monkeypatch.setenv("SPO3_CACHE", str(tmp_path))
    translations = []
    translate = fast_downward.pddl2sas
    monkeypatch.setattr(fast_downward, "pddl2sas", lambda *a, **k: translations.append(1) or translate(*a, **k))
    game = ROOT + "pick_heat_then_place_in_recep-Tomato-None-GarbageCan-10/trial_T20190908_225046_020282/game.tw-pddl"

    def cold_episode():
        """Reset the game cold (forgotten by the process) and follow its walkthrough."""
        alfworld_module._GAMES._games.pop(str((alfworld_env.data_dir / game).resolve()), None)
        alfworld_env.reset(LOOK)  # the engine runs another game, so the next reset of `game` is cold
        return [alfworld_env.reset(game)] + [outcome(alfworld_env.step(a)) for a in alfworld_env.walkthrough(game)]

    first = cold_episode()
    assert len(translations) == 2  # plain and optimised, once each: TextWorld's reset read what its load stored
    assert len(list((tmp_path / "alfworld_sas").glob("*.pkl"))) == 2
    assert cold_episode() == first and len(translations) == 2  # nothing translated again, same game
    assert fast_downward.pddl2sas.__name__ == "<lambda>" and first[-1][3]  # the cache unpatched itself; won
    entry = sorted((tmp_path / "alfworld_sas").glob("*.pkl"))[0]
    entry.write_bytes(entry.read_bytes()[:-5] + b"xxxxx")
    with pytest.warns(UserWarning, match="damaged"):
        assert cold_episode() == first
    assert len(translations) == 3


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    game=st.sampled_from([LOOK, CLEAN]),
    prefix=st.lists(st.integers(0, 10**6), max_size=5),
    continuation=st.lists(st.integers(-1, 10**6), min_size=1, max_size=3),
    detour=st.sampled_from(["none", "other_game", "other_env"]),
)
@example(game=LOOK, prefix=[2, 0], continuation=[-1, 22, 3], detour="none")
@example(game=LOOK, prefix=[2, 0], continuation=[22, 3], detour="other_game")
@example(game=CLEAN, prefix=[1], continuation=[0, 5, -1], detour="other_env")
def test_restore_then_step_equals_the_original_continuation(alfworld_env, game, prefix, continuation, detour):
    def pick(obs, i):  # -1: an inadmissible command
        return "fly to the moon" if i < 0 else obs.admissible_actions[i % len(obs.admissible_actions)]

    obs = alfworld_env.reset(game)
    for i in prefix:
        tr = alfworld_env.step(pick(obs, i))
        obs = tr.observation
        if tr.done:
            return
    snapshot = alfworld_env.snapshot()
    assert isinstance(snapshot, AlfworldSnapshot) and snapshot.observation == obs

    original, actions = [], []
    for i in continuation:
        actions.append(pick(obs, i))
        original.append(outcome(alfworld_env.step(actions[-1])))
        obs = original[-1][0]
        if original[-1][2]:
            break

    target = alfworld_env
    if detour == "other_game":  # the planner library reloads another task: restore rebuilds the state id
        alfworld_env.reset(LOOK if game == CLEAN else CLEAN)
        alfworld_env.step("look")
    elif detour == "other_env":
        target = AlfworldEnv(alfworld_env.data_dir)
    assert target.restore(snapshot) == snapshot.observation
    assert target.snapshot().observation == snapshot.observation
    assert [outcome(target.step(a)) for a in actions] == original
    # A snapshot stays valid after it was restored and played on: restore it once more.
    assert alfworld_env.restore(snapshot).admissible_actions == snapshot.observation.admissible_actions


def test_interleaved_envs_do_not_disturb_each_other(alfworld_data_dir):
    first, second = AlfworldEnv(alfworld_data_dir), AlfworldEnv(alfworld_data_dir)
    walk_look, walk_clean = first.walkthrough(LOOK), first.walkthrough(CLEAN)
    alone_look = [outcome(t) for t in play_episode(first, LOOK, WalkthroughPolicy(first))]
    alone_clean = [outcome(t) for t in play_episode(second, CLEAN, WalkthroughPolicy(second))]
    first.reset(LOOK)
    second.reset(CLEAN)
    mixed_look, mixed_clean = [], []
    for k in range(max(len(walk_look), len(walk_clean))):
        if k < len(walk_look):
            mixed_look.append(outcome(first.step(walk_look[k])))
        if k < len(walk_clean):
            mixed_clean.append(outcome(second.step(walk_clean[k])))
    assert (mixed_look, mixed_clean) == (alone_look, alone_clean)


def test_rendered_prompt_matches_upstreams_template_character_by_character(alfworld_env):
    obs = alfworld_env.reset(LOOK)
    assert render_prompt(obs, (), "alfworld") == (
        "\n"
        "You are an expert agent operating in the ALFRED Embodied Environment.\n"
        "Your current observation is: -= Welcome to TextWorld, ALFRED! =-\n"
        "\n"
        "You are in the middle of a room. Looking quickly around you, you see a bed 1, a desk 2, a desk 1, a drawer "
        "6, a drawer 5, a drawer 4, a drawer 3, a drawer 2, a drawer 1, a garbagecan 1, a laundryhamper 1, a safe 1, "
        "a shelf 6, a shelf 5, a shelf 4, a shelf 3, a shelf 2, and a shelf 1.\n"
        "\n"
        "Your task is to: examine the alarmclock with the desklamp.\n"
        "Your admissible actions of the current situation are: ['go to bed 1'\n"
        " 'go to desk 1'\n 'go to desk 2'\n 'go to drawer 1'\n 'go to drawer 2'\n 'go to drawer 3'\n"
        " 'go to drawer 4'\n 'go to drawer 5'\n 'go to drawer 6'\n 'go to garbagecan 1'\n"
        " 'go to laundryhamper 1'\n 'go to safe 1'\n 'go to shelf 1'\n 'go to shelf 2'\n 'go to shelf 3'\n"
        " 'go to shelf 4'\n 'go to shelf 5'\n 'go to shelf 6'\n 'inventory'\n 'look'].\n"
        "\n"
        "Now it's your turn to take an action.\n"
        "You should first reason step-by-step about the current situation. This reasoning process MUST be enclosed "
        "within <think> </think> tags. \n"
        "Once you've finished your reasoning, you should choose an admissible action for current step and present it "
        "within <action> </action> tags.\n"
    )
    history = []
    for action in ("go to desk 2", "take alarmclock 1 from desk 2", "go to desk 1"):
        history.append((obs.text, action))
        obs = alfworld_env.step(action).observation
    assert render_prompt(obs, tuple(history), "alfworld", history_length=2) == (
        "\n"
        "You are an expert agent operating in the ALFRED Embodied Environment. Your task is to: examine the alarmclock "
        "with the desklamp.\n"
        "Prior to this step, you have already taken 3 step(s). Below are the most recent 2 observations and the "
        "corresponding actions you took: [Observation 2: 'You arrive at desk 2. On the desk 2, you see a alarmclock "
        "1.', Action 2: 'take alarmclock 1 from desk 2']\n"
        "[Observation 3: 'You pick up the alarmclock 1 from the desk 2.', Action 3: 'go to desk 1']\n"
        "You are now at step 4 and your current observation is: You arrive at desk 1. On the desk 1, you see a bowl 1, "
        "a desklamp 1, a mug 1, and a pencil 1.\n"
        "Your admissible actions of the current situation are: ['examine alarmclock 1'\n"
        " 'examine desk 1'\n 'go to bed 1'\n 'go to desk 2'\n 'go to drawer 1'\n 'go to drawer 2'\n"
        " 'go to drawer 3'\n 'go to drawer 4'\n 'go to drawer 5'\n 'go to drawer 6'\n 'go to garbagecan 1'\n"
        " 'go to laundryhamper 1'\n 'go to safe 1'\n 'go to shelf 1'\n 'go to shelf 2'\n 'go to shelf 3'\n"
        " 'go to shelf 4'\n 'go to shelf 5'\n 'go to shelf 6'\n 'inventory'\n 'look'\n"
        " 'move alarmclock 1 to desk 1'\n 'use desklamp 1'].\n"
        "\n"
        "Now it's your turn to take an action.\n"
        "You should first reason step-by-step about the current situation. This reasoning process MUST be enclosed "
        "within <think> </think> tags. \n"
        "Once you've finished your reasoning, you should choose an admissible action for current step and present it "
        "within <action> </action> tags.\n"
    )


def test_step_cost_grows_with_the_scenes_receptacles(alfworld_env):
    """Scene 308 has 18 receptacles, scene 424 13: its steps cost about twice as much (AlfworldEnv.step_cost)."""
    assert alfworld_env.step_cost(LOOK) == pytest.approx(18**1.5)
    assert alfworld_env.step_cost(CLEAN) == alfworld_env.step_cost(PICK_TWO) == pytest.approx(13**1.5)


def test_missing_or_corrupt_data_gives_clear_errors(tmp_path):
    env = AlfworldEnv(tmp_path / "nowhere")
    with pytest.raises(AlfworldDataError, match=r"split 'valid_unseen' not found .* `spo3 data alfworld --from DIR`"):
        env.tasks("valid_unseen")
    with pytest.raises(AlfworldDataError, match="alfworld-download"):
        env.reset(LOOK)
    assert env.step_cost(LOOK) == 1.0  # no estimate; the reset reports the missing game
    with pytest.raises(ValueError, match="unknown split 'test'"):
        env.tasks("test")
    for bad in ("../escape/game.tw-pddl", "/abs/game.tw-pddl", ""):
        with pytest.raises(EnvError, match="task id"):
            env.reset(bad)
    broken = tmp_path / "data" / ROOT / "look_at_obj_in_light-X-None-DeskLamp-1" / "trial_T0"
    broken.mkdir(parents=True)
    (broken / "game.tw-pddl").write_text("{not json")
    env = AlfworldEnv(tmp_path / "data")
    (task_id,) = env.tasks("valid_unseen")
    with pytest.raises(AlfworldDataError, match=r"game.tw-pddl is unreadable or not JSON"):
        env.reset(task_id)
    assert env.step_cost(task_id) == 1.0


def test_misuse_is_reported(alfworld_data_dir, alfworld_env):
    env = AlfworldEnv(alfworld_data_dir)
    with pytest.raises(EnvError, match="no episode is running"):
        env.step("look")
    with pytest.raises(EnvError, match="no episode is running"):
        env.snapshot()
    with pytest.raises(EnvError, match="expected an AlfworldSnapshot"):
        env.restore("state 3")
    alfworld_env.reset(LOOK)
    with pytest.raises(TypeError, match="action must be str"):
        alfworld_env.step(None)
    with pytest.raises(ValueError, match="max_steps must be an int >= 1"):
        AlfworldEnv(alfworld_data_dir, max_steps=0)
