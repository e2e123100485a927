"""Command line of `rose`: train, eval, rollout (inspect one tree) and replicate.

    rose train --config packages/rose/configs/train_arithmetic.yaml [key=value ...] [--resume]
    rose eval --config packages/rose/configs/eval_math500.yaml model.path=runs/rose/final
    rose rollout --config packages/rose/configs/train_arithmetic.yaml --prompts 2
    rose replicate [--quick] [--out DIR] [--seed N] [key=value ...]

Built on the workspace's parent CLI (`shared.cli`): `--config`, `--out` (sets `out_dir`), `--seed`,
`--print-config`, `--no-progress`, `--debug` and `key=value` overrides anywhere on the line. The config (enums,
`RoseConfig.validate`), the data sources and the model path are checked before the warm start or any model load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.cli import App, CLIError, Run, Verb
from shared.config import config_file_overrides
from shared.dryrun import verb_dry_run

from rose import __version__

ENV_HINT = "run with HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false on machines without the hub"


def _config_cls():
    from rose.config import RoseConfig

    return RoseConfig


def _check_source(source: str, key: str) -> None:
    """arithmetic, a bundled math slice, or a JSONL file (read and checked line by line)."""
    from rose.data import EVAL_SETS, jsonl_records

    if source in EVAL_SETS:
        return
    if source.endswith(".jsonl"):
        jsonl_records(source)
        return
    raise CLIError(f"{key} {source!r}: use one of {', '.join(EVAL_SETS)} or a .jsonl path")


def _check_data(run: Run) -> None:
    _check_source(run.cfg.data.train, "data.train")
    _check_source(run.cfg.data.eval, "data.eval")


def cmd_train(run: Run) -> int:
    from rose.train import run_train

    result = run_train(run.cfg, resume=run.resume)  # metrics.jsonl + TensorBoard in out_dir (RLTrainer)
    print(json.dumps(result["metrics"], indent=1))
    print(f"wrote {Path(result['out_dir']) / 'results.json'}")
    return 0


def cmd_eval(run: Run) -> int:
    import datetime as dt
    import time

    import torch
    from shared.eval import sha256_of, write_results

    from rose.data import load_records
    from rose.evaluate import evaluate
    from rose.policy import load_policy

    cfg = run.cfg
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    torch.set_num_threads(cfg.rl.threads)
    model, tokenizer, path = load_policy(cfg)
    records = load_records(cfg.data.eval, cfg.data.n_eval, "test", 1000 + cfg.data.seed)
    metrics = evaluate(model, tokenizer, records, cfg.eval.samples, cfg.eval.temperature, cfg.eval.max_new_tokens,
                       cfg.eval.batch_size, seed=cfg.seed)
    out = run.out
    data = {"name": cfg.data.eval, "sha256": sha256_of(json.dumps(records, sort_keys=True).encode()),
            "policy": str(path)}
    write_results(out, "rose", __version__, "eval", [{"method": "policy", "metrics": metrics}], cfg, cfg.seed,
                  False, data, started, time.perf_counter() - t0)
    print(json.dumps(metrics, indent=1))
    print(f"wrote {out / 'results.json'}")
    return 0


def cmd_rollout(run: Run) -> int:
    import torch
    from shared.generation import HFGenerator

    from rose.data import load_records
    from rose.policy import load_policy
    from rose.rollout import SamplerSettings, TreeSampler

    cfg = run.cfg
    torch.set_num_threads(cfg.rl.threads)
    model, tokenizer, _ = load_policy(cfg)
    recs = load_records(cfg.data.train, run.args.prompts, "train", cfg.data.seed)
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


def cmd_replicate(run: Run) -> int:
    from rose.replicate import run_replicate

    # run_replicate() rebuilds the same config (schedule presets, seed, these overrides) and writes config.yaml
    run_replicate(quick=run.args.quick, out_dir=run.out, seed=run.seed if run.seed is not None else 0,
                  overrides=_file_overrides(run.args) + run.overrides)
    return 0


def _file_overrides(args: argparse.Namespace) -> list[str]:
    return config_file_overrides(args.config) if args.config else []


def _presets(args: argparse.Namespace) -> list[str]:
    from rose.replicate import BASE, FULL, QUICK

    return [*BASE, *(QUICK if args.quick else FULL), *_file_overrides(args)]


def _prompts_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", type=int, default=2, help="how many training prompts to show")


def _quick_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small run (< ~3 min on 2 CPU cores), one seed")


COMMON = {"config": _config_cls, "seed_key": "seed", "model_keys": ("model.path",), "check": _check_data,
          "progress_key": "rl.progress"}
APP = App(
    prog="rose", version=__version__,
    description="ROSE: RLVR with tree rollouts branching at semantically uncertain tokens and length-aware segment "
                "advantages. " + ENV_HINT + ".",
    verbs=[
        Verb("train", "train a policy with tree rollouts and segment advantages (or GRPO)", cmd_train,
             out_key="out_dir", resume=True, trains=True, wandb_key="rl.wandb_project",
             dry_run=verb_dry_run("rose.dryrun:specs"), **COMMON),
        Verb("eval", "pass@1 over k samples, mean response length, answer diversity", cmd_eval, out_key="out_dir",
             **COMMON),
        Verb("rollout", "sample and print rollout trees for a few prompts (inspection)", cmd_rollout,
             arguments=_prompts_arg, out="none", **COMMON),
        Verb("replicate", "GRPO vs ROSE at the same rollout budget on synthetic arithmetic", cmd_replicate,
             arguments=_quick_arg, presets=_presets, claim="none", default_out="runs/rose_replicate",
             description="GRPO vs ROSE at the same rollout budget on synthetic arithmetic. --seed N: first seed "
                         "(the full run uses N, N+1, N+2); --config FILE: its keys replace the schedule presets.",
             **COMMON),
    ],
)


def build_parser() -> argparse.ArgumentParser:
    return APP.build_parser()


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
