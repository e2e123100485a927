"""Command line of `sage`: train (DPO with SAGE selection or an ablation), eval (math-format tasks), replicate.

Built on the workspace's parent CLI (`shared.cli`): every verb takes `--config FILE`, `--out DIR`, `--seed N`,
`--print-config`, `--no-progress`, `--debug` and `key=value` overrides anywhere on the line; the config, the problem
file and the model path are checked before the warm start, and every known error is one line with exit status 2.
A curriculum whose frontier empties under `curriculum.on_empty_frontier=stop` ends with exit status 3.
"""

from __future__ import annotations

import argparse
import logging
import sys

from shared.cli import App, CLIError, Run, Verb
from shared.config import config_file_overrides
from shared.dryrun import verb_dry_run

from sage import __version__


def _config_cls():
    from sage.config import SageConfig

    return SageConfig


def _check_data(run: Run) -> None:
    """A problem file (data.source=jsonl, or a replacement slice in data.path) is read and checked line by line."""
    from sage.data import _check_split_settings, load_problem_set

    data = run.cfg.data
    if data.source == "jsonl" and not data.path:
        raise CLIError("data.source=jsonl needs data.path (a JSONL file with question and answer fields)")
    if data.path:
        load_problem_set(data)
    else:
        _check_split_settings(data)


def _check_eval(run: Run) -> None:
    from sage.data import load_eval_problems

    if run.cfg.data.path or run.cfg.data.source == "jsonl":
        load_eval_problems(run.cfg.data, run.cfg.eval.n_per_task)


def _methods(run: Run) -> list[str]:
    return [m.strip() for m in run.args.methods.split(",") if m.strip()]


def _check_replicate(run: Run) -> None:
    from sage.replicate import check_methods

    check_methods(_methods(run))
    if run.args.seeds is not None and run.args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {run.args.seeds}")
    _check_data(run)


def _stopped(fn):
    """Exit status 3 with one line when the curriculum stops on an empty frontier (a result, not an error)."""
    from sage.pairs import FrontierEmptyError

    def wrapped(run: Run) -> int:
        try:
            return fn(run)
        except FrontierEmptyError as err:
            print(f"{run.name}: stopped: {err}", file=sys.stderr)
            return 3

    return wrapped


def cmd_train(run: Run) -> int:
    import json

    from sage.run import train_command

    train_command(run.cfg, run.out, progress=run.progress)
    log = run.out / "train_log.jsonl"  # sage's per-step log, mirrored into the workspace's metrics.jsonl layout
    run.write_metrics([json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()],
                      prefix="train/")
    return 0


def cmd_eval(run: Run) -> int:
    from sage.run import eval_command

    eval_command(run.cfg, run.out)
    return 0


def cmd_replicate(run: Run) -> int:
    from sage.replicate import replicate

    # replicate() rebuilds the same config (presets + these overrides) and claims the folder itself
    replicate(run.args.quick, run.out, run.seed if run.seed is not None else 0, run.args.seeds,
              _file_overrides(run.args) + run.overrides, progress=run.progress, methods=_methods(run))
    return 0


def _file_overrides(args: argparse.Namespace) -> list[str]:
    return config_file_overrides(args.config) if args.config else []


def _presets(args: argparse.Namespace) -> list[str]:
    from sage.replicate import FULL, QUICK

    return [*(QUICK if args.quick else FULL), *_file_overrides(args)]


def _replicate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one seed, small pool, 60 steps (a few minutes)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds from --seed up (default 1 with --quick, "
                   "else 3)")
    p.add_argument("--methods", default="uniform,curriculum,scoring,sage",
                   help="comma-separated rows to run (uniform is required: the paired baseline)")


def _logging(fn):
    def wrapped(run: Run) -> int:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return fn(run)

    return wrapped


COMMON = {"config": _config_cls, "model_keys": ("model.path",)}
APP = App(
    prog="sage", version=__version__,
    description="SAGE: stability-aware data selection for DPO on math reasoning (coarse frontier curriculum + "
                "margin-stability pair scoring).",
    verbs=[
        Verb("train", "DPO on self-generated verified pairs with the configured selection rule",
             _logging(_stopped(cmd_train)), out_key="out_dir", seed_key="train.seed", trains=True,
             check=_check_data, dry_run=verb_dry_run("sage.dryrun:specs"), **COMMON),
        Verb("eval", "greedy accuracy and boxed-answer rate on GSM8K / MATH-500 / AIME-format tasks",
             _logging(cmd_eval), seed_key="train.seed", check=_check_eval,
             default_out=lambda run: run.cfg.out_dir + "-eval", **COMMON),
        Verb("replicate", "CPU-scale replication: uniform vs curriculum vs scoring vs sage",
             _logging(_stopped(cmd_replicate)), arguments=_replicate_args, presets=_presets, claim="none",
             check=_check_replicate, default_out="runs/sage-replicate",
             description="CPU-scale replication: uniform vs curriculum vs scoring vs sage. --config FILE: its keys "
                         "replace the --quick / full presets; key=value overrides come last.", **COMMON),
    ],
)


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())

