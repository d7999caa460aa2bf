"""Action projection: from an LLM reply to the action string sent to the environment (upstream's rules).

The rules are those of upstream's ``alfworld_projection`` / ``webshop_projection`` (genalyu/3SPO, a fork of
verl-agent; ``agent_system/environments/env_package/{alfworld,webshop}/projection.py``), which share one logic:

1. Lower-case the reply and take the stripped text between the first ``<action>`` and the first ``</action>``.
   If either tag is missing, the action is the last 30 characters (ALFWorld, TextWorld) or 20 characters (WebShop)
   of the lower-cased reply and the turn is invalid; that string is still sent to the environment, where it is a
   no-op. If ``</action>`` comes before ``<action>``, the slice is empty: the action is ``""``.
2. The turn is invalid if the original (case-sensitive) reply lacks ``<think>`` or ``</think>``.
3. The turn is invalid if the reply contains a CJK ideograph (U+4E00 to U+9FFF).
4. Not upstream: an empty action (``<action> </action>``, or the tags in the wrong order) is invalid. Upstream
   counts it as valid, which lets a reply that says nothing escape the invalid-action penalty.

Validity is about format only, as upstream: the admissible list is not consulted. ``check_admissible=True``
(our option, off by default) additionally marks an action outside the admissible list invalid; the action string
itself is unchanged, so the environment still sees it and treats it as a no-op.
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["FALLBACK_CHARS", "project_action"]

FALLBACK_CHARS: dict[str, int] = {"alfworld": 30, "textworld": 30, "webshop": 20}
"""Per family: how many trailing characters of the lower-cased reply become the action when the tags are
missing (upstream: 30 for ALFWorld, 20 for WebShop; the TextWorld games follow ALFWorld)."""

_ACTION_OPEN = "<action>"
_ACTION_CLOSE = "</action>"
_CJK = re.compile("[\u4e00-\u9fff]")


def project_action(
    response: str,
    family: str,
    admissible: Sequence[str] | None = None,
    check_admissible: bool = False,
) -> tuple[str, bool]:
    """Extract the action from a model reply and say whether the turn was well-formed.

    Never raises on any string: malformed replies give ``valid=False``, not an exception.

    Args:
      response: the decoded model reply.
      family: ``"alfworld"``, ``"textworld"`` or ``"webshop"`` (sets the fallback length).
      admissible: the admissible actions of the current observation; only read when ``check_admissible``.
      check_admissible: also mark an action outside ``admissible`` invalid (not upstream; off by default).

    Returns:
      ``(action, valid)``: the action string to send to the environment, and whether the turn counts as valid
      (upstream's ``is_action_valid``, which drives the invalid-action penalty).

    Raises:
      ValueError: unknown ``family``, or ``check_admissible`` without an ``admissible`` list.
      TypeError: ``response`` is not a string.
    """
    if family not in FALLBACK_CHARS:
        raise ValueError(f"project_action: unknown family {family!r}; expected one of {sorted(FALLBACK_CHARS)}")
    if not isinstance(response, str):
        raise TypeError(f"project_action: response must be str, got {type(response).__name__}")
    if check_admissible and admissible is None:
        raise ValueError("project_action: check_admissible=True needs the admissible actions")

    lowered = response.lower()
    start = lowered.find(_ACTION_OPEN)
    end = lowered.find(_ACTION_CLOSE)
    if start == -1 or end == -1:
        return lowered[-FALLBACK_CHARS[family]:], False

    action = lowered[start + len(_ACTION_OPEN):end].strip()
    valid = bool(action) and "<think>" in response and "</think>" in response and _CJK.search(response) is None
    if check_admissible and action not in admissible:
        valid = False
    return action, valid
