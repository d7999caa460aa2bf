"""The ``spo3`` command (argument parsing only; the work happens in the library).

    spo3 train CONFIG [key=value ...]                 train (configs/*.yaml; overrides like algo.name=grpo)
    spo3 train RUN --resume [auto|iter_NNNNNN]        continue a run (newest intact checkpoint; --allow-config-change)
    torchrun --nproc_per_node=N -m spo3.cli train ... the same on N processes (docs/scaling.md)
    spo3 train --help-config                          every config field with its default and meaning
    spo3 eval RUN_OR_CHECKPOINT [--split valid_unseen] evaluate a run's newest checkpoint (or a given one)
    spo3 states RUN [--top N] [--sort score|visits|n] [--grep TEXT] [--csv FILE]   what the state store learned
    spo3 data alfworld --from DIR [--to DIR]          install the ALFWorld game archives, verified
    spo3 quickstart [--profile small|default]         the main job: 3SPO vs GRPO on a generated TextWorld game

Errors in the user's setup (missing data, GPU, model or package; a bad config value) print one line that names
the fix; add --debug for the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


def _cmd_train(args: argparse.Namespace) -> int:
    from spo3.config import TrainConfig, load_config
    from spo3.config.loading import describe
    from spo3.experiments.inspection import format_run_summary
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
    print(format_run_summary(run))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from spo3.experiments.inspection import format_run_summary
    from spo3.training.evaluate import evaluate_run

    r = evaluate_run(
        args.run, args.split, args.episodes, temperature=args.temperature, seed=args.seed, overrides=args.overrides,
        out=args.out,
    )
    label = f" catalogue={r['catalogue']}" if "catalogue" in r else ""
    print(f"{r['checkpoint']} on {r['env']}/{r['split']}{label}: {r['episodes']} episodes, temperature {r['temperature']}")
    print(f"success {r['success_rate']:.3f}  (95% CI {r['ci_low']:.3f}-{r['ci_high']:.3f}, "
          f"{r['successes']}/{r['episodes']})  mean length {r['mean_length']:.1f}, "
          f"environment steps {sum(e['length'] for e in r['per_episode'])}")
    if r["mean_score"] is not None:
        print(f"mean task score {r['mean_score']:.3f}")
    for task_type, row in r["per_type"].items():
        print(f"  {task_type:<34} {row['success_rate']:.3f}  ({row['successes']}/{row['episodes']}, "
              f"CI {row['ci_low']:.2f}-{row['ci_high']:.2f})")
    run_dir = Path(r["checkpoint"]).parent.parent
    if (run_dir / "metrics.jsonl").exists():
        print("training " + format_run_summary(run_dir))
    print(f"written: {r['path']}")
    return 0


def _cmd_states(args: argparse.Namespace) -> int:
    from spo3.experiments.inspection import (
        format_state_table, load_store, n_histogram, state_table, table_to_csv,
    )

    store = load_store(args.run)
    rows = state_table(store, sort=args.sort, grep=args.grep)
    print(f"{args.run}: {len(store)} states, t = {store.t}, alpha {store.params.alpha}, xi {store.params.xi}, "
          f"zeta {store.params.zeta}, G_max {store.params.g_max}" + (f"; {len(rows)} match {args.grep!r}" if args.grep else ""))
    print(format_state_table(rows[: args.top] if args.top else rows))
    hist = n_histogram(store)
    print("n over all states (0 = truncated): " + ", ".join(f"n={n}: {c}" for n, c in hist.items()))
    if args.csv:
        print(f"written: {table_to_csv(rows, args.csv)}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from spo3.envs.alfworld.data import format_install_report, install_alfworld

    report = install_alfworld(args.source, args.to, args.splits, force=args.force, allow_unpinned=args.allow_unpinned)
    print(format_install_report(report))
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from spo3.experiments.quickstart import run_quickstart

    run_quickstart(profile=args.profile, output_dir=args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spo3", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    debug = argparse.ArgumentParser(add_help=False)  # --debug also after the subcommand (SUPPRESS: keep the top's)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", parents=[debug], help="train GRPO, GiGPO or 3SPO")
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

    p = sub.add_parser("eval", parents=[debug], help="evaluate a run or checkpoint")
    p.add_argument("run", help="run directory (newest checkpoint) or checkpoint directory")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. env.alfworld.data_dir=...")
    p.add_argument("--split", help="split to evaluate (default: the run's env.eval_split)")
    p.add_argument("--episodes", type=int, help="episodes (default: one per task of the split, or of its stratified subset with the run's eval.per_type)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the run's eval.temperature)")
    p.add_argument("--seed", type=int, default=0, help="evaluation sampling seed")
    p.add_argument("--out", help="JSON report path (default: inside the run directory)")
    p.set_defaults(fn=_cmd_eval)

    p = sub.add_parser("states", parents=[debug], help="per-state table of a run's state store (N, SR, S, n, truncation) and n histogram")
    p.add_argument("run", help="run directory (newest checkpoint), checkpoint directory or state_store.sqlite")
    p.add_argument("--top", type=int, default=20, help="rows to print (0: all; default 20)")
    p.add_argument("--sort", default="score", choices=["score", "visits", "n"], help="descending order (default score)")
    p.add_argument("--grep", help="only states whose observation text contains TEXT (case-insensitive)")
    p.add_argument("--csv", help="also write every matching row to this CSV file")
    p.set_defaults(fn=_cmd_states)

    p = sub.add_parser("data", parents=[debug], help="install data sets")
    data = p.add_subparsers(dest="dataset", required=True)
    a = data.add_parser("alfworld", parents=[debug], help="install ALFWorld split archives (alfworld_json_2.1.1_tw-pddl_<split>.tar.xz)")
    a.add_argument("--from", dest="source", required=True, help="directory with the archives and SHA256SUMS.members")
    a.add_argument("--to", help="data directory (default: $ALFWORLD_DATA or ~/.cache/alfworld)")
    a.add_argument("--splits", nargs="*", help="splits to install (default: every archive found)")
    a.add_argument("--force", action="store_true", help="extract and verify again")
    a.add_argument("--allow-unpinned", action="store_true",
                   help="trust a SHA256SUMS.members that spo3 does not know (default: refuse it)")
    a.set_defaults(fn=_cmd_data)

    p = sub.add_parser("quickstart", parents=[debug], help="the main job: 3SPO vs GRPO with a tabular policy on a TextWorld game")
    p.add_argument("--profile", default="default", choices=["small", "default", "full"], help="size of the job")
    p.add_argument("--out", default="runs/quickstart", help="output directory")
    p.set_defaults(fn=_cmd_quickstart)
    return parser


_USER_ERRORS = {
    "spo3.envs.alfworld.data": ("AlfworldDataError",),
    "spo3.envs.guard": ("EnvUnavailable",),
    "spo3.config.loading": ("ConfigError", "SetupError"),
    "spo3.state.store": ("StateStoreError",),
    "spo3.training.checkpoint": ("CheckpointError",),
    "spo3.training.run_dir": ("ResumeError", "RunLockedError"),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors with a cause outside spo3's code (setup, config, files), reported as one line naming the fix with exit
    status 2; anything else is a bug and keeps its traceback. Only from modules already imported: nothing else can
    have raised them, and importing them here would load torch for every command."""
    found: list[type[BaseException]] = [FileNotFoundError, FileExistsError, ModuleNotFoundError]
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
        if not isinstance(exc, _user_errors()) or args.debug:
            raise
        print(f"spo3 {args.command}: {one_line(exc)}  (--debug shows the traceback)", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    """The error's message on one line, with the user's home directory shown as ``~``."""
    text = " ".join(str(exc).split())
    home = os.path.expanduser("~")
    return text.replace(home + os.sep, "~" + os.sep) if home not in ("", os.sep) else text


if __name__ == "__main__":
    sys.exit(main())
