"""The linear policy over hashed (observation, action) features: protocol, exact persistence, and transfer to
an unseen game (what the tabular policy cannot do)."""

from __future__ import annotations

import pytest
import torch

from spo3.envs.base import Observation
from spo3.envs.prompts import render_prompt
from spo3.policies.base import PolicyInput
from spo3.policies.linear import LinearPolicy, features
from spo3.policies.tabular import TabularPolicy

ROOMS = ["kitchen", "attic", "cellar", "garden", "studio", "pantry", "library"]
EXITS = ["north", "south", "east", "west"]


def _decision(room: str, coin: bool, exits: tuple[str, ...]) -> PolicyInput:
    text = f"-= {room.title()} =-\nYou've entered a {room}." + (" You see a coin here." if coin else "")
    actions = tuple(sorted([f"go {e}" for e in exits] + (["take coin"] if coin else [])))
    obs = Observation(text, actions, f"game-{room}", "find the coin and take it", 0)
    return PolicyInput(prompt=render_prompt(obs, (), "textworld"), context=f"{room}-{coin}", actions=actions)


def _train_take_coin(policy, rooms, steps: int = 30) -> None:
    """Supervised steps towards "take coin" where a coin is in view (the success signal RL would give)."""
    decisions = [_decision(r, True, (EXITS[i % 4], EXITS[(i + 1) % 4])) for i, r in enumerate(rooms)]
    opt = torch.optim.Adam(policy.parameters(), lr=0.05)
    for _ in range(steps):
        responses = [policy.response_for(d, "take coin") for d in decisions]
        loss = -policy.token_scores(decisions, responses, entropy=False).logprobs.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_features_leave_out_the_candidate_list_and_split_history_from_the_current_observation():
    d = _decision("kitchen", True, ("north",))
    names = features(d.prompt, "take coin")
    assert "o:coin|take" in names and "o:kitchen|coin" in names
    assert "h:find|take" in names  # the task stated before the current observation
    assert "o:go|take" not in names  # "go north" appears only in the candidate list


def test_bracketed_actions_count_task_words_in_their_argument_and_in_the_segment_after_it():
    page = ("'Back to Search' [SEP] 'Page 1 (Total results: 2)' [SEP] 'Next >' [SEP] 'B01' [SEP] 'Acme Trail Running "
            "Shoes' [SEP] '$39.99' [SEP] 'B02' [SEP] 'Acme Widget' [SEP] '$5.0'")
    actions = ("click[back to search]", "click[next >]", "click[b01]", "click[b02]")
    obs = Observation(page, actions, "0", "find me trail running shoes with size: 8", 1)
    prompt = render_prompt(obs, (), "webshop")
    counts = {a: (features(prompt, a).count("m:arg"), features(prompt, a).count("m:next")) for a in actions}
    assert counts == {"click[back to search]": (0, 0), "click[next >]": (0, 0), "click[b01]": (0, 3), "click[b02]": (0, 0)}
    item = Observation("'< Prev' [SEP] 'size' [SEP] '8' [SEP] '9' [SEP] 'Acme Trail Running Shoes'", ("click[8]", "click[9]"),
                       "0", obs.task, 2)
    assert features(render_prompt(item, (), "webshop"), "click[8]").count("m:arg") == 1
    assert features(render_prompt(item, (), "webshop"), "click[9]").count("m:arg") == 0
    # unbracketed actions (TextWorld, ALFWorld) get no such features
    d = _decision("kitchen", True, ("north",))
    assert not [f for f in features(d.prompt, "take coin") if f.startswith("m:")]


def test_generalises_to_an_unseen_game_where_a_tabular_policy_cannot():
    unseen = _decision("library", True, ("south", "west"))
    for policy, transfers in ((LinearPolicy(seed=0, dim=1 << 16), True), (TabularPolicy(seed=0), False)):
        before = policy.probabilities(unseen)["take coin"]
        _train_take_coin(policy, ROOMS[:4])
        after = policy.probabilities(unseen)["take coin"]
        assert abs(before - 1 / 3) < 1e-9
        assert (after > 0.8) is transfers, (type(policy).__name__, before, after)
    # ...and it does not take a coin that is not there: without one in view the exits stay near uniform
    no_coin = _decision("library", False, ("south", "west"))
    assert abs(policy.probabilities(no_coin)["go south"] - 0.5) < 0.2


def test_sampling_is_seeded_and_scores_match_sampling():
    d = [_decision(r, i % 2 == 0, ("north", "east")) for i, r in enumerate(ROOMS[:3])]
    a, b = LinearPolicy(seed=3, dim=1 << 12), LinearPolicy(seed=3, dim=1 << 12)
    for p in (a, b):
        with torch.no_grad():
            p.weights.copy_(torch.randn(1 << 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    ra, rb = a.sample(d, [4, 2, 3]), b.sample(d, [4, 2, 3])
    assert [[r.text for r in x] for x in ra] == [[r.text for r in x] for x in rb]
    flat_in = [d[i] for i, x in enumerate(ra) for _ in x]
    flat = [r for x in ra for r in x]
    scores = a.token_scores(flat_in, flat)
    torch.testing.assert_close(scores.logprobs[:, 0], torch.tensor([r.logprobs[0] for r in flat], dtype=torch.float64))
    assert scores.entropy.shape == (len(flat), 1)


def test_save_load_round_trip_is_exact(tmp_path):
    policy = LinearPolicy(seed=0, dim=1 << 12)
    _train_take_coin(policy, ROOMS[:2], steps=3)
    policy.freeze_reference()
    _train_take_coin(policy, ROOMS[2:4], steps=3)
    policy.save(tmp_path)
    copy = LinearPolicy(seed=5, dim=1 << 12)
    copy.load(tmp_path)
    assert torch.equal(copy.weights, policy.weights) and torch.equal(copy._reference, policy._reference)
    d = _decision("cellar", True, ("east",))
    r = policy.response_for(d, "take coin")
    assert torch.equal(copy.reference_logprobs([d], [r]), policy.reference_logprobs([d], [r]))


def test_a_checkpoint_of_another_size_is_refused(tmp_path):
    LinearPolicy(dim=1 << 10).save(tmp_path)
    with pytest.raises(ValueError, match="dim"):
        LinearPolicy(dim=1 << 11).load(tmp_path)
