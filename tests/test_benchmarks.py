"""Every benchmark runs in its smoke mode (tiny sizes): the scripts stay runnable and write their JSON result with
the machine load. Speed itself is reported by the benchmarks, never asserted in tests. README.md's performance
table is the one benchmarks/report.py generates from the committed results."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
BENCHMARKS = sorted(BENCH_DIR.glob("bench_*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.stem for p in BENCHMARKS])
def test_benchmark_smoke(script, tmp_path):
    # The checkout under test first on the path (not whatever spo3 the interpreter has installed).
    path = os.pathsep.join(filter(None, [str(BENCH_DIR.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    result = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(script), "--smoke", "--json", str(result)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip(), "a benchmark must print what it measured"
    if "Nothing measured" in proc.stdout:  # its data set is missing (allowed outside CI)
        return
    record = json.loads(result.read_text())
    assert record["benchmark"] == script.stem and record["smoke"] is True
    assert len(record["machine"]["loadavg_start"]) == 3 and record["machine"]["cpu_count"] >= 1
    assert "load average" in proc.stdout


def test_committed_results_are_the_readme_table():
    results = sorted((BENCH_DIR / "results").glob("*.json"))
    assert results, "make bench writes benchmarks/results/*.json; commit them with README.md"
    for path in results:
        record = json.loads(path.read_text())
        assert (BENCH_DIR / f"{record['benchmark']}.py").is_file() and not record["smoke"], path
        assert record["goals"] and all({"label", "value", "target", "met"} <= set(goal) for goal in record["goals"])
    proc = subprocess.run([sys.executable, str(BENCH_DIR / "report.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_soak_smoke(tmp_path):
    script = BENCHMARKS[0].parent / "soak.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(script.parents[1])}
    result = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(script), "--smoke", "--json", str(result)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in ("load average", "RSS:", "last/first tenth", "state store:", "environment guard:"):
        assert line in proc.stdout, proc.stdout
    record = json.loads(result.read_text())
    assert record["benchmark"] == "soak" and record["smoke"] is True and len(record["goals"]) == 3
    assert record["measurements"]["tenths"]["last"]["env_steps_per_it"] > 0
