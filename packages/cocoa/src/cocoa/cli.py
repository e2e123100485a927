"""Command line of ``cocoa``: pre-training stages, contrastive training, MMEB evaluation and the replication.

    cocoa pretrain --stage generative|1|2 [--config FILE] [--out DIR] [key=value ...]
    cocoa train    [--config FILE] [--out DIR] [key=value ...]
    cocoa eval     [--config FILE] [--out DIR] [key=value ...]
    cocoa replicate [--quick] [--out DIR] [--seed N] [--config FILE] [key=value ...]

Built on the workspace's parent CLI (``shared.cli``: one set of flags, one-line errors, checks before work).
``pretrain``/``train`` start from ``model.path`` (empty: a tiny random Qwen2-VL built on the fly inside the output
folder), write the trained model to ``OUT/model``, the resolved config to ``OUT/config.yaml`` and the training curve
to ``OUT/metrics.jsonl`` (+ TensorBoard); ``eval`` writes ``OUT/results.json``. ``--out`` sets ``out_dir``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from shared.cli import App, Run, Verb
from shared.dryrun import verb_dry_run

from cocoa import __version__

PRESETS = Path(__file__).parent / "presets"  # the replication's quick.yaml and full.yaml


def _config_cls():
    from cocoa.config import CocoaConfig

    return CocoaConfig


def _check_data(run: Run) -> None:
    """An MMEB folder is read and checked record by record before any model is built (images stay lazy)."""
    if run.cfg.data.suite == "mmeb":
        from cocoa.suite import load_suite

        load_suite(run.cfg.data)


def _threads(cfg) -> None:
    import torch

    torch.set_num_threads(cfg.threads)


def _model_and_suite(cfg, seed: int, out: Path):
    from cocoa.backbone import build_tiny, load_cocoa
    from cocoa.pipeline import set_seed
    from cocoa.suite import load_suite

    suite = load_suite(cfg.data, seed=0)
    set_seed(seed)
    path = cfg.model.path
    if not path:
        # inside the run folder (not /tmp): nothing is left behind elsewhere, and a rerun rebuilds it in place
        path = build_tiny(out / "tiny_init", suite.texts, cfg.model, cfg.data.image_size, seed)
        print(f"model.path is empty: built a tiny random Qwen2-VL at {path}")
    return load_cocoa(path, cfg.model), suite


def _finish_training(run: Run, model, logs: list[dict], label: str) -> None:
    model.save(run.out / "model")
    (run.out / "train_log.json").write_text(json.dumps(logs))
    run.write_metrics(logs, prefix="train/")
    print(f"{label}: first {logs[0]} last {logs[-1]}; model saved to {run.out / 'model'}")


def cmd_pretrain(run: Run) -> int:
    from cocoa import pipeline

    cfg, stage = run.cfg, run.args.stage
    _threads(cfg)
    seed = cfg.seeds[0]
    model, suite = _model_and_suite(cfg, seed, run.out)
    if stage == "generative":
        logs = pipeline.generative_pretrain(model, pipeline.generative_items(suite, cfg), cfg, seed)
    elif stage == "1":
        logs = pipeline.stage1(model, pipeline.pair_items(suite.train), cfg, seed)
    else:
        logs = pipeline.stage2(model, pipeline.pair_items(suite.train), cfg, seed)
    _finish_training(run, model, logs, f"stage {stage}")
    return 0


def cmd_train(run: Run) -> int:
    from shared.cli import CLIError

    from cocoa import pipeline

    cfg = run.cfg
    _threads(cfg)
    seed = cfg.seeds[0]
    model, suite = _model_and_suite(cfg, seed, run.out)
    if not suite.train:
        raise CLIError(f"{cfg.data.suite} data at {cfg.data.path!r} has no training pairs")
    logs = pipeline.contrastive(model, suite.train, cfg, seed)
    _finish_training(run, model, logs, "contrastive")
    return 0


def cmd_eval(run: Run) -> int:
    from shared.eval import write_results

    from cocoa import pipeline

    started, t0 = dt.datetime.now(dt.UTC), time.time()
    cfg, out = run.cfg, run.out
    _threads(cfg)
    model, suite = _model_and_suite(cfg, cfg.seeds[0], out)
    metrics = pipeline.measure(model, suite.evals, cfg)
    for key, value in metrics.items():
        print(f"{key}\t{value:.4f}")
    rows = [{"method": Path(cfg.model.path).name or "tiny-random", "metrics": metrics}]
    data = {"name": suite.name, "sha256": suite.sha256}
    path = write_results(
        out, "cocoa", __version__, "eval", rows, cfg, cfg.seeds[0], False, data, started, time.time() - t0
    )
    print(f"wrote {path}")
    return 0


def cmd_replicate(run: Run) -> int:
    from cocoa.replicate import replicate

    # replicate() loads the same config itself (checked above) and claims the folder (finished rows are reused)
    replicate(quick=run.args.quick, out=run.out, seed=run.seed, config=run.config_path, overrides=run.overrides)
    return 0


def _stage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", required=True, choices=["generative", "1", "2"], help="which stage to run")


def _replicate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="the short version (one seed, fewer steps)")


COMMON = {"config": _config_cls, "out_key": "out_dir", "model_keys": ("model.path",), "check": _check_data}
APP = App(
    prog="cocoa", version=__version__,
    description="CoCoA: content-reconstruction pre-training with collaborative attention for multimodal embeddings "
                "(Qwen2-VL backbones, MMEB-format evaluation).",
    verbs=[
        Verb("pretrain", "run one pre-training stage: generative, 1 (collaborative attention) or 2 (EOS "
             "reconstruction)", cmd_pretrain, arguments=_stage_args, seed_key="seeds", trains=True, **COMMON),
        Verb("train", "stage 3: contrastive InfoNCE training on <EOS> embeddings", cmd_train, seed_key="seeds",
             trains=True, dry_run=verb_dry_run("cocoa.dryrun:specs"), **COMMON),
        Verb("eval", "MMEB-format evaluation: P@1 per meta-task and overall, plus the <EOS> probe", cmd_eval,
             seed_key="seeds", **COMMON),
        Verb("replicate", "CPU-scale replication: contrastive-only vs stage 2 + contrastive", cmd_replicate,
             arguments=_replicate_args, claim="none",
             default_config=lambda args: PRESETS / ("quick.yaml" if args.quick else "full.yaml"),
             description="CPU-scale replication: contrastive-only vs stage 2 + contrastive. --config replaces the "
                         "packaged quick.yaml/full.yaml; --seed N shifts the seeds to N, N+1, ...", **COMMON),
    ],
)


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
