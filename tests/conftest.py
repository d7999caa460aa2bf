"""Test-suite wide settings: single-threaded torch, offline Hugging Face, deterministic hypothesis, data paths."""

from __future__ import annotations

import os

# Before torch is imported anywhere: two contending multi-threaded torch processes run up to 50x slower on a
# 2-core machine (see ../shared/reference/cpu-stack.md, "Threads").
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from tests._data import REPO_ROOT, require_data, shared_data_dir  # noqa: E402

# Generated TextWorld games and model caches are derived data: share them between tests (and CI steps) in the
# checkout's ignored .cache/ rather than in the user's home.
os.environ.setdefault("SPO3_CACHE", str(REPO_ROOT / ".cache" / "spo3"))

# "ci": fixed seed and example count, so a property test gives the same verdict on every run.
settings.register_profile(
    "ci", derandomize=True, max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


@pytest.fixture(scope="session")
def alfworld_data_dir(shared_data: Path) -> Path:
    """An ALFWorld data root holding valid_unseen, installed (and sha256-verified) from the shared archives into
    the checkout's ignored .cache/alfworld."""
    from spo3.envs.alfworld.data import install_alfworld

    source = require_data(
        shared_data / "alfworld",
        "ALFWorld game archives (alfworld_json_2.1.1_tw-pddl_<split>.tar.xz + SHA256SUMS.members)",
        "See ../shared/data/alfworld/PROVENANCE.md, or point SPO3_SHARED_DATA at a directory holding alfworld/.",
    )
    target = REPO_ROOT / ".cache" / "alfworld"
    install_alfworld(source, target, splits=["valid_unseen"])
    return target
