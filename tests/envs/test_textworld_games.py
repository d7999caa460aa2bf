"""Generated TextWorld games behind the TextEnv interface (spo3.envs.textworld_games).

Game generation costs 1.5-3 s per game, so the module generates four small games once, in one batch, into a
session-scoped temporary cache, and every test plays those.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import textworld
from hypothesis import given, settings
from hypothesis import strategies as st

from spo3.envs import textworld_games as twg
from spo3.envs.base import EnvError
from spo3.envs.textworld_games import (
    GameCacheError,
    GameSpec,
    TextWorldGamesEnv,
    TextWorldSnapshot,
    ensure_games,
    verify_game_dir,
)

LEVELS = {"tw-coin_collector": 3, "tw-treasure_hunter": 1, "tw-cooking": 1}
COIN = "tw-coin_collector/L3/s0"
# Commands an LLM might emit that must all be no-ops: unknown verbs, parser errors, an incomplete command (the
# parser then asks a question), out-of-world and framework commands (also hidden inside a multi-command line),
# control characters, non-ASCII text, and a command longer than the interpreter's input buffer.
JUNK = [
    "fly to the moon", "take", "", "go", "restart", "brief", "score", "again", "undo", "quit",
    "look. restart", "go north then save", "tw-trace-actions", "enable print state option", "\n\n\t",
    "go\nsouth", "café ☕", "x" * 400, "take the coin\x00 now",
]
STATUS_OR_TRACE = re.compile(r"\[[^\]]*\]|-= [^\n]*=-\d+/\d+|^>|\n>")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("textworld-cache")
    specs = [GameSpec.create(ch, level, 0) for ch, level in LEVELS.items()]
    ensure_games(specs + [GameSpec.create("tw-coin_collector", 3, 1)], root)  # one batch: one child process
    return root


@pytest.fixture(scope="session")
def envs(cache_dir):
    return {
        ch: TextWorldGamesEnv(ch, level, train_seeds=[0, 1] if ch == "tw-coin_collector" else [0],
                              valid_seeds=[], test_seeds=[], cache_dir=cache_dir, max_steps=50)
        for ch, level in LEVELS.items()
    }


def _record(transition):
    obs = transition.observation
    return (obs.text, obs.admissible_actions, obs.step, transition.reward, transition.done, transition.won,
            transition.changed, dict(transition.info))


def _play(env, actions):
    records = []
    for action in actions:
        transition = env.step(action)
        records.append(_record(transition))
        if transition.done:
            break
    return records


# ------------------------------------------------------------------------------------------------ episodes


@pytest.mark.parametrize("challenge", sorted(LEVELS))
def test_walkthrough_replay_wins(envs, challenge):
    env = envs[challenge]
    task_id = env.tasks("train")[0]
    obs = env.reset(task_id)
    walkthrough = env.walkthrough(task_id)
    assert walkthrough and obs.step == 0 and obs.task_id == task_id
    assert env.task_type(task_id) == challenge
    for i, action in enumerate(walkthrough):
        assert action in obs.admissible_actions
        transition = env.step(action)
        obs = transition.observation
        last = i == len(walkthrough) - 1
        assert (transition.done, transition.won) == (last, last)
        assert transition.reward == (1.0 if last else 0.0)
    assert obs.text.endswith("*** The End ***") and obs.admissible_actions == ()
    assert transition.info == {"truncated": False, "lost": False}


@pytest.mark.parametrize("challenge", sorted(LEVELS))
def test_intro_is_objective_then_room_without_banner_or_status(envs, challenge):
    env = envs[challenge]
    obs = env.reset(env.tasks("train")[0])
    assert obs.task and obs.text.startswith(obs.task)
    assert "\n\n-= " in obs.text  # the first room's heading follows the objective
    assert not STATUS_OR_TRACE.search(obs.text) and "$$" not in obs.text
    assert list(obs.admissible_actions) == sorted(set(obs.admissible_actions))


def test_losing_a_cooking_game_ends_the_episode_without_reward(envs):
    env = envs["tw-cooking"]
    env.reset(env.tasks("train")[0])
    ingredient = next(a for a in env.walkthrough(env.tasks("train")[0]) if a.startswith("take "))
    for action in ["open fridge", ingredient]:
        assert not env.step(action).done
    eaten = ingredient.split(" from ")[0].replace("take ", "eat ", 1)  # eat it raw instead of preparing the meal
    transition = env.step(eaten)
    assert transition.done and not transition.won and transition.reward == 0.0
    assert transition.info == {"truncated": False, "lost": True}
    assert transition.observation.text.endswith("*** You lost! ***") and transition.observation.admissible_actions == ()


def test_reward_scale_and_task_ids(cache_dir):
    env = TextWorldGamesEnv("tw-coin_collector", 3, train_seeds=[1, 0], valid_seeds=[10], test_seeds=[],
                            cache_dir=cache_dir, reward_scale=10.0)
    assert env.tasks("train") == ["tw-coin_collector/L3/s0", "tw-coin_collector/L3/s1"]
    assert env.tasks("valid") == ["tw-coin_collector/L3/s10"] and env.tasks("test") == []
    env.reset(COIN)
    rewards = [t.reward for t in map(env.step, env.walkthrough(COIN))]
    assert rewards == [0.0, 0.0, 10.0]


# ------------------------------------------------------------------------------------------------- no-ops


@pytest.mark.parametrize("junk", JUNK, ids=[repr(j)[:24] for j in JUNK])
def test_invalid_command_is_a_noop(envs, junk):
    env = envs["tw-coin_collector"]
    before = env.reset(COIN)
    reference = _play(env, env.walkthrough(COIN))
    env.reset(COIN)
    transition = env.step(junk)
    assert not transition.changed and not transition.done and transition.reward == 0.0
    assert transition.observation.admissible_actions == before.admissible_actions
    assert transition.observation.step == 1
    assert not STATUS_OR_TRACE.search(transition.observation.text)
    after_junk = _play(env, env.walkthrough(COIN))
    # Same game state: the walkthrough continues exactly as from the start (one step later) and still wins.
    assert [r[:2] + r[3:] for r in after_junk] == [r[:2] + r[3:] for r in reference]
    assert [r[2] for r in after_junk] == [r[2] + 1 for r in reference]


def test_out_of_world_commands_never_reach_the_interpreter(envs):
    env = envs["tw-coin_collector"]
    unknown = "That's not a verb I recognise."
    env.reset(COIN)
    # Right after a reset the interpreter's previous input line is tw-trace-actions: "again" must not repeat it.
    for command in ("again", "restart", "BRIEF", "look then quit", "tw-extra-infos score", "xyzzy"):
        assert env.step(command).observation.text == unknown
    # A real verb does reach it.
    assert env.step("look").observation.text.startswith("-= ")


def test_look_and_inventory_do_not_change_the_state_but_moving_does(envs):
    env = envs["tw-cooking"]
    env.reset(env.tasks("train")[0])
    assert not env.step("look").changed
    assert not env.step("inventory").changed
    assert not env.step("examine cookbook").changed
    assert env.step("open fridge").changed


# -------------------------------------------------------------------------------------- snapshot / restore


ACTION_CHOICES = st.one_of(st.integers(0, 50), st.sampled_from(JUNK[:8]))


def _act(obs, choice):
    if isinstance(choice, str):
        return choice
    return obs.admissible_actions[choice % len(obs.admissible_actions)]


def _play_choices(env, obs, choices):
    records = []
    for choice in choices:
        transition = env.step(_act(obs, choice))
        obs = transition.observation
        records.append(_record(transition))
        if transition.done:
            break
    return obs, records


@pytest.mark.parametrize("challenge", sorted(LEVELS))
@given(prefix=st.lists(ACTION_CHOICES, max_size=8), continuation=st.lists(ACTION_CHOICES, min_size=1, max_size=6),
       detour=st.lists(ACTION_CHOICES, max_size=4))
def test_restore_then_step_equals_the_original_continuation(envs, challenge, prefix, continuation, detour):
    env = envs[challenge]
    task_id = env.tasks("train")[0]
    obs, prefix_records = _play_choices(env, env.reset(task_id), prefix)
    snap = env.snapshot()
    done = bool(prefix_records) and prefix_records[-1][4]
    if done:
        with pytest.raises(EnvError):
            env.step("look")
        assert env.restore(snap) == obs
        return
    _, original = _play_choices(env, obs, continuation)

    # Wander somewhere else (maybe into another game), then come back.
    _play_choices(env, env.reset(task_id), detour)
    if challenge == "tw-coin_collector":
        env.reset("tw-coin_collector/L3/s1")
    assert env.restore(snap) == obs
    _, restored = _play_choices(env, obs, continuation)
    assert restored == original

    # And it equals replaying the whole episode from reset.
    _, replayed = _play_choices(env, env.reset(task_id), prefix + continuation)
    assert replayed[len(prefix_records):] == original
    for record in original:
        assert not STATUS_OR_TRACE.search(record[0])


def test_snapshot_restores_any_number_of_times_in_any_order(envs):
    env = envs["tw-cooking"]
    task_id = env.tasks("train")[0]
    env.reset(task_id)
    snaps, observations = [], []
    for action in env.walkthrough(task_id)[:-1]:
        snaps.append(env.snapshot())
        observations.append(env.step(action).observation)
    for i in [3, 0, 3, 1, 4, 2, 0]:
        env.restore(snaps[i])
        assert env.step(env.walkthrough(task_id)[i]).observation == observations[i]


def test_restore_of_a_game_evicted_from_the_loaded_games(cache_dir):
    env = TextWorldGamesEnv("tw-coin_collector", 3, train_seeds=[0, 1], valid_seeds=[], test_seeds=[],
                            cache_dir=cache_dir, max_loaded_games=1)
    env.reset(COIN)
    env.step(env.walkthrough(COIN)[0])
    snap = env.snapshot()
    expected = env.step(env.walkthrough(COIN)[1]).observation
    env.reset("tw-coin_collector/L3/s1")  # evicts s0
    env.restore(snap)
    assert env.step(env.walkthrough(COIN)[1]).observation == expected


def test_reset_of_a_loaded_game_neither_regenerates_nor_reloads(cache_dir, monkeypatch):
    env = TextWorldGamesEnv("tw-coin_collector", 3, train_seeds=[0, 1], valid_seeds=[], test_seeds=[],
                            cache_dir=cache_dir, max_loaded_games=2)
    loads = []
    original_load = twg._LoadedGame.load

    def counting_load(spec, entry, owner):
        loads.append(spec.task_id)
        return original_load(spec, entry, owner)

    monkeypatch.setattr(twg._LoadedGame, "load", counting_load)
    for task_id in [COIN, COIN, "tw-coin_collector/L3/s1", COIN, "tw-coin_collector/L3/s1"]:
        env.reset(task_id)
        env.step("look")
    assert loads == [COIN, "tw-coin_collector/L3/s1"]


def test_snapshot_misuse(envs, cache_dir):
    env = envs["tw-coin_collector"]
    other = TextWorldGamesEnv("tw-coin_collector", 3, train_seeds=[0], valid_seeds=[], test_seeds=[],
                              cache_dir=cache_dir)
    with pytest.raises(EnvError, match="no episode"):
        other.step("look")
    with pytest.raises(EnvError, match="no episode"):
        other.snapshot()
    env.reset(COIN)
    snap = env.snapshot()
    assert isinstance(snap, TextWorldSnapshot)
    with pytest.raises(EnvError, match="not taken by this"):
        other.restore(snap)
    with pytest.raises(EnvError, match="not taken by this"):
        env.restore("not a snapshot")


# ----------------------------------------------------------------------------------------- step limit


def test_max_steps_truncates(cache_dir):
    env = TextWorldGamesEnv("tw-coin_collector", 3, train_seeds=[0], valid_seeds=[], test_seeds=[],
                            cache_dir=cache_dir, max_steps=3)
    env.reset(COIN)
    transitions = [env.step("look") for _ in range(3)]
    assert [t.done for t in transitions] == [False, False, True]
    assert [t.info["truncated"] for t in transitions] == [False, False, True]
    assert not transitions[-1].won and transitions[-1].reward == 0.0
    assert transitions[-1].observation.admissible_actions  # a truncated game keeps its state's actions
    with pytest.raises(EnvError, match="has ended"):
        env.step("look")
    # Winning on the last allowed step is a win, not a truncation.
    env.reset(COIN)
    last = [env.step(a) for a in env.walkthrough(COIN)][-1]
    assert len(env.walkthrough(COIN)) == 3 and last.won and last.done and not last.info["truncated"]


# ---------------------------------------------------------------------------------------- generation


def test_same_key_same_game_and_different_seeds_differ(cache_dir, envs):
    spec0, spec1 = GameSpec.create("tw-coin_collector", 3, 0), GameSpec.create("tw-coin_collector", 3, 1)
    manifest0 = json.loads((cache_dir / spec0.dirname / "manifest.json").read_text())
    manifest1 = json.loads((cache_dir / spec1.dirname / "manifest.json").read_text())
    assert manifest0["files"] != manifest1["files"]
    env = envs["tw-coin_collector"]
    intro0, intro1 = env.reset(COIN).text, env.reset("tw-coin_collector/L3/s1").text
    assert intro0 != intro1
    # A second environment instance plays the same observations.
    twin = TextWorldGamesEnv("tw-coin_collector", 3, train_seeds=[0], valid_seeds=[], test_seeds=[],
                             cache_dir=cache_dir)
    assert twin.walkthrough(COIN) == env.walkthrough(COIN)
    for player in (env, twin):
        player.reset(COIN)
    actions = ["look", env.walkthrough(COIN)[0], "inventory", "fly"] + env.walkthrough(COIN)
    assert _play(env, actions) == _play(twin, actions)


def test_corrupt_cache_entry_is_detected_and_regenerated_identically(cache_dir, tmp_path):
    spec = GameSpec.create("tw-coin_collector", 3, 0)
    entry = tmp_path / spec.dirname
    shutil.copytree(cache_dir / spec.dirname, entry)
    manifest = json.loads((entry / "manifest.json").read_text())
    verify_game_dir(entry, spec)

    story = bytearray((entry / "game.z8").read_bytes())
    story[len(story) // 2] ^= 0xFF
    (entry / "game.z8").write_bytes(bytes(story))
    with pytest.raises(GameCacheError, match=r"game\.z8: sha256 .* does not match"):
        verify_game_dir(entry, spec)
    with pytest.raises(GameCacheError, match="field 'seed'"):
        verify_game_dir(cache_dir / spec.dirname, GameSpec.create("tw-coin_collector", 3, 1))

    with pytest.warns(RuntimeWarning, match=r"corrupt cached TextWorld game: .*game\.z8"):
        (regenerated,) = ensure_games([spec], tmp_path)
    verify_game_dir(regenerated, spec)
    # Regeneration in a fresh process gives byte-identical files.
    assert json.loads((regenerated / "manifest.json").read_text())["files"] == manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", spec.dirname]  # no temporary leftovers


def test_unreadable_manifest_is_reported_with_its_path(cache_dir, tmp_path):
    spec = GameSpec.create("tw-coin_collector", 3, 0)
    entry = tmp_path / spec.dirname
    shutil.copytree(cache_dir / spec.dirname, entry)
    manifest_path = entry / "manifest.json"
    manifest_path.write_text(manifest_path.read_text()[:40])
    with pytest.raises(GameCacheError, match=re.escape(str(manifest_path)) + ": unreadable"):
        verify_game_dir(entry, spec)
    manifest_path.unlink()
    with pytest.raises(GameCacheError, match="manifest.json: missing"):
        verify_game_dir(entry, spec)


def test_spec_and_constructor_validation(tmp_path):
    with pytest.raises(ValueError, match="unknown TextWorld challenge"):
        GameSpec.create("tw-simple", 1, 0)
    with pytest.raises(ValueError, match=r"level must be in \[1, 30\]"):
        GameSpec.create("tw-treasure_hunter", 31, 0)
    with pytest.raises(ValueError, match="seed must be an int"):
        GameSpec.create("tw-coin_collector", 1, -1)
    with pytest.raises(ValueError, match="only supported for tw-cooking"):
        GameSpec.create("tw-coin_collector", 1, 0, {"go": 6})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['rooms'\]"):
        GameSpec.create("tw-cooking", 1, 0, {"rooms": 6})
    assert GameSpec.create("tw-cooking", 1, 0, {"go": 6}).settings["go"] == 6
    assert GameSpec.create("tw-cooking", 1, 0, {"go": 6}).dirname != GameSpec.create("tw-cooking", 1, 0).dirname
    with pytest.raises(ValueError, match="overlap"):
        TextWorldGamesEnv(train_seeds=[1, 2], valid_seeds=[2], test_seeds=[], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="max_steps"):
        TextWorldGamesEnv(max_steps=0, cache_dir=tmp_path)
    env = TextWorldGamesEnv("tw-coin_collector", 3, cache_dir=tmp_path)
    with pytest.raises(EnvError, match="unknown split"):
        env.tasks("valid_seen")
    with pytest.raises(EnvError, match="malformed"):
        env.reset("coin/3/0")
    with pytest.raises(EnvError, match="not a tw-coin_collector level 3"):
        env.reset("tw-coin_collector/L4/s0")


def test_a_ladder_of_levels_holds_one_game_per_level_and_seed(tmp_path):
    env = TextWorldGamesEnv("tw-coin_collector", [4, 2], train_seeds=[0, 1], valid_seeds=[9], test_seeds=[], cache_dir=tmp_path)
    assert env.tasks("train") == [f"tw-coin_collector/L{lvl}/s{s}" for lvl in (2, 4) for s in (0, 1)]
    assert env.task_type("tw-coin_collector/L4/s1") == "tw-coin_collector/L4"  # success is reported per level
    assert env.spec("tw-coin_collector/L2/s9").settings == {"level": 2}
    with pytest.raises(EnvError, match=r"level \[2, 4\]"):
        env.spec("tw-coin_collector/L3/s0")


def test_non_string_action_is_a_type_error(envs):
    env = envs["tw-coin_collector"]
    env.reset(COIN)
    with pytest.raises(TypeError, match="action must be a str"):
        env.step(None)


# ------------------------------------------------------------------------ agreement with TextWorld's own wrapper


@pytest.mark.filterwarnings("ignore::jericho.UnsupportedGameWarning")
@settings(max_examples=10)
@given(choices=st.lists(st.integers(0, 50), min_size=5, max_size=20))
def test_admissible_commands_and_wins_match_textworld_start(envs, cache_dir, choices):
    """textworld.start() drives the same game with TextWorld's own wrappers: the logic views must agree."""
    env = envs["tw-cooking"]
    task_id = env.tasks("train")[0]
    story = cache_dir / env.spec(task_id).dirname / "game.z8"
    reference = textworld.start(str(story), textworld.EnvInfos(admissible_commands=True, won=True, lost=True))
    state = reference.reset()
    obs = env.reset(task_id)
    assert obs.admissible_actions == tuple(state["admissible_commands"])
    for choice in choices:
        action = obs.admissible_actions[choice % len(obs.admissible_actions)]
        transition = env.step(action)
        state, _, done = reference.step(action)
        assert (transition.won, transition.info["lost"]) == (state["won"], state["lost"])
        if transition.done:
            break
        obs = transition.observation
        assert obs.admissible_actions == tuple(state["admissible_commands"])
    reference.close()
