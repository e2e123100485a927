"""Command line of `matchtir`: train, eval (synthetic tool tasks and BFCL) and replicate.

    matchtir train --config configs/train.yaml [key=value ...]
    matchtir eval --config configs/eval.yaml --model runs/matchtir/final_model [--bfcl] [--gold]
    matchtir replicate [--quick] [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from matchtir import __version__


def _load(args: argparse.Namespace):
    from shared.config import load_config

    from matchtir.config import MatchTIRConfig

    return load_config(MatchTIRConfig, args.config, list(args.overrides))


def _samples(cfg, split: str) -> list[dict]:
    from matchtir.data import suite_samples

    return suite_samples(cfg.data, split)


def _data_info(cfg) -> dict:
    from shared.eval import sha256_of

    d = cfg.data
    if d.train_file or d.test_file:
        files = [p for p in (d.train_file, d.test_file) if p]
        return {"name": " / ".join(files), "sha256": sha256_of(files)}
    from matchtir.data import suite_name

    test = json.dumps(_samples(cfg, "test")).encode()
    return {"name": suite_name(d), "sha256": sha256_of(test)}


def cmd_train(args: argparse.Namespace) -> int:
    import torch
    from shared.atomic import save_pretrained
    from shared.config import save_config
    from shared.eval import write_results

    from matchtir.evaluate import evaluate_policy
    from matchtir.train import build_policy, conversation_texts, env_factory_for, rl_train, warm_start

    cfg = _load(args)
    torch.set_num_threads(cfg.rl.threads)
    out = Path(args.out or cfg.output_dir)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    save_config(cfg, out)
    train, test = _samples(cfg, "train"), _samples(cfg, "test")
    model, tok = build_policy(cfg, conversation_texts(train, cfg.data.prompt_style, env_factory_for(cfg)),
                              out / "init_model")
    if cfg.sft.steps > 0:
        model, _ = warm_start(cfg, model, tok, train[: cfg.data.sft_traces], out / "sft")
    sft_metrics = evaluate_policy(cfg, model, tok, test, seed=cfg.seed)
    model, history = rl_train(cfg, model, tok, train, out / "rl")
    save_pretrained(out / "final_model", model, tok)
    metrics = evaluate_policy(cfg, model, tok, test, seed=cfg.seed)
    rows = [{"method": "sft", "metrics": sft_metrics},
            {"method": f"{cfg.reward.scheme}-{cfg.reward.mode}-{cfg.advantage.mode}", "metrics": metrics}]
    for r in rows:
        print(r["method"], " ".join(f"{k}={v:.3f}" for k, v in r["metrics"].items()))
    path = write_results(out, "matchtir", __version__, "train", rows, cfg, cfg.seed, False, _data_info(cfg), started,
                         time.perf_counter() - t0, extra={"train_reward": [h["reward"] for h in history]})
    print(f"model: {out / 'final_model'}\nresults: {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from shared.config import save_config
    from shared.eval import write_results

    from matchtir import bfcl

    cfg = _load(args)
    torch.set_num_threads(cfg.rl.threads)
    out = Path(args.out or Path(cfg.output_dir) / "eval")
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    save_config(cfg, out)
    if not args.model and not (args.bfcl and (args.gold or args.predictions)):
        print("matchtir eval: give --model PATH (or --bfcl with --gold / --predictions FILE)", file=sys.stderr)
        return 2
    model = tok = None
    if args.model:
        from shared.modeling import load_model

        model, tok = load_model(args.model, kind="causal", dtype="float32", device="auto")
    rows = []
    if args.bfcl:
        cats = {c: bfcl.load_category(c, cfg.eval.bfcl_limit) for c in cfg.eval.bfcl_categories}
        if args.predictions:
            preds = bfcl.load_predictions(args.predictions)
        elif args.gold:
            preds = {r.id: bfcl.gold_predictions(r.possible_answer) for rs in cats.values() for r in rs}
        else:
            preds = bfcl.predict(model, tok, [r for rs in cats.values() for r in rs], cfg.eval.bfcl_max_new_tokens)
        scores = bfcl.evaluate_bfcl(preds, cats)
        for cat, m in scores.items():
            rows.append({"method": f"bfcl_{cat}", "metrics": {"accuracy": m["accuracy"], "solve_f1": m["solve_f1"],
                                                                "solve_rate": m["solve_rate"],
                                                                "precision": m["precision"], "answer_f1": None,
                                                                "n": m["n"]}})
        from benchmarks.data.bundled import bundled_path
        from shared.eval import sha256_of

        files = [bundled_path(f"tool_use/bfcl/BFCL_v4_{c}.json") for c in cfg.eval.bfcl_categories]
        data = {"name": "BFCL v4 bundled slice (" + ", ".join(cfg.eval.bfcl_categories) + ")",
                "sha256": sha256_of(files)}
    else:
        from matchtir.evaluate import evaluate_policy

        metrics = evaluate_policy(cfg, model, tok, _samples(cfg, "test"), seed=cfg.seed)
        rows.append({"method": Path(args.model).name, "metrics": metrics})
        data = _data_info(cfg)
    for r in rows:
        print(f"{r['method']:<24}", " ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in
                                            r["metrics"].items()))
    path = write_results(out, "matchtir", __version__, "eval", rows, cfg, cfg.seed, False, data, started,
                         time.perf_counter() - t0)
    print(f"results: {path}")
    return 0


def cmd_replicate(args: argparse.Namespace) -> int:
    from matchtir.replicate import replicate

    rows = args.rows.split(",") if args.rows else None
    path = replicate(quick=args.quick, out=args.out, seed=args.seed, config=args.config, overrides=args.overrides,
                     seeds=args.seeds, rows=rows)
    print(f"results: {path}")
    doc = json.loads(Path(path).read_text())
    print(f"{doc['seconds']:.0f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matchtir", description="Bipartite-matching turn-level rewards for tool-integrated reasoning (MatchTIR).")
    parser.add_argument("--version", action="version", version=f"matchtir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="SFT warm start on gold traces, then GRPO with matching rewards")
    p.add_argument("--config", required=True, help="YAML config (see configs/train.yaml)")
    p.add_argument("--out", help="output directory (default: output_dir of the config)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. reward.mode=soft")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="score a model on synthetic tool tasks or on the bundled BFCL slice")
    p.add_argument("--config", help="YAML config (see configs/eval.yaml)")
    p.add_argument("--model", help="saved causal LM with its tokenizer")
    p.add_argument("--bfcl", action="store_true", help="evaluate on BFCL (AST call matching, per category)")
    p.add_argument("--gold", action="store_true", help="with --bfcl: score the ground truth fed back (100%%)")
    p.add_argument("--predictions", help="with --bfcl: JSONL of {id, calls} to score instead of a model")
    p.add_argument("--out", help="output directory")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("replicate", help="CPU-scale replication: trajectory vs km vs ot rows on the tool suite")
    p.add_argument("--quick", action="store_true", help="one seed, small budget (under ~3 minutes on 2 cores)")
    p.add_argument("--out", default="runs/matchtir_replicate", help="output directory")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated subset of the rows trajectory,km,ot (default: all); "
                   "'sft' alone builds and scores the warm start only")
    p.add_argument("--config", help="config replacing the packaged replicate config")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(fn=cmd_replicate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.dryrun import cli_hook  # `train --config FILE --dry-run`: size the run, run nothing

    argv = sys.argv[1:] if argv is None else argv
    code = cli_hook("matchtir", argv, "matchtir.config:MatchTIRConfig", "matchtir.dryrun:specs", verbs=("train",))
    if code is not None:
        return code
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"matchtir {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
