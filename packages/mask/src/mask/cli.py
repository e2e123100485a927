"""Command line of `mask`: train, eval, oracle traces and the replication, on the workspace's parent CLI.

    mask train [--config FILE] [--row mask|monolithic] [--out DIR] [--seed N] [key=value ...]
    mask train --config packages/mask/configs/gpu_qwen2.5-7b.yaml --dry-run
    mask eval [--config FILE] --model DIR [--row mask|monolithic] [--split test|dev] [--out DIR]
    mask oracle [--config FILE] --out DIR [--split sft|train|dev|test] [--limit N]
    mask replicate [--quick] [--out DIR] [--seed N] [--seeds K] [--rows mask,monolithic|sft] [--pilot]

Built on `shared.cli`: `--config`, `--out`, `--seed`, `--print-config`, `--no-progress`, `--debug` and `key=value`
overrides anywhere on the line. The config (types, enums, cross-field rules), question files (every record needs
`golden_answers`), model paths and the output folder are checked before any model is built; every known error is
one line `mask <verb>: ...` with exit status 2. `train --dry-run` (the parent CLI's flag) stops after the config is
loaded and validated: no output folder, no model path check (a paper-scale model is a hub id sized from its bundled
configuration on the meta device).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from shared.cli import App, CLIError, Run, Verb, check_model_source

from mask import __version__

REPLICATE_CONFIGS = Path(__file__).resolve().parent / "configs"  # replicate_quick.yaml, replicate.yaml


def _config_cls() -> type:
    from mask.config import MaskConfig

    return MaskConfig


def _check_data(run: Run) -> None:
    """Question files are read and checked record by record; so is the corpus file."""
    from mask.data import load_split

    d = run.cfg.data
    for split in ("train", "dev", "test"):
        if getattr(d, f"{split}_file"):
            load_split(d, split)
    if d.corpus_file:
        from mask.data import corpus

        corpus(d)


def _check_eval(run: Run) -> None:
    check_model_source(run.args.model, "--model")
    _check_data(run)


def _rows(args: argparse.Namespace) -> list[str] | None:
    return [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None


def _check_replicate(run: Run) -> None:
    from mask.replicate import ROWS

    args = run.args
    if args.seeds is not None and args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {args.seeds}")
    unknown = [r for r in _rows(args) or [] if r != "sft" and r not in ROWS]
    if unknown:
        raise CLIError(f"--rows: unknown rows {unknown}; known: sft, {', '.join(ROWS)}")
    if args.lrs and not args.pilot:
        raise CLIError("--lrs goes with --pilot")
    if args.lrs:
        try:
            [float(x) for x in args.lrs.split(",")]
        except ValueError as err:
            raise CLIError(f"--lrs: comma-separated numbers expected, got {args.lrs!r}") from err
    _check_data(run)


def _context(cfg: Any) -> tuple[dict, list, Any, Any]:
    """Splits, corpus, retriever and retrieval function of a run."""
    from mask.data import build_retriever, corpus, load_split, make_retrieve

    retriever = build_retriever(cfg.data)
    splits = {s: load_split(cfg.data, s) for s in ("train", "dev", "test")}
    return splits, corpus(cfg.data), retriever, make_retrieve(retriever, cfg.loop.topk)


def cmd_train(run: Run) -> int:
    import torch
    from shared.atomic import save_pretrained
    from shared.eval import sha256_of, write_results
    from shared.modeling import load_model
    from shared.rl.launch import check_launch

    from mask.data import data_name, synthetic_splits
    from mask.evaluate import evaluate, row_metrics
    from mask.train import rl_train
    from mask.warmstart import policy_paths

    cfg, out, row = run.cfg, run.out, run.args.row
    check_launch(cfg.rl.generator_backend)
    torch.set_num_threads(cfg.rl.threads)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    splits, docs, retriever, retrieve = _context(cfg)
    if cfg.model.path:
        model, tok = load_model(cfg.model.path, kind="causal", dtype="float32", device="auto")
    else:
        kb = synthetic_splits(cfg.data)
        warm = policy_paths(cfg, out, kb, docs, retriever, retrieve, rows=[row], log=run.log)[row]
        model, tok = load_model(str(warm), kind="causal", dtype="float32", device="auto")
    start = evaluate(cfg, row, model, tok, splits["test"], retriever, retrieve, seed=cfg.seed)
    policy, history = rl_train(cfg, row, model, tok, splits["train"], retriever, retrieve, out / "rl",
                               progress=run.progress)
    save_pretrained(out / "final_model", policy, tok)
    end = evaluate(cfg, row, policy, tok, splits["test"], retriever, retrieve, seed=cfg.seed)
    rows = [{"method": f"{row}_start", "metrics": row_metrics(start)}, {"method": row, "metrics": row_metrics(end)}]
    for r in rows:
        print(r["method"], " ".join(f"{k}={v:.3f}" for k, v in r["metrics"].items() if v is not None))
    data = {"name": data_name(cfg.data), "sha256": sha256_of(json.dumps(splits["test"]).encode())}
    path = write_results(out, "mask", __version__, "train", rows, cfg, cfg.seed, False, data, started,
                         time.perf_counter() - t0, extra={"train_f1": [h["train_f1"] for h in history],
                                                          "context_curves": {"start": start["context_curve"],
                                                                             "end": end["context_curve"]}})
    print(f"model: {out / 'final_model'}\nresults: {path}")
    return 0


def dry_run(cfg: Any, config_path: Any = None, gpu_gib: float = 80.0) -> int:
    """Validate a paper-scale config and estimate one process's GPU memory from the model's config (meta device): the
    actor (the policy all five roles share) and, under GAE with `critic.kind: model`, the separate critic, which the
    release colocates with the actor on the same GPUs (so their sum must fit one card)."""
    from shared.dryrun import DryRunSpec, format_report
    from shared.dryrun import dry_run as size

    if not cfg.model.path:
        raise CLIError("--dry-run needs model.path (a hub id of a bundled architecture or a folder with config.json)")
    g = cfg.gpu
    seq = cfg.prompt.max_tokens + g.response_tokens
    reports = [("actor (policy shared by the five roles)",
                size(DryRunSpec(model=cfg.model.path, dtype=g.dtype, world_size=g.world_size, sharding=g.sharding,
                                micro_batch=g.micro_batch, seq_len=seq, reference_model=cfg.rl.beta > 0,
                                rollout_tokens=g.rollout_tokens)))]
    if cfg.rl.advantage == "gae" and cfg.rl.critic.kind == "model":
        reports.append(("critic (separate model)",
                        size(DryRunSpec(model=cfg.rl.critic.model_path or cfg.model.path, dtype=g.dtype,
                                        world_size=g.world_size, sharding=g.sharding, micro_batch=g.micro_batch,
                                        seq_len=seq))))
    print(f"dry run of {config_path or 'the config'}: the config is valid")
    for label, report in reports:
        print(f"{label}\n{format_report(report)}")
    total = sum(float(r["memory_gib"]["total"]) for _, r in reports)
    verdict = "fits" if total <= gpu_gib else "does NOT fit"
    print(f"all of the above in one process: {total:.2f} of {gpu_gib:g} GiB: {verdict} (estimate)")
    print(f"config ok: {cfg.train.questions_per_step} questions x {cfg.train.episodes_per_question} episodes per "
          f"step, <= {cfg.loop.max_iterations} iterations, top-{cfg.loop.topk}, rl.lr {cfg.rl.lr:g}, "
          f"critic lr {cfg.rl.critic.lr:g}, generator {cfg.rl.generator_backend}")
    return 0


def cmd_dry_run(run: Run) -> int:
    return dry_run(run.cfg, run.config_path)


def cmd_eval(run: Run) -> int:
    import torch
    from shared.eval import sha256_of, write_results
    from shared.modeling import load_model

    from mask.data import data_name
    from mask.evaluate import evaluate, row_metrics

    cfg, out, args = run.cfg, run.out, run.args
    torch.set_num_threads(cfg.rl.threads)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    splits, _, retriever, retrieve = _context(cfg)
    records = splits[args.split]
    model, tok = load_model(args.model, kind="causal", dtype="float32", device="auto")
    stats = evaluate(cfg, args.row, model, tok, records, retriever, retrieve, seed=cfg.seed)
    rows = [{"method": args.row, "metrics": row_metrics(stats)}]
    print(" ".join(f"{k}={v:.3f}" for k, v in rows[0]["metrics"].items() if v is not None))
    print(f"context per iteration: {stats['context_curve']}; illegal: {stats['illegal']}")
    data = {"name": f"{data_name(cfg.data)} ({args.split})", "sha256": sha256_of(json.dumps(records).encode())}
    path = write_results(out, "mask", __version__, "eval", rows, cfg, cfg.seed, False, data, started,
                         time.perf_counter() - t0, extra={"model": args.model, "stats": stats})
    print(f"results: {path}")
    return 0


def cmd_oracle(run: Run) -> int:
    from shared.atomic import write_jsonl

    from mask.data import build_retriever, make_retrieve, synthetic_splits
    from mask.warmstart import mask_records

    cfg, args = run.cfg, run.args
    questions = synthetic_splits(cfg.data)[args.split]
    if args.limit:
        questions = questions[: args.limit]
    records = mask_records(cfg, questions, make_retrieve(build_retriever(cfg.data), cfg.loop.topk))
    path = write_jsonl(run.out / "oracle.jsonl", records)
    print(f"{len(records)} per-call records of {len(questions)} questions: {path}")
    return 0


def cmd_replicate(run: Run) -> int:
    from mask.replicate import pilot, replicate

    args, seed = run.args, run.seed if run.seed is not None else 0
    # replicate() and pilot() load the same config and claim the folder themselves (finished stages are reused)
    if args.pilot:
        lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else None
        path = pilot(run.out, config=run.config_path, overrides=run.overrides, seed=seed, rows=_rows(args), lrs=lrs)
        if path is None:
            print("pilot: runs of other rows or lrs are still missing; rerun without --rows/--lrs once they finish")
            return 0
        doc = json.loads(Path(path).read_text())
        print(f"pilot: lr per row {doc['lr']}; dev F1 max move {doc['dev_f1_max_move']}; testable {doc['testable']}")
        print(f"pilot: {path}")
        return 0
    path = replicate(quick=args.quick, out=run.out, seed=seed, config=run.config_path, overrides=run.overrides,
                     seeds=args.seeds, rows=_rows(args))
    doc = json.loads(Path(path).read_text())
    print(f"results: {path} ({doc['seconds']:.0f}s)")
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--row", default="mask", choices=["mask", "monolithic"], help="the multi-agent loop or the baseline")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="saved causal LM with its tokenizer")
    p.add_argument("--row", default="mask", choices=["mask", "monolithic"])
    p.add_argument("--split", default="test", choices=["test", "dev"])


def _oracle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", default="sft", choices=["sft", "train", "dev", "test"])
    p.add_argument("--limit", type=int, default=0, help="first N questions only")


def _replicate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one seed, short warm starts, 3 RL steps, 128 test questions")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated subset of mask,monolithic; 'sft' alone builds and scores the warm "
                   "starts only")
    p.add_argument("--pilot", action="store_true", help="the dev-only pilot that picks the lr (writes pilot.json)")
    p.add_argument("--lrs", help="with --pilot: comma-separated subset of train.lr_grid")


DESCRIPTION = ("M-ASK: multi-agent search and knowledge management (planning, search, summary, update and answer "
               "roles on one policy, turn-level rewards) vs a monolithic search agent.")
COMMON: dict[str, Any] = {"config": _config_cls, "seed_key": "seed", "progress_key": "rl.progress"}
APP = App(
    prog="mask", version=__version__, description=DESCRIPTION,
    verbs=[
        Verb("train", "RL (PPO with GAE) of one row from its warm start or model.path; test metrics", cmd_train,
             arguments=_train_args, out_key="output_dir", model_keys=("model.path",), check=_check_data,
             trains=True, wandb_key="rl.wandb_project", dry_run=cmd_dry_run, **COMMON),
        Verb("eval", "greedy episodes of a saved policy: f1, em, acc, context per call, illegal rates", cmd_eval,
             arguments=_eval_args, check=_check_eval,
             default_out=lambda run: Path(run.cfg.output_dir) / "eval", **COMMON),
        Verb("oracle", "write the scripted per-call prompt -> reply records (the warm start's data) to "
             "DIR/oracle.jsonl", cmd_oracle, arguments=_oracle_args, out="required", check=_check_data, **COMMON),
        Verb("replicate", "CPU-scale replication: mask vs monolithic (and their warm starts)", cmd_replicate,
             arguments=_replicate_args, claim="none", check=_check_replicate,
             default_config=lambda args: REPLICATE_CONFIGS / ("replicate_quick.yaml" if args.quick
                                                              else "replicate.yaml"),
             default_out="runs/mask_replicate",
             description="CPU-scale replication: mask vs monolithic (and their warm starts). --config replaces the "
                         "packaged replicate(_quick).yaml.", **COMMON),
    ],
)

def build_parser() -> argparse.ArgumentParser:
    return APP.build_parser()


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
