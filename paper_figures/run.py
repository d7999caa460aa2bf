"""Train the runs of the paper-claims experiments (reusing a run only if its full config matches) and export
their per-iteration logs.

    python -m paper_figures.run                                   # every experiment, full profile
    python -m paper_figures.run methods pools --jobs 2 --launcher /work/bin/heavy
    python -m paper_figures.run --profile small                   # smoke size, under runs/paper_figures/small/

Runs live under ``runs/paper_figures/<profile>/<config hash>/`` (git-ignored). A run directory is reused only if
its recorded ``config.yaml`` hashes to the requested config; an unfinished run with the same config is resumed
from its checkpoint; anything else there is discarded and retrained. Each run is a separate ``spo3 train``
process (``--jobs`` at a time, each prefixed by ``--launcher``). Then, for every experiment, the logs of its
finished runs go to ``<data>/<experiment>.jsonl.gz``: one line per run with the experiment, variant, seed,
config, config hash, command, git commit and every iteration record (full profile: ``paper_figures/data/``,
committed; small profile: ``runs/paper_figures/small/data/``). ``make_figures`` draws everything from those files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import yaml

from paper_figures.experiments import EXPERIMENTS, REPO, Experiment, profile_overrides, seeds
from spo3.config import TrainConfig, load_config
from spo3.config.settings import LogConfig
from spo3.config.loading import to_dict
from spo3.experiments.compare import Variant
from spo3.metrics import read_metrics

RUNS = REPO / "runs" / "paper_figures"
DATA = Path(__file__).resolve().parent / "data"
LOG_ONLY = ("output_dir", "run_name", "progress", "checkpoint_every", "keep_checkpoints", "tensorboard", "wandb", "expansions")
"""Fields of ``log`` that do not change what a run computes; left out of the config hash."""


def config_hash(cfg: TrainConfig) -> str:
    """sha256 of the canonical JSON of every config field except where and how logs are written."""
    data = to_dict(cfg)
    data["log"] = {k: v for k, v in data["log"].items() if k not in LOG_ONLY}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Run:
    experiment: str
    variant: Variant
    seed: int
    base: Path
    overrides: tuple[str, ...]
    """Everything after the base YAML, in order: profile, variant, algorithm and seed."""

    @property
    def config(self) -> TrainConfig:
        return load_config(self.base, self.overrides)

    @property
    def hash(self) -> str:
        return config_hash(self.config)

    def directory(self, profile: str) -> Path:
        return RUNS / profile / self.hash[:16]

    def command(self, profile: str, resume: bool = False) -> list[str]:
        run_dir = self.directory(profile)
        if resume:
            return [sys.executable, "-m", "spo3.cli", "train", str(run_dir), "--resume"]
        trace = ["log.expansions=true"] if "expansions" in {f.name for f in fields(LogConfig)} else []
        return [
            sys.executable, "-m", "spo3.cli", "train", str(self.base.relative_to(REPO)), *self.overrides,
            f"log.output_dir={run_dir.parent.relative_to(REPO)}", f"log.run_name={run_dir.name}", "log.progress=false",
            *trace,
        ]


def experiment_runs(name: str, profile: str) -> list[Run]:
    """The runs of one experiment, seed-major (so a partial sweep still has whole seeds of every variant)."""
    exp: Experiment = EXPERIMENTS[name]
    common = profile_overrides(exp, profile)
    return [
        Run(name, v, seed, exp.base, common + v.overrides + (f"algo.name={v.algorithm}", f"seed={seed}"))
        for seed in seeds(exp, profile) for v in exp.variants
    ]


def status(run: Run, profile: str) -> str:
    """``done`` (finished, same config), ``resume`` (unfinished, same config) or ``new``."""
    run_dir = run.directory(profile)
    if not (run_dir / "config.yaml").exists():
        return "new"
    if config_hash(load_config(run_dir / "config.yaml")) != run.hash:
        return "new"
    if (run_dir / "summary.json").exists():
        return "done"
    return "resume" if any((run_dir / "checkpoints").glob("*")) else "new"


def queue(names: Sequence[str], profile: str) -> list[Run]:
    """The distinct runs of ``names`` (experiments share identical runs) in training order: every seed of the first
    experiment, then the others seed-major, so that a sweep cut short still has whole seeds of every variant."""
    unique: dict[str, tuple[tuple[int, int], Run]] = {}
    for rank, name in enumerate(names):
        for run in experiment_runs(name, profile):
            unique.setdefault(run.hash, ((0 if rank == 0 else 1 + run.seed, rank), run))
    return [run for _, run in sorted(unique.values(), key=lambda kv: kv[0])]


def data_dir(profile: str) -> Path:
    """Where exported logs go: committed for the full profile, git-ignored for any other."""
    return DATA if profile == "full" else RUNS / profile / "data"


def train_run(run: Run, profile: str, launcher: Sequence[str]) -> bool:
    state = status(run, profile)
    run_dir = run.directory(profile)
    if state == "done":
        return True
    if state == "new" and run_dir.exists():
        print(f"{run_dir}: holds another or an unusable run; discarding it", flush=True)
        shutil.rmtree(run_dir)
    cmd = [*launcher, *run.command(profile, resume=state == "resume")]
    print(f"[{run.experiment}] {run.variant.label} seed {run.seed}: {shlex.join(cmd)}", flush=True)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    log = run_dir.parent / f"{run_dir.name}.log"
    (run_dir.parent / f"{run_dir.name}.commit").write_text(git_commit())  # the code the run is trained with
    with log.open("w") as f:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        rc = subprocess.call(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
    if rc != 0:
        print(f"[{run.experiment}] {run.variant.label} seed {run.seed} FAILED (exit {rc}); see {log}", flush=True)
    return rc == 0


def git_commit() -> str:
    """HEAD, with "+dirty" when spo3/, configs/ or paper_figures/ (other than its exported logs) have uncommitted
    changes."""
    try:
        head = subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=REPO, text=True).strip()
        dirty = subprocess.check_output(
            ["git", "status", "--porcelain", "spo3", "configs", "paper_figures", ":!paper_figures/data"], cwd=REPO, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty.strip() else "")


def export(name: str, profile: str, data_dir: Path) -> Path:
    """Write the logs of the experiment's finished runs to ``<data_dir>/<name>.jsonl.gz``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{name}.jsonl.gz"
    lines = []
    for run in experiment_runs(name, profile):
        if status(run, profile) != "done":
            print(f"[{name}] {run.variant.label} seed {run.seed}: not finished, left out of {path.name}")
            continue
        run_dir = run.directory(profile)
        commit_file = run_dir.parent / f"{run_dir.name}.commit"
        commit = commit_file.read_text().strip() if commit_file.exists() else "unknown"
        extra = {}
        traced = run.seed == 0 and run.variant.label in EXPERIMENTS[name].trace  # the trace is large: one run's
        if traced and (run_dir / "expansions.jsonl").exists():
            extra["expansions"] = [json.loads(x) for x in (run_dir / "expansions.jsonl").read_text().splitlines() if x.strip()]
        lines.append(json.dumps({
            "experiment": name, "variant": run.variant.label, "algorithm": run.variant.algorithm, "seed": run.seed,
            "profile": profile, "config_hash": run.hash, "command": shlex.join(["python", *run.command(profile)[1:]]),
            "git_commit": commit, "config": yaml.safe_load((run_dir / "config.yaml").read_text()),
            "records": read_metrics(run_dir), **extra,
        }, sort_keys=True))
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(EXPERIMENTS), help=f"experiments (default all: {list(EXPERIMENTS)})")
    ap.add_argument("--profile", choices=("full", "small"), default="full")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at once (separate processes)")
    ap.add_argument("--launcher", default="", help="command prefix of every run, e.g. /work/bin/heavy")
    ap.add_argument("--shard", default="0/1", help="i/n: train only every n-th run of the queue starting at i (run n of "
                    "these side by side, e.g. each holding one CPU slot), then export")
    ap.add_argument("--export-only", action="store_true", help="only export the logs of finished runs")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.names) - set(EXPERIMENTS))
    if unknown:
        raise SystemExit(f"unknown experiment(s) {unknown}; known: {list(EXPERIMENTS)}")
    if not args.export_only:
        index, count = (int(x) for x in args.shard.split("/"))
        mine = queue(args.names, args.profile)[index::count]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(lambda r: train_run(r, args.profile, shlex.split(args.launcher)), mine))
    for name in args.names:
        print(f"exported {export(name, args.profile, data_dir(args.profile))}")


if __name__ == "__main__":
    main()
