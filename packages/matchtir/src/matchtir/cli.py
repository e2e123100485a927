"""Command line of `matchtir`: train, eval (synthetic tool tasks and BFCL) and replicate.

    matchtir train [--config configs/train.yaml] [--out DIR] [key=value ...]
    matchtir eval [--config configs/eval.yaml] --model runs/matchtir/final_model [--bfcl] [--gold]
    matchtir replicate [--quick] [--out DIR] [--seed N]

Built on the workspace's parent CLI (`shared.cli`): `--config`, `--out` (sets `output_dir`), `--seed`,
`--print-config`, `--no-progress`, `--debug` and `key=value` overrides anywhere on the line; task files, prediction
files and model paths are checked before any model is built, and errors are one line with exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from shared.cli import App, CLIError, Run, Verb, check_model_source
from shared.dryrun import verb_dry_run

from matchtir import __version__

REPLICATE_CONFIGS = Path(__file__).resolve().parent / "configs"  # replicate_quick.yaml, replicate.yaml


def _config_cls():
    from matchtir.config import MatchTIRConfig

    return MatchTIRConfig


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


def _check_data(run: Run) -> None:
    """Task files (FTRL-style JSONL) are read and validated record by record."""
    from matchtir.data import load_samples

    for key in ("train_file", "test_file"):
        path = getattr(run.cfg.data, key)
        if path:
            load_samples(path)


def _check_eval(run: Run) -> None:
    args = run.args
    if not args.model and not (args.bfcl and (args.gold or args.predictions)):
        raise CLIError("give --model PATH (or --bfcl with --gold / --predictions FILE)")
    if args.model:
        check_model_source(args.model, "--model")
    if args.predictions:
        from matchtir import bfcl

        bfcl.load_predictions(args.predictions)
    if not args.bfcl:
        _check_data(run)


def _check_replicate(run: Run) -> None:
    from matchtir.replicate import ROWS

    if run.args.seeds is not None and run.args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {run.args.seeds}")
    unknown = [r for r in _rows(run.args) or [] if r != "sft" and r not in ROWS]
    if unknown:
        raise CLIError(f"--rows: unknown rows {unknown}; known: sft, {', '.join(ROWS)}")
    _check_data(run)


def _rows(args: argparse.Namespace) -> list[str] | None:
    return [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None


def cmd_train(run: Run) -> int:
    import torch
    from shared.atomic import save_pretrained
    from shared.eval import write_results

    from matchtir.evaluate import evaluate_policy
    from matchtir.train import build_policy, conversation_texts, env_factory_for, rl_train, warm_start

    cfg, out = run.cfg, run.out
    torch.set_num_threads(cfg.rl.threads)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    train, test = _samples(cfg, "train"), _samples(cfg, "test")
    model, tok = build_policy(cfg, conversation_texts(train, cfg.data.prompt_style, env_factory_for(cfg)),
                              out / "init_model")
    if cfg.sft.steps > 0:
        model, _ = warm_start(cfg, model, tok, train[: cfg.data.sft_traces], out / "sft")
    sft_metrics = evaluate_policy(cfg, model, tok, test, seed=cfg.seed)
    model, history = rl_train(cfg, model, tok, train, out / "rl")  # writes rl/metrics.jsonl and rl/tensorboard
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


def cmd_eval(run: Run) -> int:
    import torch
    from shared.eval import write_results

    from matchtir import bfcl

    cfg, out, args = run.cfg, run.out, run.args
    torch.set_num_threads(cfg.rl.threads)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
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


def cmd_replicate(run: Run) -> int:
    from matchtir.replicate import replicate

    # replicate() loads the same config and claims the folder itself (finished rows are reused)
    path = replicate(quick=run.args.quick, out=run.out, seed=run.seed if run.seed is not None else 0,
                     config=run.config_path, overrides=run.overrides, seeds=run.args.seeds, rows=_rows(run.args))
    print(f"results: {path}")
    doc = json.loads(Path(path).read_text())
    print(f"{doc['seconds']:.0f}s")
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="saved causal LM with its tokenizer")
    p.add_argument("--bfcl", action="store_true", help="evaluate on BFCL (AST call matching, per category)")
    p.add_argument("--gold", action="store_true", help="with --bfcl: score the ground truth fed back (100%%)")
    p.add_argument("--predictions", help="with --bfcl: JSONL of {id, calls} to score instead of a model")


def _replicate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one seed, small budget (under ~3 minutes on 2 cores)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated subset of the rows trajectory,km,ot (default: all); "
                   "'sft' alone builds and scores the warm start only")


COMMON = {"config": _config_cls, "seed_key": "seed", "progress_key": "rl.progress"}
APP = App(
    prog="matchtir", version=__version__,
    description="Bipartite-matching turn-level rewards for tool-integrated reasoning (MatchTIR).",
    verbs=[
        Verb("train", "SFT warm start on gold traces, then GRPO with matching rewards", cmd_train,
             out_key="output_dir", model_keys=("model.path",), check=_check_data, trains=True,
             wandb_key="rl.wandb_project", dry_run=verb_dry_run("matchtir.dryrun:specs"), **COMMON),
        Verb("eval", "score a model on synthetic tool tasks or on the bundled BFCL slice", cmd_eval,
             arguments=_eval_args, check=_check_eval,
             default_out=lambda run: Path(run.cfg.output_dir) / "eval", **COMMON),
        Verb("replicate", "CPU-scale replication: trajectory vs km vs ot rows on the tool suite", cmd_replicate,
             arguments=_replicate_args, claim="none", check=_check_replicate, model_keys=("model.path",),
             default_config=lambda args: REPLICATE_CONFIGS / ("replicate_quick.yaml" if args.quick
                                                              else "replicate.yaml"),
             default_out="runs/matchtir_replicate",
             description="CPU-scale replication: trajectory vs km vs ot rows on the tool suite. --config replaces "
                         "the packaged replicate(_quick).yaml.", **COMMON),
    ],
)


def build_parser() -> argparse.ArgumentParser:
    return APP.build_parser()


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
