"""What every benchmark shares: the machine's load, goals printed beside ratios measured in the same run, and a
small JSON result.

A benchmark creates a :class:`Bench` (from its parsed arguments, see :func:`add_arguments`), prints what it
measures, declares each goal with :meth:`Bench.goal` (a figure measured in this run against its target, usually a
ratio of two timings taken side by side) and calls :meth:`Bench.finish`. The JSON result goes to
``benchmarks/results/<name>.json`` for a full run (``--json PATH`` elsewhere; smoke runs write none by default).
``python benchmarks/report.py`` turns the committed results into the performance table of README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
FORMAT_VERSION = 1

cpu_time = time.process_time
"""The clock of the side-by-side timings: CPU seconds of this (single-threaded) process. On a shared machine other
processes stretch wall time unevenly between the two sides of a ratio; they distort CPU time much less."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--smoke`` (tiny sizes, for the test suite) and ``--json PATH`` (where to write the result)."""
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds), for the test suite")
    parser.add_argument("--json", type=Path, default=None,
                        help="write the JSON result here (default: benchmarks/results/<name>.json, none with --smoke)")


def alfworld_data(splits: Sequence[str], smoke: bool) -> Path | int:
    """The ALFWorld data root with ``splits`` installed into ``.cache/alfworld`` from ``$SPO3_SHARED_DATA/alfworld``
    (default ``../shared/data/alfworld`` beside the checkout); without those archives, after printing why, the
    benchmark's exit status: 0 for a smoke run outside CI (the test suite runs without the data too), else 1."""
    source = Path(os.environ.get("SPO3_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")) / "alfworld"
    if not source.is_dir():
        print(f"ALFWorld archives not found at {source}: set SPO3_SHARED_DATA (see ../shared/data/alfworld/"
              "PROVENANCE.md). Nothing measured.")
        return 0 if smoke and os.environ.get("CI", "").lower() not in ("1", "true", "yes") else 1
    from spo3.envs.alfworld.data import install_alfworld  # spo3 only where a benchmark needs it

    data_dir = REPO_ROOT / ".cache" / "alfworld"
    install_alfworld(source, data_dir, splits=list(splits))
    return data_dir


def machine_load() -> dict[str, Any]:
    """1/5/15-minute load averages and the CPU count, to read every timing against."""
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count()}


@dataclass
class Goal:
    label: str
    value: float
    target: float
    unit: str
    detail: str
    met: bool


@dataclass
class Bench:
    """One benchmark run: prints as it goes and records goals and plain measurements for the JSON result."""

    name: str
    smoke: bool = False
    json_path: Path | None = None
    goals: list[Goal] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    load_start: dict[str, Any] = field(default_factory=machine_load)

    @classmethod
    def from_args(cls, name: str, args: argparse.Namespace) -> "Bench":
        json_path = args.json if args.json is not None else (None if args.smoke else RESULTS_DIR / f"{name}.json")
        bench = cls(name, smoke=args.smoke, json_path=json_path)
        load = bench.load_start
        print(f"{name}{' (smoke)' if args.smoke else ''}: load average {load['loadavg'][0]:.2f} "
              f"(1 min) on {load['cpu_count']} CPUs, python {platform.python_version()}")
        return bench

    def measure(self, label: str, value: Any) -> None:
        """Record a figure without a goal (it is printed by the benchmark itself)."""
        self.measurements[label] = value

    def goal(self, label: str, value: float, target: float, unit: str = "x", detail: str = "") -> bool:
        """Print and record a goal: ``value`` (measured in this run) against ``target`` (met when >=)."""
        met = bool(value >= target)
        self.goals.append(Goal(label, float(value), float(target), unit, detail, met))
        print(f"GOAL {label}: {fmt_number(value)}{unit}  (goal >= {fmt_number(target)}{unit}: {'met' if met else 'NOT met'})"
              + (f"  [{detail}]" if detail else ""))
        return met

    def finish(self) -> dict[str, Any]:
        """Print the load at the end, and write the JSON result (if it has a path)."""
        result = {
            "format": FORMAT_VERSION,
            "benchmark": self.name,
            "command": f"python benchmarks/{self.name}.py" + (" --smoke" if self.smoke else ""),
            "smoke": self.smoke,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "seconds": round(time.perf_counter() - self.started, 1),
            "machine": {
                "cpu_count": self.load_start["cpu_count"],
                "loadavg_start": self.load_start["loadavg"],
                "loadavg_end": machine_load()["loadavg"],
                "python": platform.python_version(),
                "platform": platform.platform(terse=True),
            },
            "goals": [asdict(goal) for goal in self.goals],
            "measurements": self.measurements,
        }
        end = result["machine"]["loadavg_end"]
        print(f"{self.name}: {len(self.goals)} goal(s), {sum(g.met for g in self.goals)} met, in "
              f"{result['seconds']:.0f} s; load average {end[0]:.2f} at the end")
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            self.json_path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            print(f"result written to {self.json_path}")
        return result


def fmt_number(x: float) -> str:
    """Short text for a figure; truncated, never rounded up, so that a figure below its goal never prints as it."""
    if x == 0 or 0.01 <= abs(x) < 1e5:
        return f"{math.floor(x * 100) / 100:,.2f}".rstrip("0").rstrip(".") if abs(x) < 100 else f"{math.floor(x):,}"
    exponent = math.floor(math.log10(abs(x)))
    mantissa = math.floor(x / 10**exponent * 10) / 10
    return f"{mantissa:g}e{exponent}"


if __name__ == "__main__":  # pragma: no cover - a library for the bench_*.py scripts
    sys.exit("benchmarks/common.py is imported by the bench_*.py scripts; run one of them")
