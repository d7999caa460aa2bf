"""Every benchmark runs in its smoke mode (tiny sizes): the scripts stay runnable. Speed itself is reported by
the benchmarks, never asserted in tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_smoke(script):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip(), "a benchmark must print what it measured"


def test_soak_smoke():
    script = BENCHMARKS[0].parent / "soak.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(script.parents[1])}
    proc = subprocess.run([sys.executable, str(script), "--smoke"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in ("RSS:", "last/first tenth", "state store:", "environment guard:"):
        assert line in proc.stdout, proc.stdout
