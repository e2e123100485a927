"""Command line of `rose`: train, eval, rollout (inspect one tree) and replicate.

    rose train --config packages/rose/configs/train_arithmetic.yaml [key=value ...] [--resume]
    rose eval --config packages/rose/configs/eval_math.yaml model.path=runs/rose/final
    rose rollout --config packages/rose/configs/train_arithmetic.yaml --prompts 2
    rose replicate [--quick] [--out DIR] [--seed N] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ENV_HINT = "run with HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false on machines without the hub"


def _load(args: argparse.Namespace):
    from shared.config import load_config

    from rose.config import RoseConfig

    cfg = load_config(RoseConfig, args.config, list(args.overrides))
    cfg.validate()
    return cfg


def _cmd_train(args: argparse.Namespace) -> int:
    from rose.train import run_train

    cfg = _load(args)
    result = run_train(cfg, resume=args.resume)
    print(json.dumps(result["metrics"], indent=1))
    print(f"wrote {Path(result['out_dir']) / 'results.json'}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import datetime as dt
    import time

    import torch
    from shared.config import save_config
    from shared.eval import sha256_of, write_results

    from rose import __version__
    from rose.data import load_records
    from rose.evaluate import evaluate
    from rose.policy import load_policy

    cfg = _load(args)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    torch.set_num_threads(cfg.rl.threads)
    model, tokenizer, path = load_policy(cfg)
    records = load_records(cfg.data.eval, cfg.data.n_eval, "test", 1000 + cfg.data.seed)
    metrics = evaluate(model, tokenizer, records, cfg.eval.samples, cfg.eval.temperature, cfg.eval.max_new_tokens,
                       cfg.eval.batch_size, seed=cfg.seed)
    out = Path(cfg.out_dir)
    save_config(cfg, out)
    data = {"name": cfg.data.eval, "sha256": sha256_of(json.dumps(records, sort_keys=True).encode()),
            "policy": str(path)}
    write_results(out, "rose", __version__, "eval", [{"method": "policy", "metrics": metrics}], cfg, cfg.seed,
                  False, data, started, time.perf_counter() - t0)
    print(json.dumps(metrics, indent=1))
    print(f"wrote {out / 'results.json'}")
    return 0


def _cmd_rollout(args: argparse.Namespace) -> int:
    import torch
    from shared.generation import HFGenerator

    from rose.data import load_records
    from rose.policy import load_policy
    from rose.rollout import SamplerSettings, TreeSampler

    cfg = _load(args)
    torch.set_num_threads(cfg.rl.threads)
    model, tokenizer, _ = load_policy(cfg)
    recs = load_records(cfg.data.train, args.prompts, "train", cfg.data.seed)
    settings = SamplerSettings(mode=cfg.rose.mode, epsilon=cfg.rose.epsilon, top_k=cfg.rose.top_k,
                               score=cfg.rose.score, max_new_tokens=cfg.rl.max_new_tokens,
                               temperature=cfg.rl.temperature)
    sampler = TreeSampler(HFGenerator(model, tokenizer), settings, lambda: model.get_input_embeddings().weight)
    torch.manual_seed(cfg.seed)
    prompts = [tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in recs]
    for rec, tree in zip(recs, sampler.sample(prompts, cfg.rl.generations)):
        print(f"== {rec['prompt']!r} (gold {rec['answer']}): generated {tree.generated_tokens} of "
              f"{tree.response_tokens} response tokens")
        for i, r in enumerate(tree.rollouts):
            origin = "root" if r.parent is None else f"from #{r.parent} at {r.branch_pos}"
            print(f"  #{i} [{origin:>13}] {r.text!r}")
    return 0


def _cmd_replicate(args: argparse.Namespace) -> int:
    from rose.replicate import run_replicate

    run_replicate(quick=args.quick, out_dir=args.out, seed=args.seed, overrides=list(args.overrides))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rose",
        description="ROSE: RLVR with tree rollouts branching at semantically uncertain tokens and length-aware "
                    "segment advantages. " + ENV_HINT + ".",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("--config", required=required, help="YAML config (first line: the command that runs it)")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rose.epsilon=0.3 rl.steps=50")

    p = sub.add_parser("train", help="train a policy with tree rollouts and segment advantages (or GRPO)")
    with_config(p)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in out_dir")
    p.set_defaults(fn=_cmd_train)

    p = sub.add_parser("eval", help="pass@1 over k samples, mean response length, answer diversity")
    with_config(p)
    p.set_defaults(fn=_cmd_eval)

    p = sub.add_parser("rollout", help="sample and print rollout trees for a few prompts (inspection)")
    with_config(p)
    p.add_argument("--prompts", type=int, default=2, help="how many training prompts to show")
    p.set_defaults(fn=_cmd_rollout)

    p = sub.add_parser("replicate", help="GRPO vs ROSE at the same rollout budget on synthetic arithmetic")
    p.add_argument("--quick", action="store_true", help="small run (< ~3 min on 2 CPU cores), one seed")
    p.add_argument("--out", default="runs/rose_replicate", help="output folder for results.json and config.yaml")
    p.add_argument("--seed", type=int, default=0, help="first seed (the full run uses seed, seed+1, seed+2)")
    p.add_argument("overrides", nargs="*", help="dotted overrides of the replicate config, e.g. rl.steps=20")
    p.set_defaults(fn=_cmd_replicate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.dryrun import cli_hook  # `train --config FILE --dry-run`: size the run, run nothing

    argv = sys.argv[1:] if argv is None else argv
    code = cli_hook("rose", argv, "rose.config:RoseConfig", "rose.dryrun:specs", verbs=("train",))
    if code is not None:
        return code
    args = build_parser().parse_args(argv)
    from benchmarks.data import DataError
    from shared.config import ConfigError

    try:
        return args.fn(args)
    except (ConfigError, DataError, FileNotFoundError, FileExistsError) as err:
        print(f"rose {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
