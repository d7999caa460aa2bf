"""Config values are validated by meaning at load time, each error naming its field in one line."""

from __future__ import annotations

import pytest

from spo3.config import ConfigError, load_config
from spo3.config.settings import SPLITS, TEXTWORLD_LEVELS


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["optim.lr=nan"], "optim.lr"),
        (["optim.lr=.inf"], "optim.lr"),
        (["optim.lr=0"], "optim.lr"),
        (["warm_start.lr=-1e-3"], "warm_start.lr"),
        (["policy.temperature=0"], "policy.temperature"),
        (["policy.temperature=.nan"], "policy.temperature"),
        (["eval.temperature=.inf"], "eval.temperature"),
        (["env.step_timeout_s=0"], "env.step_timeout_s"),
        (["env.train_split=trian"], "env.train_split"),
        (["env.name=alfworld", "env.eval_split=valid"], "env.eval_split"),
        (["env.textworld.challenge=tw-simple"], "env.textworld.challenge"),
        (["env.textworld.level=301"], "env.textworld.level"),
        (["env.textworld.challenge=tw-cooking", "env.textworld.level=5"], "env.textworld.level"),
        (["env.alfworld.data_dir=/nonexistent/alfworld"], "env.alfworld.data_dir"),
        (["env.webshop.data_dir=/nonexistent/webshop"], "env.webshop.data_dir"),
        (["policy.kind=hf", "policy.model=nobody/no-such-model"], "policy.model"),
        (["policy.kind=hf", "policy.model=/nonexistent/model"], "policy.model"),
        (["log.run_name=../escaped"], "log.run_name"),
        (["log.run_name=/tmp/abs"], "log.run_name"),
        (["log.run_name=.."], "log.run_name"),
    ],
)
def test_bad_values_name_their_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert message.startswith(f"{field}: ") and "\n" not in message


def test_good_values_load(tmp_path):
    load_config(None, ["policy.kind=hf", "policy.model=tiny"])
    load_config(None, ["policy.kind=hf", "policy.model=smollm2"])
    load_config(None, ["policy.kind=hf", f"policy.model={tmp_path}"])  # a local model directory
    load_config(None, ["policy.kind=tabular", "policy.model=nobody/no-such-model"])  # only hf policies load models
    load_config(None, [f"env.alfworld.data_dir={tmp_path}", "env.textworld.challenge=tw-cooking",
                       "env.textworld.level=4", "eval.temperature=0", "log.run_name=my-run"])


def test_names_agree_with_the_environments():
    from spo3.envs.alfworld.data import ALFWORLD_SPLITS
    from spo3.envs.textworld_games import _LEVEL_RANGES, CHALLENGES, COOKING_LEVELS, TextWorldGamesEnv
    from spo3.envs.webshop.goals import goal_ids

    assert tuple(TEXTWORLD_LEVELS) == CHALLENGES
    assert {**_LEVEL_RANGES, "tw-cooking": range(1, len(COOKING_LEVELS) + 1)} == TEXTWORLD_LEVELS
    assert set(COOKING_LEVELS) == set(TEXTWORLD_LEVELS["tw-cooking"])
    assert SPLITS["alfworld"] == ALFWORLD_SPLITS
    assert sorted(TextWorldGamesEnv("tw-coin_collector", 1)._splits) == sorted(SPLITS["textworld"])
    for split in SPLITS["webshop"]:
        goal_ids(1000, split)
    with pytest.raises(ValueError):
        goal_ids(1000, "bogus")
