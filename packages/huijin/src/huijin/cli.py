"""Command line of `huijin`: run a staged recipe, show its status, evaluate a model, replicate the ablation claim.

    huijin run RECIPE [--out DIR] [--until STAGE] [--seed N] [--dry-run] [key=value ...]
    huijin train --config RECIPE ...              (the same as run, under the package contract's name)
    huijin status RECIPE [--out DIR]
    huijin eval --config RECIPE --model PATH [--out DIR]
    huijin replicate [--quick] [--out DIR] [--seed N] [--seeds N] [--rows full,no_reasoning_rl]

Every known error (a recipe key, a missing source file, a broken checkpoint) is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from huijin import __version__


def _recipe(path: str | None, overrides: list[str], seed: int | None) -> Any:
    from huijin.recipe import load_recipe

    if path is None:
        raise ValueError("give the recipe: huijin run RECIPE (or --config RECIPE)")
    items = list(overrides) + ([f"seed={seed}"] if seed is not None else [])
    return load_recipe(path, items)


def dry_run(recipe: Any) -> tuple[dict[str, Any], str]:
    """Validate the recipe, build its model on the meta device (a bundled architecture, a local folder, or the CPU
    calibration model) and estimate one training process's GPU memory (`shared.dryrun`); returns (report, text)."""
    from shared.dryrun import DryRunSpec, build_on_meta, estimate_memory, format_report
    from shared.dryrun import dry_run as core_dry_run

    g = recipe.gpu
    beta = any(s.rl is not None and s.rl.beta > 0 for s in recipe.stages.values())
    spec = DryRunSpec(model=recipe.model.path or "tiny calibration model (qwen2, character tokenizer)",
                      world_size=g.gpus, sharding=g.sharding, micro_batch=g.micro_batch, seq_len=g.seq_len,
                      gradient_checkpointing=g.gradient_checkpointing, reference_model=beta,
                      rollout_tokens=g.rollout_tokens)
    if recipe.model.path:
        report = core_dry_run(spec)
    else:  # the calibration model is built on the fly, so its config is made here, not read from a folder
        from dataclasses import asdict

        from shared.modeling.tiny import build_tokenizer
        from transformers import Qwen2Config

        from huijin.trainers import EXTRA_TAGS

        m = recipe.model
        config = Qwen2Config(vocab_size=len(build_tokenizer(kind="char", extra_tags=EXTRA_TAGS)), hidden_size=m.hidden,
                             intermediate_size=m.ffn, num_hidden_layers=m.layers, num_attention_heads=m.heads,
                             num_key_value_heads=m.heads, max_position_embeddings=m.max_positions,
                             tie_word_embeddings=True)
        total = sum(p.numel() for p in build_on_meta(config).parameters())
        dims = {"hidden": m.hidden, "layers": m.layers, "vocab": config.vocab_size, "kv_width": m.hidden}
        report = {"spec": asdict(spec), "architecture": "Qwen2ForCausalLM", "parameters": total,
                  "trainable_parameters": total, "dims": dims, "memory_gib": estimate_memory(spec, total, total, dims)}
    total_gib = report["memory_gib"]["total"]
    text = "\n".join([f"recipe OK: stages {({n: s.trainer for n, s in recipe.stages.items()})}", format_report(report),
                      f"-> {total_gib:.1f} GiB of a {g.gpu_gib:g} GiB card per process: "
                      f"{'fits' if total_gib <= g.gpu_gib else 'does NOT fit'} (an estimate, not a measurement)"])
    return report, text


def cmd_run(args: argparse.Namespace) -> int:
    from shared.atomic import write_json
    from shared.config import claim_run_dir

    from huijin.plot import draw_stage_tables
    from huijin.recipe import BENCHMARKS
    from huijin.runner import format_table, run_recipe

    recipe = _recipe(args.recipe or args.config, args.overrides, args.seed)
    if args.dry_run:
        print(dry_run(recipe)[1])
        return 0
    out = Path(args.out or recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(recipe, out)
    t0 = time.perf_counter()
    run = run_recipe(recipe, out / "stages", until=args.until, log=lambda m: print(m, file=sys.stderr, flush=True))
    table = run.table()
    print(format_table(table))
    picture = draw_stage_tables({"recipe": table}, BENCHMARKS, out / "stage_table.png", f"huijin {__version__}")
    write_json(out / "stage_table.json", {"table": table, "built": run.built, "seconds": time.perf_counter() - t0,
                                          "folders": {n: str(run.results[n].path) for n in run.order},
                                          "evals": run.evals()})
    print(f"built: {run.built or 'nothing (all stages reused)'}\ntable: {out / 'stage_table.json'}\n"
          f"picture: {picture}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from huijin.runner import recipe_status

    recipe = _recipe(args.recipe or args.config, args.overrides, args.seed)
    out = Path(args.out or recipe.output_dir)
    for row in recipe_status(recipe, out / "stages"):
        print(f"{row['stage']:<22} {row['state']:<5} {row['key']}  {row['path']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from shared.config import save_config
    from shared.eval import sha256_of, write_results

    from huijin.evaluate import evaluate_model
    from huijin.runner import load_stage_model

    recipe = _recipe(args.config, args.overrides, args.seed)
    if not args.model:
        raise ValueError("give --model PATH (a saved stage folder or any causal LM folder with its tokenizer)")
    out = Path(args.out or Path(recipe.output_dir) / "eval")
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    save_config(recipe, out)
    model, tok = load_stage_model(Path(args.model).name, Path(args.model))
    result = evaluate_model(model, tok, recipe, final=True)
    print(" ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in result["metrics"].items()))
    data = {"name": "synthetic finance suite, calibration arithmetic, TAT-QA dev arithmetic",
            "sha256": sha256_of(json.dumps([recipe.suite.seed, recipe.suite.n_companies]).encode())}
    path = write_results(out, "huijin", __version__, "eval", [{"method": Path(args.model).name,
                                                               "metrics": result["metrics"]}],
                         recipe, recipe.seed, False, data, started, time.perf_counter() - t0, extra=result["extra"])
    print(f"results: {path}")
    return 0


def cmd_replicate(args: argparse.Namespace) -> int:
    from huijin.replicate import replicate

    rows = args.rows.split(",") if args.rows else None
    path = replicate(quick=args.quick, out=args.out, seed=args.seed if args.seed is not None else 0,
                     config=args.config, overrides=args.overrides, seeds=args.seeds, rows=rows,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    doc = json.loads(Path(path).read_text())
    print(f"results: {path} ({doc['seconds']:.0f}s)")
    return 0


def _common(p: argparse.ArgumentParser, recipe_arg: bool) -> None:
    if recipe_arg:
        p.add_argument("recipe", nargs="?", help="recipe YAML (see packages/huijin/configs/recipe.yaml)")
    p.add_argument("--config", help="recipe YAML (the same as the positional RECIPE)")
    p.add_argument("--out", help="output folder (default: the recipe's output_dir)")
    p.add_argument("--seed", type=int, help="seed (overrides the recipe's)")


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command (for --help); `main` parses a command's line with that command's own parser,
    intermixed, so overrides may come before or after the flags."""
    parser = argparse.ArgumentParser(
        prog="huijin", description="Staged domain training (QianfanHuijin): CPT -> SFT -> reasoning RL -> agentic RL "
                                   "-> general RL, checkpointed and evaluated per stage.")
    parser.add_argument("--version", action="version", version=f"huijin {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "run (or resume) a recipe's stages; prints the stage x benchmark table"),
                            ("train", "the same as run: train a recipe's stages")):
        p = sub.add_parser(name, help=help_text)
        _common(p, recipe_arg=True)
        p.add_argument("--until", help="stop after this stage (the rest can be run later; finished stages are kept)")
        p.add_argument("--dry-run", action="store_true",
                       help="validate the recipe, build the model on the meta device, print parameters and the "
                            "GPU memory estimate per process; trains nothing")
        p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. stages.reasoning_rl.rl.lr=1e-5")
        p.set_defaults(fn=cmd_run)
    p = sub.add_parser("status", help="which stages of a recipe are finished in the output folder (builds nothing)")
    _common(p, recipe_arg=True)
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("eval", help="score a saved model on every benchmark of the stage table")
    _common(p, recipe_arg=False)
    p.add_argument("--model", help="a saved model folder (e.g. a stage folder)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. eval.tatqa_numeric=0")
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser("replicate", help="CPU-scale replication: full vs no_reasoning_rl on shared stage-1/2 folders")
    p.add_argument("--quick", action="store_true", help="one seed, short stages and small evaluations")
    p.add_argument("--out", default="runs/huijin_replicate", help="output folder")
    p.add_argument("--seed", type=int, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated rows: full (always), no_reasoning_rl, no_agentic_rl")
    p.add_argument("--config", help="recipe replacing the packaged replicate recipe")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(fn=cmd_replicate)
    parser.commands = sub.choices  # type: ignore[attr-defined]
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.dryrun import DryRunError

    from huijin.runner import CheckpointError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = parser.commands  # type: ignore[attr-defined]
    if argv and argv[0] in commands:
        args = commands[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
    else:
        args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, CheckpointError, DryRunError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"huijin {args.command}: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
