"""The ``spo3`` command (argument parsing only; the work happens in the library).

    spo3 train CONFIG [key=value ...]                 train (configs/*.yaml; overrides like algo.name=grpo)
    spo3 train RUN --resume [auto|iter_NNNNNN]        continue a run (newest intact checkpoint; --allow-config-change)
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
    run = train(cfg, resume=args.resume or False, run_dir=run_dir, allow_config_change=args.allow_config_change)
    if os.environ.get("RANK", "0") != "0":  # one of several training processes: rank 0 reports
        return 0
    print(f"run directory: {run}\nmetrics: {run / 'metrics.jsonl'} (and metrics.csv)\ncheckpoints: {run / 'checkpoints'}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from spo3.training.builders import build_env, build_policy, env_corpus, task_list
    from spo3.training.checkpoint import latest_checkpoint, load_checkpoint
    from spo3.config import load_config
    from spo3.envs.guard import GuardedEnv
    from spo3.training.evaluate import evaluate

    target = Path(args.run)
    if (target / "manifest.json").exists():
        checkpoint, run_dir = target, target.parent.parent
    else:
        checkpoint, run_dir = latest_checkpoint(target), target
        if checkpoint is None:
            raise SystemExit(f"spo3 eval: no checkpoint under {target / 'checkpoints'}")
    cfg = load_config(run_dir / "config.yaml", args.overrides)
    env = GuardedEnv(lambda: build_env(cfg.env, cfg.seed), cfg.env.step_timeout_s)
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
    label = f" catalogue={env.inner.catalogue}" if hasattr(env.inner, "catalogue") else ""
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
    if hasattr(env.inner, "catalogue"):
        record["catalogue"] = env.inner.catalogue
    out.write_text(json.dumps(record, indent=1))
    print(f"written: {out}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from spo3.envs.alfworld_data import format_install_report, install_alfworld

    report = install_alfworld(args.source, args.to, args.splits, force=args.force, allow_unpinned=args.allow_unpinned)
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
    p.add_argument(
        "--resume", nargs="?", const="auto", metavar="auto|CHECKPOINT",
        help="continue the run: from its newest intact checkpoint (auto, the default), or from the named one "
        "(iter_000010); a run without any checkpoint starts from the beginning",
    )
    p.add_argument(
        "--allow-config-change", nargs="+", default=[], metavar="FIELD",
        help="with --resume: fields of the run's fingerprint (algo.name, algo.alpha, seed...) that may differ from "
        "the checkpoint's; the change is logged and takes effect",
    )
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
    a.add_argument("--allow-unpinned", action="store_true",
                   help="trust a SHA256SUMS.members that spo3 does not know (default: refuse it)")
    a.set_defaults(fn=_cmd_data)

    p = sub.add_parser("quickstart", help="the main job: 3SPO vs GRPO with a tabular policy on a TextWorld game")
    p.add_argument("--profile", default="default", choices=["small", "default", "full"], help="size of the job")
    p.add_argument("--out", default="runs/quickstart", help="output directory")
    p.set_defaults(fn=_cmd_quickstart)
    return parser


_USER_ERRORS = {
    "spo3.envs.alfworld_data": ("AlfworldDataError",),
    "spo3.config.loading": ("ConfigError",),
    "spo3.training.checkpoint": ("CheckpointError",),
    "spo3.training.run_dir": ("ResumeError", "RunLockedError"),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors reported as one line with exit status 2 (only from modules already imported: nothing else can have
    raised them, and importing them here would load torch for every command)."""
    found: list[type[BaseException]] = [FileNotFoundError, FileExistsError]
    for module, names in _USER_ERRORS.items():
        if module in sys.modules:
            found += [getattr(sys.modules[module], name) for name in names]
    return tuple(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "train":  # key=value overrides swallowed by --resume / --allow-config-change
        if args.resume is not None and "=" in args.resume:
            args.overrides.append(args.resume)
            args.resume = "auto"
        if args.config is not None and "=" in args.config:  # spo3 train --resume RUN key=value: not a config
            args.overrides.insert(0, args.config)
            args.config = None
        if args.config is None and args.resume not in (None, "auto"):  # spo3 train --resume RUN
            args.config, args.resume = args.resume, "auto"
        args.overrides += [f for f in args.allow_config_change if "=" in f]
        args.allow_config_change = [f for f in args.allow_config_change if "=" not in f]
    # key=value overrides may also follow options (spo3 train RUN --resume iterations=40)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.fn(args)
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"spo3 {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
