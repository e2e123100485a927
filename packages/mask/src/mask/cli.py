"""Command line of `mask`: train, eval, oracle traces and the replication.

    mask train --config FILE [--row mask|monolithic] [--out DIR] [--seed N] [--dry-run] [key=value ...]
    mask eval --config FILE --model DIR [--row mask|monolithic] [--split test|dev] [--out DIR]
    mask oracle --config FILE --out FILE [--split sft|train|dev|test] [--limit N]
    mask replicate [--quick] [--out DIR] [--seed N] [--seeds K] [--rows mask,monolithic|sft] [--pilot]

The config is loaded and checked (unknown keys and values, files, numbers) before anything heavy runs; every known
error ends the command with one line `mask <verb>: error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from mask import __version__

KNOWN_ERRORS = (ValueError, FileNotFoundError, KeyError, OSError)


def _load(args: argparse.Namespace) -> Any:
    from shared.config import load_config

    from mask.config import MaskConfig, validate

    overrides = list(args.overrides)
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    return validate(load_config(MaskConfig, args.config, overrides))


def _context(cfg: Any, out: Path) -> Any:
    """Splits, retriever and (for the synthetic KB) the cached warm starts of the run."""
    from mask.data import build_retriever, corpus, load_split, make_retrieve

    retriever = build_retriever(cfg.data)
    splits = {s: load_split(cfg.data, s) for s in ("train", "dev", "test")}
    return splits, corpus(cfg.data), retriever, make_retrieve(retriever, cfg.loop.topk)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.dry_run:
        return dry_run(cfg)
    import torch
    from shared.atomic import save_pretrained
    from shared.config import claim_run_dir
    from shared.eval import sha256_of, write_results
    from shared.modeling import load_model
    from shared.rl.launch import check_launch

    from mask.data import data_name, synthetic_splits
    from mask.evaluate import evaluate, row_metrics
    from mask.train import rl_train
    from mask.warmstart import policy_paths

    check_launch(cfg.rl.generator_backend)
    torch.set_num_threads(cfg.rl.threads)
    out = Path(args.out or cfg.output_dir)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(cfg, out)
    splits, docs, retriever, retrieve = _context(cfg, out)
    if cfg.model.path:
        model, tok = load_model(cfg.model.path, kind="causal", dtype="float32", device="auto")
    else:
        kb = synthetic_splits(cfg.data)
        warm = policy_paths(cfg, out, kb, docs, retriever, retrieve, rows=[args.row])[args.row]
        model, tok = load_model(str(warm), kind="causal", dtype="float32", device="auto")
    start = evaluate(cfg, args.row, model, tok, splits["test"], retriever, retrieve, seed=cfg.seed)
    policy, history = rl_train(cfg, args.row, model, tok, splits["train"], retriever, retrieve, out / "rl",
                               progress=not args.no_progress)
    save_pretrained(out / "final_model", policy, tok)
    end = evaluate(cfg, args.row, policy, tok, splits["test"], retriever, retrieve, seed=cfg.seed)
    rows = [{"method": f"{args.row}_start", "metrics": row_metrics(start)},
            {"method": args.row, "metrics": row_metrics(end)}]
    for r in rows:
        print(r["method"], " ".join(f"{k}={v:.3f}" for k, v in r["metrics"].items() if v is not None))
    data = {"name": data_name(cfg.data), "sha256": sha256_of(json.dumps(splits["test"]).encode())}
    path = write_results(out, "mask", __version__, "train", rows, cfg, cfg.seed, False, data, started,
                         time.perf_counter() - t0, extra={"train_f1": [h["train_f1"] for h in history],
                                                          "context_curves": {"start": start["context_curve"],
                                                                             "end": end["context_curve"]}})
    print(f"model: {out / 'final_model'}\nresults: {path}")
    return 0


def dry_run(cfg: Any) -> int:
    """Validate a paper-scale config and estimate one process's GPU memory from the model's config (meta device)."""
    from shared.dryrun import DryRunSpec, format_report
    from shared.dryrun import dry_run as run

    if not cfg.model.path:
        raise ValueError("--dry-run needs model.path (a hub id of a bundled architecture or a folder with "
                         "config.json)")
    g = cfg.gpu
    seq = cfg.prompt.max_tokens + g.response_tokens
    actor = run(DryRunSpec(model=cfg.model.path, dtype=g.dtype, world_size=g.world_size, sharding=g.sharding,
                           micro_batch=g.micro_batch, seq_len=seq, reference_model=cfg.rl.beta > 0,
                           rollout_tokens=g.rollout_tokens))
    print("actor (policy shared by the five roles)\n" + format_report(actor))
    if cfg.rl.advantage == "gae" and cfg.rl.critic.kind == "model":
        critic = run(DryRunSpec(model=cfg.rl.critic.model_path or cfg.model.path, dtype=g.dtype,
                                world_size=g.world_size, sharding=g.sharding, micro_batch=g.micro_batch, seq_len=seq))
        print("critic (separate model)\n" + format_report(critic))
    print(f"config ok: {cfg.train.questions_per_step} questions x {cfg.train.episodes_per_question} episodes per "
          f"step, <= {cfg.loop.max_iterations} iterations, top-{cfg.loop.topk}, rl.lr {cfg.rl.lr:g}, "
          f"critic lr {cfg.rl.critic.lr:g}, generator {cfg.rl.generator_backend}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from shared.config import save_config
    from shared.eval import sha256_of, write_results
    from shared.modeling import load_model

    from mask.data import data_name
    from mask.evaluate import evaluate, row_metrics

    cfg = _load(args)
    torch.set_num_threads(cfg.rl.threads)
    out = Path(args.out or Path(cfg.output_dir) / "eval")
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    splits, _, retriever, retrieve = _context(cfg, out)
    records = splits[args.split]
    model, tok = load_model(args.model, kind="causal", dtype="float32", device="auto")
    save_config(cfg, out)
    stats = evaluate(cfg, args.row, model, tok, records, retriever, retrieve, seed=cfg.seed)
    rows = [{"method": args.row, "metrics": row_metrics(stats)}]
    print(" ".join(f"{k}={v:.3f}" for k, v in rows[0]["metrics"].items() if v is not None))
    print(f"context per iteration: {stats['context_curve']}; illegal: {stats['illegal']}")
    data = {"name": f"{data_name(cfg.data)} ({args.split})", "sha256": sha256_of(json.dumps(records).encode())}
    path = write_results(out, "mask", __version__, "eval", rows, cfg, cfg.seed, False, data, started,
                         time.perf_counter() - t0, extra={"model": args.model, "stats": stats})
    print(f"results: {path}")
    return 0


def cmd_oracle(args: argparse.Namespace) -> int:
    from shared.atomic import write_jsonl

    from mask.data import build_retriever, make_retrieve, synthetic_splits
    from mask.warmstart import mask_records

    cfg = _load(args)
    questions = synthetic_splits(cfg.data)[args.split]
    if args.limit:
        questions = questions[: args.limit]
    records = mask_records(cfg, questions, make_retrieve(build_retriever(cfg.data), cfg.loop.topk))
    path = write_jsonl(args.out, records)
    print(f"{len(records)} per-call records of {len(questions)} questions: {path}")
    return 0


def cmd_replicate(args: argparse.Namespace) -> int:
    from mask.replicate import pilot, replicate

    if args.pilot:
        rows = [r for r in args.rows.split(",") if r] if args.rows else None
        lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else None
        path = pilot(args.out, config=args.config, overrides=args.overrides, seed=args.seed or 0, rows=rows, lrs=lrs)
        if path is None:
            print("pilot: runs of other rows or lrs are still missing; rerun without --rows/--lrs once they finish")
            return 0
        doc = json.loads(Path(path).read_text())
        print(f"pilot: lr per row {doc['lr']}; dev F1 max move {doc['dev_f1_max_move']}; testable {doc['testable']}")
        print(f"pilot: {path}")
        return 0
    rows = args.rows.split(",") if args.rows else None
    path = replicate(quick=args.quick, out=args.out, seed=args.seed or 0, config=args.config,
                     overrides=args.overrides, seeds=args.seeds, rows=rows)
    doc = json.loads(Path(path).read_text())
    print(f"results: {path} ({doc['seconds']:.0f}s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mask", description="M-ASK: multi-agent search and knowledge management (planning, search, summary, "
                                 "update and answer roles on one policy, turn-level rewards) vs a monolithic agent.")
    parser.add_argument("--version", action="version", version=f"mask {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="RL (PPO with GAE) of one row from its warm start or model.path; test metrics")
    p.add_argument("--config", required=True, help="YAML config (see configs/train.yaml)")
    p.add_argument("--row", default="mask", choices=["mask", "monolithic"], help="the multi-agent loop or the baseline")
    p.add_argument("--out", help="output directory (default: output_dir of the config)")
    p.add_argument("--seed", type=int, help="seed (overrides the config's)")
    p.add_argument("--dry-run", action="store_true", help="validate a paper-scale config and estimate GPU memory per "
                   "process from the model's config on the meta device (no weights, no download)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. parse.mode=release")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="greedy episodes of a saved policy: f1, em, acc, context per call, illegal rates")
    p.add_argument("--config", required=True, help="YAML config (data, loop, prompt, parse settings)")
    p.add_argument("--model", required=True, help="saved causal LM with its tokenizer")
    p.add_argument("--row", default="mask", choices=["mask", "monolithic"])
    p.add_argument("--split", default="test", choices=["test", "dev"])
    p.add_argument("--out", help="output directory")
    p.add_argument("--seed", type=int)
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("oracle", help="write the scripted per-call prompt -> reply records (the warm start's data)")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="JSONL file to write")
    p.add_argument("--split", default="sft", choices=["sft", "train", "dev", "test"])
    p.add_argument("--limit", type=int, default=0, help="first N questions only")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(fn=cmd_oracle)

    p = sub.add_parser("replicate", help="CPU-scale replication: mask vs monolithic (and their warm starts)")
    p.add_argument("--quick", action="store_true", help="one seed, 3 RL steps, 128 test questions")
    p.add_argument("--out", default="runs/mask_replicate", help="output directory")
    p.add_argument("--seed", type=int, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated subset of mask,monolithic; 'sft' alone builds and scores the warm "
                   "starts only")
    p.add_argument("--pilot", action="store_true", help="the dev-only pilot that picks the lr (writes pilot.json)")
    p.add_argument("--lrs", help="with --pilot: comma-separated subset of train.lr_grid")
    p.add_argument("--config", help="config replacing the packaged replicate config")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(fn=cmd_replicate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KNOWN_ERRORS as err:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f"mask {args.command}: error: {' '.join(text.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
