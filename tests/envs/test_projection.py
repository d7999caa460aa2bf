"""Action projection: upstream's rules on literal cases, the opt-in admissibility check, and never raising."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spo3.envs.projection import FALLBACK_CHARS, project_action

GOOD = "<think>the mug is on the desk</think><action>take mug 1 from desk 1</action>"


@pytest.mark.parametrize(
    ("response", "family", "expected"),
    [
        # Well-formed: stripped text between the tags, lower-cased.
        (GOOD, "alfworld", ("take mug 1 from desk 1", True)),
        ("<think>x</think> <action>  Go To Desk 1 \n</action>", "alfworld", ("go to desk 1", True)),
        ("<think>x</think><ACTION>look</Action>", "alfworld", ("look", True)),  # tags are found after lower-casing
        ("<think>x</think><action>click[Buy Now]</action>", "webshop", ("click[buy now]", True)),
        # First <action> and first </action> win.
        ("<think>x</think><action>a</action><action>b</action>", "alfworld", ("a", True)),
        # </action> before <action>: empty slice (upstream: valid; ours: an empty action is never valid).
        ("<think>x</think></action> then <action>look", "alfworld", ("", False)),
        ("<think>x</think><action> \n </action>", "alfworld", ("", False)),
        # A missing <think> or </think> (case-sensitive on the original text) makes the turn invalid.
        ("<action>look</action>", "alfworld", ("look", False)),
        ("<THINK>x</THINK><action>look</action>", "alfworld", ("look", False)),
        ("<think>x<action>look</action>", "alfworld", ("look", False)),
        # A CJK ideograph anywhere makes the turn invalid.
        ("<think>\u770b</think><action>look</action>", "alfworld", ("look", False)),
        ("<think>x</think><action>look</action>\u9fff", "alfworld", ("look", False)),
        ("<think>x</think><action>look</action>\u4dff", "alfworld", ("look", True)),  # just below the range
    ],
)
def test_literal_cases(response, family, expected):
    assert project_action(response, family) == expected


def test_fallback_takes_the_last_30_or_20_lowercased_characters():
    reply = "<think>I will open The Fridge now</think> Open Fridge 1"  # no action tags
    assert project_action(reply, "alfworld") == ("idge now</think> open fridge 1", False)
    assert project_action(reply, "textworld") == ("idge now</think> open fridge 1", False)
    assert project_action(reply, "webshop") == ("think> open fridge 1", False)
    assert project_action("<think>x</think><action>look", "alfworld") == ("<think>x</think><action>look", False)
    assert project_action("Look", "alfworld") == ("look", False)  # shorter than the window: all of it
    assert project_action("", "webshop") == ("", False)


def test_admissibility_check_is_opt_in():
    admissible = ["look", "inventory"]
    reply = "<think>x</think><action>fly to the moon</action>"
    assert project_action(reply, "alfworld", admissible) == ("fly to the moon", True)  # upstream: format only
    assert project_action(reply, "alfworld", admissible, check_admissible=True) == ("fly to the moon", False)
    assert project_action("<think>x</think><action>Look</action>", "alfworld", admissible, check_admissible=True) == (
        "look",
        True,
    )
    with pytest.raises(ValueError, match="needs the admissible actions"):
        project_action(reply, "alfworld", check_admissible=True)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown family 'sokoban'"):
        project_action(GOOD, "sokoban")
    with pytest.raises(TypeError, match="response must be str"):
        project_action(None, "alfworld")


@given(response=st.text(), family=st.sampled_from(sorted(FALLBACK_CHARS)), check=st.booleans())
def test_never_raises_and_keeps_upstream_invariants(response, family, check):
    action, valid = project_action(response, family, ["look"], check_admissible=check)
    assert isinstance(action, str) and isinstance(valid, bool)
    lowered = response.lower()
    if "<action>" not in lowered or "</action>" not in lowered:
        assert (action, valid) == (lowered[-FALLBACK_CHARS[family]:], False)
    if valid:
        assert action, "an empty action is never valid"
        assert "<think>" in response and "</think>" in response
        assert action == action.strip() and action == action.lower()
