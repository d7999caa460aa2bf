"""The environment guard (spo3.envs.guard): command sanitising, bounded engine calls, recreation after a failure,
and fuzzed replies through parsing into every environment family."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spo3.envs.base import EnvError
from spo3.envs.guard import EXIT_ENGINE_HUNG, MAX_COMMAND_CHARS, GuardedEnv, ResetFailed, sanitize_command
from spo3.envs.projection import project_action
from spo3.rollout.common import RolloutStats, Stepper
from spo3.policies.base import Response
from tests._data import REPO_ROOT
from tests.fakes import GraphEnv

GRAPH = {"A": {"go b": "B", "hang": "A", "boom": "A"}, "B": {"go g": "G"}}


class FlakyEnv(GraphEnv):
    """GraphEnv whose snapshots belong to their instance, and where "hang" spins in Python and "boom" raises."""

    def __init__(self) -> None:
        super().__init__(GRAPH, {"t": "A"}, goals={"G"}, max_steps=10)

    def step(self, action):
        if action == "hang":
            while True:
                pass
        if action == "boom":
            raise RuntimeError("engine exploded")
        return super().step(action)

    def snapshot(self):
        return (self, super().snapshot())

    def restore(self, snapshot):
        if snapshot[0] is not self:
            raise EnvError("foreign snapshot")
        return super().restore(snapshot[1])


# ------------------------------------------------------------------------------------------- sanitising
@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("\\h", "h"),  # a leading backslash is a dumb-frotz meta-command
        ("\\n go east", "n go east"),
        ("go\nnorth", "go north"),
        ("go \udc80 east", "go east"),  # a lone surrogate raised UnicodeEncodeError
        ("take\x00 \x1b[31mcoin\u200b", "take [31mcoin"),
        ("  open  door \t", "open door"),
        ("search[caf\u00e9 shoes]", "search[caf\u00e9 shoes]"),
    ],
)
def test_sanitize_command(action, expected):
    assert sanitize_command(action) == expected


def test_sanitize_command_bounds_length_and_time():
    t0 = time.perf_counter()
    assert len(sanitize_command("\\go " * 1_000_000)) <= MAX_COMMAND_CHARS  # 4 MB
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(TypeError, match="must be a str"):
        sanitize_command(None)


@given(st.text(st.characters(min_codepoint=32, max_codepoint=126).filter(lambda c: c != "\\"), max_size=80))
def test_sanitize_keeps_ordinary_commands(text):
    command = " ".join(text.split())
    assert sanitize_command(command) == command


# ---------------------------------------------------------------------------------------- the guard
def test_timeout_ends_the_episode_as_a_failure_and_recreates_the_engine(caplog):
    made = []
    env = GuardedEnv(lambda: made.append(FlakyEnv()) or made[-1], timeout_s=0.3)
    stats = RolloutStats()
    stepper = Stepper(env.family, "global", 2, stats)
    root = stepper.root(env, "t")
    at_b, tr, _, _ = stepper.step(env, root, Response("<think>x</think><action>go b</action>", (), ()))
    assert tr.changed and not at_b.done
    with caplog.at_level(logging.WARNING, logger="spo3.envs.guard"):
        for _ in range(3):
            t0 = time.perf_counter()
            dead, tr, _, _ = stepper.step(env, root, Response("<think>x</think><action>hang</action>", (), ()))
            assert time.perf_counter() - t0 < 3.0
            assert tr.done and not tr.won and "no answer within 0.3 s" in tr.info["env_failure"]
            assert dead.done and not dead.won
    assert stats.env_failures == 3 and env.failures == {"step timeout": 3}
    assert len(made) == 4  # recreated after every failure
    assert len([r for r in caplog.records if "timeout" in r.getMessage() or "no answer" in r.getMessage()]) == 1
    # A snapshot of the first engine is replayed on the current one, exactly.
    child, tr, _, _ = stepper.step(env, at_b, Response("<think>x</think><action>go g</action>", (), ()))
    assert tr.won and child.done


def test_exception_in_step_and_restore_is_a_failure_not_a_crash(caplog):
    env = GuardedEnv(FlakyEnv, timeout_s=5)
    root_obs = env.reset("t")
    root = env.snapshot()
    tr = env.step("boom")
    assert tr.done and not tr.won and "engine exploded" in tr.info["env_failure"]
    assert env.failures == {"step RuntimeError": 1}
    assert env.restore(root) == root_obs  # replayed on the new engine
    assert env.step("go b").changed
    assert env.step("go g").won
    with pytest.raises(EnvError, match="has ended"):
        env.step("go b")


def test_failing_reset_is_retried_once_then_raises_reset_failed():
    calls, made = [], []

    class BadReset(FlakyEnv):
        def reset(self, task_id):
            calls.append(task_id)
            if task_id == "t":
                raise KeyError(task_id)
            return super().reset("t")

    env = GuardedEnv(lambda: made.append(BadReset()) or made[-1], timeout_s=5)
    env.reset("other")
    with pytest.raises(ResetFailed, match=r"^BadReset.reset: KeyError\('t'\) \(task 't'; it failed on a fresh engine too\)$"):
        env.reset("t")
    assert calls == ["other", "t", "t"] and env.failures == {"reset KeyError": 2}
    assert len(made) == 3  # recreated after each failure: the next task starts on a fresh engine
    with pytest.raises(EnvError, match="no episode is running"):  # the earlier episode is gone with its engine
        env.step("go b")


# ---------------------------------------------------------------------------- TextWorld's interpreter
_HANG_SCRIPT = """
import sys
from spo3.envs.textworld_games import TextWorldGamesEnv
env = TextWorldGamesEnv("tw-coin_collector", 1, train_seeds=[0], valid_seeds=[], test_seeds=[])
task = env.tasks("train")[0]
env.reset(task)
for action in ["\\\\h", "\\\\n go east", "\\\\help", "go \\udc80 east", "\\\\" * 4_000_000]:
    assert not env.step(action).done
print("usable:", env.step(env.walkthrough(task)[0]).changed)
"""


def test_textworld_meta_commands_and_surrogates_do_not_hang_the_interpreter():
    """Before the fix, ``\\h`` spun forever inside dumb-frotz (so the child runs under a timeout, stderr discarded:
    the spin writes ~100 MB/s there) and a lone surrogate raised UnicodeEncodeError."""
    proc = subprocess.run(
        [sys.executable, "-c", _HANG_SCRIPT], cwd=REPO_ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, timeout=120, text=True,
    )
    assert proc.returncode == 0 and "usable: True" in proc.stdout


_NATIVE_SPIN_SCRIPT = """
import sys
from spo3.envs.guard import bounded_call
from spo3.envs.textworld_games import TextWorldGamesEnv

env = TextWorldGamesEnv("tw-coin_collector", 1, train_seeds=[0], valid_seeds=[], test_seeds=[])
env.reset(env.tasks("train")[0])
print("stepping", flush=True)
bounded_call(lambda: env._game.interpreter.step("\\\\h"), 1.0, "step")  # unsanitised: spins inside dumb-frotz
"""


def test_a_call_stuck_in_native_code_ends_the_process_within_twice_the_timeout():
    proc = subprocess.Popen([sys.executable, "-c", _NATIVE_SPIN_SCRIPT], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "stepping"
        t0 = time.perf_counter()
        rc = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert rc == EXIT_ENGINE_HUNG and time.perf_counter() - t0 < 10


# --------------------------------------------------------------------------------------------- fuzzing
_ANY_CHAR = st.characters(exclude_categories=())  # surrogates and control characters included
_NASTY = st.sampled_from(["\\h", "\\n go east", "\\help", "\\s", "\\w 10", "\\\\", "\x00", "\n", "\r\n", "\udcff",
                          "<action>", "</action>", "<think>", "</think>", "search[", "click[", "]"])
_FRAGMENT = st.one_of(st.text(_ANY_CHAR, max_size=30), _NASTY)
_INNER = st.lists(_FRAGMENT, max_size=6).map("".join)
REPLIES = st.one_of(
    st.text(_ANY_CHAR, max_size=200),
    st.builds(lambda t, a: f"<think>{t}</think><action>{a}</action>", _INNER, _INNER),
    st.builds(lambda a, b: f"<think>x</think><action><action>{a}</action>{b}</action>", _INNER, _INNER),  # nested
    st.builds(lambda a, n: f"<think>x</think><action>{a * n}</action>", _NASTY, st.sampled_from([1, 1_000_000])),
    st.just("<think>x</think><action>" + "\\h\n" * 1_000_000 + "</action>"),  # 4 MB
)


def _fuzz(env, task_id: str, reply: str) -> None:
    """One fuzzed reply through parsing into a guarded step: bounded time, no engine failure, env still usable."""
    first = env.walkthrough(task_id)[0]
    guarded = GuardedEnv(lambda: env, timeout_s=30)
    obs = guarded.reset(task_id)
    root = guarded.snapshot()
    action, _ = project_action(reply, env.family)
    t0 = time.perf_counter()
    tr = guarded.step(action)
    assert time.perf_counter() - t0 < 5.0
    assert "env_failure" not in tr.info, tr.info
    assert guarded.restore(root) == obs
    good = guarded.step(first)
    assert good.changed and "env_failure" not in good.info


@pytest.fixture(scope="module")
def textworld_env():
    from spo3.envs.textworld_games import TextWorldGamesEnv

    return TextWorldGamesEnv("tw-coin_collector", 5, train_seeds=[0], valid_seeds=[], test_seeds=[])


FUZZ = settings(max_examples=25)  # each example steps a real engine; the nasty fragments are sampled explicitly


@FUZZ
@given(reply=REPLIES)
def test_fuzzed_replies_into_textworld(textworld_env, reply):
    _fuzz(textworld_env, textworld_env.tasks("train")[0], reply)


@pytest.fixture(scope="module")
def webshop_env():
    from spo3.envs.webshop import Catalogue, WebShopEnv
    from tests.envs.test_webshop import shoe, widget

    return WebShopEnv(product_catalogue=Catalogue("synthetic", (shoe(), *(widget(i) for i in range(11))), "hand-built"),
                      seed=0)


@FUZZ
@given(reply=REPLIES)
def test_fuzzed_replies_into_webshop(webshop_env, reply):
    _fuzz(webshop_env, webshop_env.tasks("test")[0], reply)


@settings(max_examples=15)  # an ALFWorld step costs ~50-100 ms
@given(reply=REPLIES)
def test_fuzzed_replies_into_alfworld(alfworld_env, reply):
    task = alfworld_env.tasks("valid_unseen")[0]
    _fuzz(alfworld_env, task, reply)


@pytest.mark.parametrize("fixture", ["textworld_env", "webshop_env", "alfworld_env"])
def test_a_hung_engine_call_recovers_in_every_family(fixture, request, monkeypatch):
    """A step that never returns (here: spinning in Python) ends its episode as a failure; a snapshot taken before
    is then replayed on the recreated engine and continues exactly as the original would have."""
    env = request.getfixturevalue(fixture)
    task = env.tasks("valid_unseen" if fixture == "alfworld_env" else ("test" if fixture == "webshop_env" else "train"))[0]
    walkthrough = env.walkthrough(task)
    env.reset(task)
    expected = [env.step(action) for action in walkthrough[:2]][1]
    original = type(env).step

    def step(self, action):
        while action == "hang":
            pass
        return original(self, action)

    monkeypatch.setattr(type(env), "step", step)
    guarded = GuardedEnv(lambda: env, timeout_s=0.5)
    guarded.reset(task)
    guarded.step(walkthrough[0])
    after_first = guarded.snapshot()
    t0 = time.perf_counter()
    failed = guarded.step("hang")
    assert time.perf_counter() - t0 < 5 and failed.done and not failed.won and "env_failure" in failed.info
    guarded.restore(after_first)
    assert guarded.step(walkthrough[1]) == expected
