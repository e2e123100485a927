"""Command line of ``cocoa``: pre-training stages, contrastive training, MMEB evaluation and the replication.

    cocoa pretrain --stage generative|1|2 --config FILE [key=value ...]
    cocoa train    --config FILE [key=value ...]
    cocoa eval     --config FILE [key=value ...]
    cocoa replicate [--quick] [--out DIR] [--seed N] [--config FILE] [key=value ...]

``pretrain``/``train`` start from ``model.path`` (empty: a tiny random Qwen2-VL built on the fly), write the trained
model to ``OUT/model`` and the resolved config to ``OUT/config.yaml``; ``eval`` writes ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from cocoa import __version__


def _common(parser: argparse.ArgumentParser, config_required: bool = True) -> None:
    parser.add_argument("--config", required=config_required, help="YAML config (see packages/cocoa/configs)")
    parser.add_argument("--out", help="output folder (default: the config's out_dir)")
    parser.add_argument("--seed", type=int, help="random seed (default: the config's first seed)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides such as contrastive.steps=50")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cocoa",
        description="CoCoA: content-reconstruction pre-training with collaborative attention for multimodal "
        "embeddings (Qwen2-VL backbones, MMEB-format evaluation).",
    )
    parser.add_argument("--version", action="version", version=f"cocoa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "pretrain", help="run one pre-training stage: generative, 1 (collaborative attention) or 2 (EOS reconstruction)"
    )
    p.add_argument("--stage", required=True, choices=["generative", "1", "2"], help="which stage to run")
    _common(p)
    _common(sub.add_parser("train", help="stage 3: contrastive InfoNCE training on <EOS> embeddings"))
    _common(sub.add_parser("eval", help="MMEB-format evaluation: P@1 per meta-task and overall, plus the <EOS> probe"))
    r = sub.add_parser("replicate", help="CPU-scale replication: contrastive-only vs stage 2 + contrastive")
    r.add_argument("--quick", action="store_true", help="the short version (one seed, fewer steps)")
    _common(r, config_required=False)
    return parser


def _setup(args):
    import torch
    from shared.config import load_config, save_config

    from cocoa.config import CocoaConfig

    cfg = load_config(CocoaConfig, args.config, list(args.overrides))
    if args.seed is not None:
        cfg.seeds = [args.seed]
    if args.out:
        cfg.out_dir = args.out
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    return cfg, out


def _model_and_suite(cfg, seed: int):
    from cocoa.backbone import build_tiny, load_cocoa
    from cocoa.pipeline import set_seed
    from cocoa.suite import load_suite

    suite = load_suite(cfg.data, seed=0)
    set_seed(seed)
    path = cfg.model.path
    if not path:
        path = build_tiny(
            Path(tempfile.mkdtemp(prefix="cocoa-tiny-")), suite.texts, cfg.model, cfg.data.image_size, seed
        )
        print(f"model.path is empty: built a tiny random Qwen2-VL at {path}")
    return load_cocoa(path, cfg.model), suite


def cmd_pretrain(args) -> int:
    from cocoa import pipeline

    cfg, out = _setup(args)
    seed = cfg.seeds[0]
    model, suite = _model_and_suite(cfg, seed)
    if args.stage == "generative":
        logs = pipeline.generative_pretrain(model, pipeline.generative_items(suite, cfg), cfg, seed)
    elif args.stage == "1":
        logs = pipeline.stage1(model, pipeline.pair_items(suite.train), cfg, seed)
    else:
        logs = pipeline.stage2(model, pipeline.pair_items(suite.train), cfg, seed)
    model.save(out / "model")
    (out / "train_log.json").write_text(json.dumps(logs))
    print(f"stage {args.stage}: first {logs[0]} last {logs[-1]}; model saved to {out / 'model'}")
    return 0


def cmd_train(args) -> int:
    from cocoa import pipeline

    cfg, out = _setup(args)
    seed = cfg.seeds[0]
    model, suite = _model_and_suite(cfg, seed)
    if not suite.train:
        raise SystemExit(f"cocoa train: {cfg.data.suite} data at {cfg.data.path!r} has no training pairs")
    logs = pipeline.contrastive(model, suite.train, cfg, seed)
    model.save(out / "model")
    (out / "train_log.json").write_text(json.dumps(logs))
    print(f"contrastive: first {logs[0]} last {logs[-1]}; model saved to {out / 'model'}")
    return 0


def cmd_eval(args) -> int:
    from shared.eval import write_results

    from cocoa import pipeline

    started, t0 = dt.datetime.now(dt.UTC), time.time()
    cfg, out = _setup(args)
    model, suite = _model_and_suite(cfg, cfg.seeds[0])
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


def cmd_replicate(args) -> int:
    from cocoa.replicate import replicate

    replicate(quick=args.quick, out=args.out, seed=args.seed, config=args.config, overrides=list(args.overrides))
    return 0


def main(argv: list[str] | None = None) -> int:
    from shared.dryrun import cli_hook  # `train --config FILE --dry-run`: size the run, run nothing

    argv = sys.argv[1:] if argv is None else argv
    code = cli_hook("cocoa", argv, "cocoa.config:CocoaConfig", "cocoa.dryrun:specs", verbs=("train",))
    if code is not None:
        return code
    args = build_parser().parse_args(argv)
    handlers = {"pretrain": cmd_pretrain, "train": cmd_train, "eval": cmd_eval, "replicate": cmd_replicate}
    from shared.modeling import ModelLoadError

    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, ModelLoadError) as err:
        # config, data and model errors carry the file, record and field; show them without a traceback
        print(f"cocoa {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
