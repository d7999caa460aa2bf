"""The notebooks' training profiles: every one names a valid config, and the smoke profiles say so."""

import pytest

from spo3.config import ConfigError, load_yaml
from spo3.experiments.compare import variant_config
from spo3.experiments.environments import METHODS, PROFILES

CASES = [(env, profile) for env, profiles in PROFILES.items() for profile in profiles]


@pytest.mark.parametrize("env,profile", CASES, ids=[f"{e}-{p}" for e, p in CASES])
def test_profile_config_is_valid(env, profile, tmp_path):
    spec = PROFILES[env][profile]
    for method in METHODS:
        extra = (*spec.overrides, f"env.{env}.data_dir={tmp_path}")  # as run_methods builds them
        try:
            cfg = variant_config(spec.config, method, spec.seeds[0], spec.iterations, tmp_path, extra)
        except ConfigError as exc:  # the GPU profiles name a hub model: valid wherever it is cached
            assert profile.startswith("gpu") and str(exc).startswith("policy.model:")
            cfg = variant_config(spec.config, method, spec.seeds[0], spec.iterations, tmp_path, (*extra, "policy.model=tiny"))
        assert cfg.env.name == env and cfg.algo.name == method.algorithm and cfg.iterations == spec.iterations
        assert getattr(cfg.env, env).data_dir == str(tmp_path)
        splits = {"alfworld": ("valid_unseen", "valid_seen")}.get(env)
        if splits:
            assert set(splits) <= set(spec.eval_splits)
    assert spec.smoke == (profile in ("small", "gpu-smoke"))
    if profile.startswith("gpu"):
        assert load_yaml(spec.config)["policy"]["model"] == "Qwen/Qwen2.5-1.5B-Instruct" and cfg.policy.device == "cuda"
    if profile == "gpu-smoke":
        assert cfg.iterations == 2
