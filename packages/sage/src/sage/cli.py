"""Command line of `sage`: train (DPO with SAGE selection or an ablation), eval (math-format tasks), replicate.

Every subcommand takes `key=value` overrides on top of its config, writes the resolved config beside its outputs,
and turns configuration and data errors into a one-line message and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sage",
        description="SAGE: stability-aware data selection for DPO on math reasoning "
                    "(coarse frontier curriculum + margin-stability pair scoring).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="DPO on self-generated verified pairs with the configured selection rule")
    train.add_argument("--config", type=Path, help="YAML config (see packages/sage/configs)")
    train.add_argument("--out", type=Path, help="output folder (default: the config's out_dir)")
    train.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.method=uniform")
    ev = sub.add_parser("eval", help="greedy accuracy and boxed-answer rate on GSM8K / MATH-500 / AIME-format tasks")
    ev.add_argument("--config", type=Path, help="YAML config (model.path names the model; empty = tiny warm start)")
    ev.add_argument("--out", type=Path, help="output folder (default: the config's out_dir + '-eval')")
    ev.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. eval.n_per_task=20")
    rep = sub.add_parser("replicate", help="CPU-scale replication: uniform vs curriculum vs scoring vs sage")
    rep.add_argument("--quick", action="store_true", help="one seed, small pool, 60 steps (a few minutes)")
    rep.add_argument("--out", type=Path, default=Path("runs/sage-replicate"), help="output folder")
    rep.add_argument("--seed", type=int, default=0, help="first seed")
    rep.add_argument("--seeds", type=int, default=None, help="number of seeds (default 1 with --quick, else 3)")
    rep.add_argument("--methods", default="uniform,curriculum,scoring,sage",
                     help="comma-separated rows to run (uniform is required: the paired baseline)")
    rep.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. data.eval_split=dev")
    for p in (train, ev, rep):
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.dryrun import cli_hook  # `train --config FILE --dry-run`: size the run, run nothing

    argv = sys.argv[1:] if argv is None else argv
    code = cli_hook("sage", argv, "sage.config:SageConfig", "sage.dryrun:specs", verbs=("train",))
    if code is not None:
        return code
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from shared.config import ConfigError, load_config

    from sage.config import SageConfig
    from sage.data import DataError
    from sage.pairs import FrontierEmptyError

    try:
        if args.command == "replicate":
            from sage.replicate import replicate

            replicate(args.quick, args.out, args.seed, args.seeds, args.overrides, progress=not args.no_progress,
                      methods=[m.strip() for m in args.methods.split(",") if m.strip()])
            return 0
        cfg = load_config(SageConfig, args.config, args.overrides)
        from sage.config import method_flags

        method_flags(cfg.train.method)
        if args.command == "train":
            from sage.run import train_command

            train_command(cfg, args.out or Path(cfg.out_dir), progress=not args.no_progress)
        else:
            from sage.run import eval_command

            eval_command(cfg, args.out or Path(cfg.out_dir + "-eval"))
        return 0
    except (ConfigError, DataError, ValueError) as err:
        print(f"sage {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FrontierEmptyError as err:
        print(f"sage {args.command}: stopped: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
