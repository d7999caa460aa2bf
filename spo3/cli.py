"""The ``spo3`` command (argument parsing only; the work happens in the library).

    spo3 train CONFIG [key=value ...] [--resume]      train (configs/*.yaml; overrides like algo.name=grpo)
    torchrun --nproc_per_node=N -m spo3.cli train ... the same on N processes (docs/scaling.md)
    spo3 train --help-config                          every config field with its default and meaning
    spo3 eval RUN_OR_CHECKPOINT [--split valid_unseen] evaluate a run's newest checkpoint (or a given one)
    spo3 data alfworld --from DIR [--to DIR]          install the ALFWorld game archives, verified
    spo3 quickstart [--profile small|default]         the main job: 3SPO vs GRPO on a generated TextWorld game
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


def _cmd_train(args: argparse.Namespace) -> int:
    from spo3.config import TrainConfig, load_config
    from spo3.config.loading import describe
    from spo3.training.loop import train

    if args.help_config:
        print("Fields of a training config (YAML keys; override on the command line as key.sub=value):\n")
        print("\n".join(describe(TrainConfig)))
        return 0
    if args.config is None:
        raise SystemExit("spo3 train: a CONFIG file (or, with --resume, a run directory) is required")
    source = Path(args.config)
    if source.is_dir():  # a run directory: its own config, for --resume
        source = source / "config.yaml"
    cfg = load_config(source, args.overrides)
    run_dir = Path(args.config) if Path(args.config).is_dir() else None
    run = train(cfg, resume=args.resume, run_dir=run_dir)
    if os.environ.get("RANK", "0") != "0":  # one of several training processes: rank 0 reports
        return 0
    print(f"run directory: {run}\nmetrics: {run / 'metrics.jsonl'} (and metrics.csv)\ncheckpoints: {run / 'checkpoints'}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from spo3.training.builders import build_env, build_policy, env_corpus, task_list
    from spo3.training.checkpoint import latest_checkpoint, load_checkpoint
    from spo3.config import load_config
    from spo3.training.evaluate import evaluate

    target = Path(args.run)
    if (target / "manifest.json").exists():
        checkpoint, run_dir = target, target.parent.parent
    else:
        checkpoint, run_dir = latest_checkpoint(target), target
        if checkpoint is None:
            raise SystemExit(f"spo3 eval: no checkpoint under {target / 'checkpoints'}")
    cfg = load_config(run_dir / "config.yaml", args.overrides)
    env = build_env(cfg.env, cfg.seed)
    split = args.split or cfg.env.eval_split
    tasks = task_list(env, cfg.env, split, cfg.seed)
    corpus = env_corpus(env, task_list(env, cfg.env, cfg.env.train_split, cfg.seed)) if cfg.policy.kind == "hf" else ()
    policy = build_policy(cfg.policy, cfg.seed, corpus)
    load_checkpoint(checkpoint, policy, None)
    episodes = args.episodes or len(tasks)
    temperature = cfg.eval.temperature if args.temperature is None else args.temperature
    report = evaluate(
        policy, env, tasks, episodes, temperature=temperature, seed=args.seed, scope=cfg.algo.state_scope,
        history_length=cfg.env.history_length,
    )
    label = f" catalogue={env.catalogue}" if hasattr(env, "catalogue") else ""
    print(f"{checkpoint} on {cfg.env.name}/{split}{label}: {episodes} episodes, temperature {temperature}")
    print(f"success {report.success_rate:.3f}  (95% CI {report.ci_low:.3f}-{report.ci_high:.3f}, "
          f"{report.successes}/{report.episodes})  mean length {report.mean_length:.1f}")
    if report.mean_score is not None:
        print(f"mean task score {report.mean_score:.3f}")
    for task_type, row in report.per_type.items():
        print(f"  {task_type:<34} {row['success_rate']:.3f}  ({row['successes']}/{row['episodes']}, "
              f"CI {row['ci_low']:.2f}-{row['ci_high']:.2f})")
    out = Path(args.out) if args.out else run_dir / f"eval-{split}-{checkpoint.name}.json"
    record = {"checkpoint": str(checkpoint), "split": split, "temperature": temperature, "seed": args.seed, **report.to_dict(True)}
    if hasattr(env, "catalogue"):
        record["catalogue"] = env.catalogue
    out.write_text(json.dumps(record, indent=1))
    print(f"written: {out}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from spo3.envs.alfworld_data import format_install_report, install_alfworld

    report = install_alfworld(args.source, args.to, args.splits, force=args.force)
    print(format_install_report(report))
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from spo3.experiments.quickstart import run_quickstart

    run_quickstart(profile=args.profile, output_dir=args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spo3", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train GRPO, GiGPO or 3SPO")
    p.add_argument("config", nargs="?", help="YAML config (configs/*.yaml), or a run directory with --resume")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. algo.name=grpo seed=3")
    p.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    p.add_argument("--help-config", action="store_true", help="list every config field and exit")
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a run or checkpoint")
    p.add_argument("run", help="run directory (newest checkpoint) or checkpoint directory")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. env.alfworld.data_dir=...")
    p.add_argument("--split", help="split to evaluate (default: the run's env.eval_split)")
    p.add_argument("--episodes", type=int, help="episodes (default: one per task of the split)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the run's eval.temperature)")
    p.add_argument("--seed", type=int, default=0, help="evaluation sampling seed")
    p.add_argument("--out", help="JSON report path (default: inside the run directory)")
    p.set_defaults(fn=_cmd_eval)

    p = sub.add_parser("data", help="install data sets")
    data = p.add_subparsers(dest="dataset", required=True)
    a = data.add_parser("alfworld", help="install ALFWorld split archives (alfworld_json_2.1.1_tw-pddl_<split>.tar.xz)")
    a.add_argument("--from", dest="source", required=True, help="directory with the archives and SHA256SUMS.members")
    a.add_argument("--to", help="data directory (default: $ALFWORLD_DATA or ~/.cache/alfworld)")
    a.add_argument("--splits", nargs="*", help="splits to install (default: every archive found)")
    a.add_argument("--force", action="store_true", help="extract and verify again")
    a.set_defaults(fn=_cmd_data)

    p = sub.add_parser("quickstart", help="the main job: 3SPO vs GRPO with a tabular policy on a TextWorld game")
    p.add_argument("--profile", default="default", choices=["small", "default", "full"], help="size of the job")
    p.add_argument("--out", default="runs/quickstart", help="output directory")
    p.set_defaults(fn=_cmd_quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow options (spo3 train RUN --resume iterations=40)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from spo3.config.loading import ConfigError

    try:
        return args.fn(args)
    except (ConfigError, FileNotFoundError, FileExistsError) as exc:
        print(f"spo3 {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
