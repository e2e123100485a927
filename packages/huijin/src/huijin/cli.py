"""Command line of `huijin`: run a staged recipe, show its status, evaluate a model, replicate the ablation claim.

    huijin run --config RECIPE [--out DIR] [--until STAGE] [--seed N] [--dry-run] [key=value ...]
    huijin train --config RECIPE ...              (the same as run, under the package contract's name)
    huijin status --config RECIPE [--out DIR]
    huijin eval --config RECIPE --model PATH [--out DIR]
    huijin replicate [--quick] [--out DIR] [--seed N] [--seeds N] [--rows full,no_reasoning_rl]

Built on the workspace's parent CLI (`shared.cli`): `--config`, `--out` (sets the recipe's `output_dir`), `--seed`,
`--print-config`, `--no-progress`, `--debug` and `key=value` overrides anywhere on the line. The recipe is validated
(stage and key named), its file sources read line by line, `--until` and model paths checked before any model is
built; every known error (a recipe key, a broken source file, a missing checkpoint) is one line on stderr, exit 2.
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

from huijin import __version__

REPLICATE_CONFIGS = Path(__file__).resolve().parent / "configs"  # replicate_quick.yaml, replicate.yaml


def _recipe_cls():
    from huijin.recipe import Recipe

    return Recipe


def _check_sources(run: Run) -> None:
    """Every file source a stage draws from is read and validated record by record (DataError: file, line, field)."""
    from huijin.data import read_source_file

    used = {source for spec in run.cfg.stages.values() for source in spec.mixture}
    for name, source in run.cfg.sources.items():
        if name in used:
            read_source_file(name, source.path, source.kind)


def _check_run(run: Run) -> None:
    until = run.args.until
    if until is not None and until not in run.cfg.stages:
        raise CLIError(f"--until {until!r} is not a stage of the recipe ({', '.join(run.cfg.stages)})")
    check_model_source(run.cfg.model.path, "model.path")
    _check_sources(run)


def _check_eval(run: Run) -> None:
    if not run.args.model:
        raise CLIError("give --model PATH (a saved stage folder or any causal LM folder with its tokenizer)")
    check_model_source(run.args.model, "--model")


def _rows(args: argparse.Namespace) -> list[str] | None:
    return [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None


def _check_replicate(run: Run) -> None:
    from huijin.replicate import ROWS

    rows = _rows(run.args)
    if rows is not None and ("full" not in rows or any(r not in ROWS for r in rows)):
        raise CLIError(f"--rows: rows must include 'full' and come from {list(ROWS)}; got {rows}")
    if run.args.seeds is not None and run.args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {run.args.seeds}")
    check_model_source(run.cfg.model.path, "model.path")
    _check_sources(run)


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
    text = "\n".join([f"the config is valid: stages {({n: s.trainer for n, s in recipe.stages.items()})}",
                      format_report(report),
                      f"-> {total_gib:.1f} GiB of a {g.gpu_gib:g} GiB card per process: "
                      f"{'fits' if total_gib <= g.gpu_gib else 'does NOT fit'} (an estimate, not a measurement)"])
    return report, text


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_run(run: Run) -> int:
    from shared.atomic import write_json
    from shared.config import claim_run_dir

    from huijin.plot import draw_stage_tables
    from huijin.recipe import BENCHMARKS
    from huijin.runner import format_table, run_recipe

    recipe, out = run.cfg, run.out
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(recipe, out)  # finished stages in out are reused: only for the same recipe
    t0 = time.perf_counter()
    result = run_recipe(recipe, out / "stages", until=run.args.until, log=_log)
    table = result.table()
    print(format_table(table))
    picture = draw_stage_tables({"recipe": table}, BENCHMARKS, out / "stage_table.png", f"huijin {__version__}")
    write_json(out / "stage_table.json", {"table": table, "built": result.built, "seconds": time.perf_counter() - t0,
                                          "folders": {n: str(result.results[n].path) for n in result.order},
                                          "evals": result.evals()})
    print(f"built: {result.built or 'nothing (all stages reused)'}\ntable: {out / 'stage_table.json'}\n"
          f"picture: {picture}")
    return 0


def cmd_status(run: Run) -> int:
    from huijin.runner import recipe_status

    for row in recipe_status(run.cfg, run.out / "stages"):
        print(f"{row['stage']:<22} {row['state']:<5} {row['key']}  {row['path']}")
    return 0


def cmd_eval(run: Run) -> int:
    from shared.eval import sha256_of, write_results

    from huijin.evaluate import evaluate_model
    from huijin.runner import load_stage_model

    recipe, out, model_path = run.cfg, run.out, Path(run.args.model)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    model, tok = load_stage_model(model_path.name, model_path)
    result = evaluate_model(model, tok, recipe, final=True)
    print(" ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in result["metrics"].items()))
    data = {"name": "synthetic finance suite, calibration arithmetic, TAT-QA dev arithmetic",
            "sha256": sha256_of(json.dumps([recipe.suite.seed, recipe.suite.n_companies]).encode())}
    path = write_results(out, "huijin", __version__, "eval", [{"method": model_path.name, "metrics": result["metrics"]}],
                         recipe, recipe.seed, False, data, started, time.perf_counter() - t0, extra=result["extra"])
    print(f"results: {path}")
    return 0


def cmd_replicate(run: Run) -> int:
    from huijin.replicate import replicate

    # replicate() loads the same recipe and claims the folder itself (finished stages are reused)
    path = replicate(quick=run.args.quick, out=run.out, seed=run.seed if run.seed is not None else 0,
                     config=run.config_path, overrides=run.overrides, seeds=run.args.seeds, rows=_rows(run.args),
                     log=_log)
    doc = json.loads(Path(path).read_text())
    print(f"results: {path} ({doc['seconds']:.0f}s)")
    return 0


def cmd_dry_run(run: Run) -> int:
    """`--dry-run` (the parent CLI runs it once the recipe is loaded and validated, before any other check): build
    the model on the meta device, print parameters and the GPU memory estimate per process; nothing is written."""
    print(dry_run(run.cfg)[1])
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--until", help="stop after this stage (the rest can be run later; finished stages are kept)")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a saved model folder (e.g. a stage folder) with its tokenizer")


def _replicate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one seed, short stages and small evaluations")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated rows: full (always), no_reasoning_rl, no_agentic_rl")


COMMON = {"config": _recipe_cls, "seed_key": "seed", "out_key": "output_dir"}
RUN = {"arguments": _run_args, "check": _check_run, "claim": "none", "dry_run": cmd_dry_run, **COMMON}
APP = App(
    prog="huijin", version=__version__,
    description="Staged domain training (QianfanHuijin): CPT -> SFT -> reasoning RL -> agentic RL -> general RL, "
                "checkpointed and evaluated per stage.",
    verbs=[
        Verb("run", "run (or resume) a recipe's stages; prints the stage x benchmark table", cmd_run, **RUN),
        Verb("train", "the same as run: train a recipe's stages", cmd_run, **RUN),
        Verb("status", "which stages of a recipe are finished in the output folder (builds nothing)", cmd_status,
             claim="none", **COMMON),
        Verb("eval", "score a saved model on every benchmark of the stage table", cmd_eval, arguments=_eval_args,
             check=_check_eval, config=_recipe_cls, seed_key="seed",
             default_out=lambda run: Path(run.cfg.output_dir) / "eval"),
        Verb("replicate", "CPU-scale replication: full vs no_reasoning_rl on shared stage-1/2 folders", cmd_replicate,
             arguments=_replicate_args, check=_check_replicate, claim="none", config=_recipe_cls,
             default_config=lambda args: REPLICATE_CONFIGS / ("replicate_quick.yaml" if args.quick
                                                              else "replicate.yaml"),
             default_out="runs/huijin_replicate",
             description="CPU-scale replication: full vs no_reasoning_rl on shared stage-1/2 folders. --config "
                         "replaces the packaged replicate(_quick).yaml recipe."),
    ],
)


def build_parser() -> argparse.ArgumentParser:
    return APP.build_parser()


def positional_recipe(argv: list[str]) -> list[str]:
    """`huijin run RECIPE.yaml` (0.1's spelling) becomes `--config RECIPE.yaml`, with a line saying so."""
    if not argv or argv[0] not in ("run", "train", "status") or "--config" in argv:
        return argv
    bare = [i for i, a in enumerate(argv[1:], 1) if a.endswith((".yaml", ".yml")) and "=" not in a
            and not argv[i - 1].startswith("--")]
    if len(bare) != 1:
        return argv
    i = bare[0]
    print(f"huijin {argv[0]}: a bare recipe path is deprecated and goes in the next version; use --config {argv[i]}",
          file=sys.stderr)
    return [*argv[:i], "--config", argv[i], *argv[i + 1:]]


def main(argv: list[str] | None = None) -> int:
    return APP.main(positional_recipe(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
