"""benchmarks/gpu_check.py stays runnable: its --smoke mode runs every measurement on the CPU at tiny sizes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_smoke_writes_every_measurement(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert set(report["generation"]["hf"]) == {"2", "4"}
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 for r in report["generation"]["hf"].values())
    assert report["training_step"]["optimizer_steps"] == 1
    assert isinstance(report["spo3_iteration"], dict), report["spo3_iteration"]  # a string says what failed
    assert report["spo3_iteration"]["env_steps"] > 0
    assert report["all_reduce"]["correct"]
    assert "| PPO update" in proc.stdout
