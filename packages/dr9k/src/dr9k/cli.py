"""Command line of `dr9k`: the DeepResearch-9K synthesis pipeline and DeepResearch-R1 training.

    dr9k synthesize [--config FILE] [--out DIR] [--stages seed,levels,filter] [key=value ...]
    dr9k stats [--config FILE] [--out DIR] [--json]
    dr9k train --config FILE [--out DIR] [--dry-run] [key=value ...]
    dr9k eval [--config FILE] --model PATH [--out DIR] [--split test|dev]
    dr9k replicate [--quick] [--out DIR] [--seed N] [--seeds K] [--rows sft,grpo,ppo]

Built on the workspace's parent CLI (`shared.cli`): `--config`, `--out` (sets `output_dir`), `--seed`,
`--print-config`, `--no-progress`, `--debug` and `key=value` overrides anywhere on the line. Before any work the
config is validated, a seed JSONL file is read record by record, model folders, endpoint models and the web-search key
are checked; every error a user can cause (a config key, a data record, an endpoint that is down, a malformed judge
reply, a web search that keeps answering 429) ends the command with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from shared.cli import App, CLIError, Run, Verb, check_file, check_model_source
from shared.retrieval.service import SearchServiceError
from shared.serving import ChatError

from dr9k import __version__

REPLICATE_CONFIGS = Path(__file__).resolve().parent / "configs"  # replicate_quick.yaml, replicate.yaml


def _config_cls():
    from dr9k.config import Dr9kConfig

    return Dr9kConfig


def _check(run: Run) -> None:
    """Checks every verb shares, before any work: endpoint models, the web-search key, a seed file record by record."""
    from dr9k.search import check_search

    cfg = run.cfg
    check_search(cfg.search)
    for name in ("teacher", "judge"):
        ep = getattr(cfg, name)
        if ep.kind == "hf":
            check_model_source(ep.path, f"{name}.path")
    if cfg.seeds.source == "jsonl":
        from dr9k.seeds import load_seeds

        check_file(cfg.seeds.path, "seeds.path")
        load_seeds(cfg.seeds, cfg.levels.levels)


def _check_synthesize(run: Run) -> None:
    from dr9k.synth import STAGES

    unknown = [s for s in _stages(run.args) if s not in STAGES]
    if unknown:
        raise CLIError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    _check(run)


def _stages(args: argparse.Namespace) -> list[str]:
    from dr9k.synth import STAGES

    return [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else list(STAGES)


def _check_train(run: Run) -> None:
    if run.args.dry_run:
        if not run.cfg.model.path:
            raise CLIError("--dry-run needs model.path (a hub id such as Qwen/Qwen2.5-3B-Instruct, or a model folder)")
        return  # the dry run reads a bundled architecture: nothing is downloaded or loaded
    check_model_source(run.cfg.model.path, "model.path")
    _check(run)


def _check_eval(run: Run) -> None:
    if not run.args.model:
        raise CLIError("give --model PATH (a saved model folder with its tokenizer)")
    check_model_source(run.args.model, "--model")
    _check(run)


def _rows(args: argparse.Namespace) -> list[str] | None:
    return [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None


def _check_replicate(run: Run) -> None:
    from dr9k.replicate import RL_ROWS

    if run.args.seeds is not None and run.args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {run.args.seeds}")
    unknown = [r for r in _rows(run.args) or [] if r not in RL_ROWS]
    if unknown:
        raise CLIError(f"--rows: unknown rows {unknown}; known: {', '.join(RL_ROWS)} (the level rows are always there)")
    check_model_source(run.cfg.model.path, "model.path")
    _check(run)


def _synth_root(cfg, out: Path) -> Path:
    return Path(cfg.synth.cache_dir).expanduser() if cfg.synth.cache_dir else out / "synth"


def cmd_synthesize(run: Run) -> int:
    from dr9k.synth import Pipeline, format_stats, stats_report

    cfg, out = run.cfg, run.out
    results = Pipeline(cfg, _synth_root(cfg, out), log=run.log).run(_stages(run.args))
    print(format_stats(stats_report(results)))
    for name, r in results.items():
        print(f"{name:<13} {'built ' if r.built else 'reused'} {r.path}")
    return 0


def cmd_stats(run: Run) -> int:
    from dr9k.synth import Pipeline, format_stats, stats_report

    cfg = run.cfg
    pipe = Pipeline(cfg, _synth_root(cfg, run.out), log=None)
    done = pipe.finished()
    if not done:
        raise ValueError(f"no finished synthesis stage for this config under {pipe.root}; run dr9k synthesize first")
    report = stats_report(done)
    if run.args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_stats(report))
        for row in pipe.status():
            print(f"{row['stage']:<13} {row['state']:<5} {row['path']}")
    return 0


def dry_run_report(cfg) -> str:
    """Validate the config and build its model on the meta device: parameters and memory per process."""
    from shared.dryrun import DryRunSpec, dry_run, format_report

    if not cfg.model.path:
        raise ValueError("--dry-run needs model.path (a hub id such as Qwen/Qwen2.5-3B-Instruct, or a model folder)")
    la = cfg.launch
    spec = DryRunSpec(model=cfg.model.path, dtype=la.dtype, world_size=la.world_size, sharding=la.sharding,
                      micro_batch=la.micro_batch, seq_len=la.seq_len, gradient_checkpointing=la.gradient_checkpointing,
                      reference_model=cfg.rl.beta > 0, rollout_tokens=la.rollout_tokens)
    report = dry_run(spec)
    critic = ""
    if cfg.algorithm == "ppo":
        critic = (f"\ncritic       {cfg.rl.critic.kind} (a separate critic LM of the same size trains beside the actor "
                  f"when kind=model: count its memory again)")
    return ("the config is valid; its model built on the meta device (no weights, no download):\n" +
            format_report(report) + critic + f"\nalgorithm    {cfg.algorithm}, lr {cfg.rl.lr}, KL {cfg.rl.beta}, "
            f"{cfg.rl.prompts_per_step} prompts x {cfg.rl.generations} rollouts, backend {cfg.rl.generator_backend}")


def cmd_train(run: Run) -> int:
    cfg = run.cfg
    if run.args.dry_run:
        print(dry_run_report(cfg))
        return 0
    import torch
    from shared.config import save_config
    from shared.eval import sha256_of, write_results

    from dr9k.endpoints import serve
    from dr9k.evaluate import evaluate, extra_metrics, summarize
    from dr9k.judge import STUB_JUDGE, grade_client, stub_reply
    from dr9k.replicate import _load as load_saved
    from dr9k.replicate import prepare
    from dr9k.train import rl_train, warm_start

    torch.set_num_threads(cfg.rl.threads)
    out = run.out
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    save_config(cfg, out)
    s = prepare(cfg, out, run.log)
    cache = Path(cfg.warm_start.cache_dir).expanduser() if cfg.warm_start.cache_dir else out / "warm_starts"
    warm = warm_start(cfg, s.train, s.corpus, cache, run.log) if not cfg.model.path or cfg.warm_start.sft.steps > 0 \
        else Path(cfg.model.path)
    rows = []
    with serve(cfg.judge, stub_reply, STUB_JUDGE, "judge") as (url, name, info):
        judge = grade_client(url, name, cfg.judge)
        model, tok = load_saved(warm)
        items = evaluate(cfg, model, tok, s.test, s.env_factory, judge, cfg.seed)
        rows.append({"method": "warm_start", "metrics": summarize(items), "extra": extra_metrics(items)})
        if cfg.rl.steps > 0:
            policy, history = rl_train(cfg, model, tok, s.train, s.env_factory, out / "rl", cfg.algorithm, cfg.seed,
                                       judge)
            from shared.atomic import save_pretrained

            save_pretrained(out / "final_model", policy, tok)
            items = evaluate(cfg, policy, tok, s.test, s.env_factory, judge, cfg.seed)
            rows.append({"method": cfg.algorithm, "metrics": summarize(items), "extra": extra_metrics(items)})
        stats = judge.stats()
    for r in rows:
        print(r["method"], " ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in r["metrics"].items()))
    data = {"name": "dr9k synthesis test split", "sha256": sha256_of(json.dumps([r["id"] for r in s.test]).encode())}
    path = write_results(out, "dr9k", __version__, "train", rows, cfg, cfg.seed, False, data, started,
                         time.perf_counter() - t0, extra={"judge": {**info, "stats": stats}, "warm_start": str(warm)})
    print(f"results: {path}")
    return 0


def cmd_eval(run: Run) -> int:
    import torch
    from shared.eval import sha256_of, write_results

    from dr9k.config import LEVELS
    from dr9k.endpoints import serve
    from dr9k.evaluate import evaluate, summarize
    from dr9k.judge import STUB_JUDGE, grade_client, stub_reply
    from dr9k.replicate import _load as load_saved
    from dr9k.replicate import prepare

    cfg, out, args = run.cfg, run.out, run.args
    model_dir = Path(args.model)
    torch.set_num_threads(cfg.rl.threads)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    s = prepare(cfg, out, run.log)
    rows = s.dev if args.split == "dev" else s.test
    with serve(cfg.judge, stub_reply, STUB_JUDGE, "judge") as (url, name, info):
        judge = grade_client(url, name, cfg.judge)
        model, tok = load_saved(model_dir)
        items = evaluate(cfg, model, tok, rows, s.env_factory, judge, cfg.seed)
        stats = judge.stats()
    table = [{"method": lv, "metrics": summarize([i for i in items if i["level"] == lv])} for lv in LEVELS
             if any(i["level"] == lv for i in items)]
    table.append({"method": "all", "metrics": summarize(items)})
    for r in table:
        print(f"{r['method']:<6}", " ".join(f"{k}={'-' if v is None else f'{v:.3f}'}" for k, v in r["metrics"].items()))
    data = {"name": f"dr9k synthesis {args.split} split", "sha256": sha256_of(json.dumps([r["id"] for r in rows]).encode())}
    path = write_results(out, "dr9k", __version__, "eval", table, cfg, cfg.seed, False, data, started,
                         time.perf_counter() - t0, extra={"judge": {**info, "stats": stats}, "model": str(model_dir)})
    print(f"results: {path}")
    return 0


def cmd_replicate(run: Run) -> int:
    from dr9k.replicate import replicate

    # replicate() loads the same config and claims the folder itself (finished parts are reused)
    path = replicate(quick=run.args.quick, out=run.out, seed=run.seed if run.seed is not None else 0,
                     config=run.config_path, overrides=run.overrides, seeds=run.args.seeds, rows=_rows(run.args),
                     log=run.log)
    doc = json.loads(Path(path).read_text())
    print(f"results: {path} ({doc['seconds']:.0f}s)")
    return 0


def _synthesize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stages", help="comma-separated stages to run (with everything before them); default: all")


def _stats_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="validate the config, build the model on the meta device, "
                   "print parameters and the GPU memory estimate per process; no training, nothing written")


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="saved causal LM folder with its tokenizer (required)")
    p.add_argument("--split", choices=("test", "dev"), default="test", help="which synthesised split to score")


def _replicate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one seed, a short warm start, 20 items per level, 3 RL steps")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated subset of sft,grpo,ppo (the level rows are always there)")


COMMON = {"config": _config_cls, "seed_key": "seed"}
APP = App(
    prog="dr9k", version=__version__,
    description="DeepResearch-9K: synthesise multi-level search questions (L1-L3) and train DeepResearch-R1 search "
                "agents (masked SFT, then GRPO, PPO or REINFORCE++).",
    errors=(ChatError, SearchServiceError),
    verbs=[
        Verb("synthesize", "run the synthesis stages (seed, levels, filter, trajectories, verdicts, calibrate); "
             "finished stages are reused", cmd_synthesize, arguments=_synthesize_args, out_key="output_dir",
             check=_check_synthesize, **COMMON),
        Verb("stats", "counts per level and drop reasons of the finished synthesis stages", cmd_stats,
             arguments=_stats_args, out_key="output_dir", claim="none", check=_check, **COMMON),
        Verb("train", "synthesis, SFT warm start on teacher trajectories, then RL (rl.steps > 0)", cmd_train,
             arguments=_train_args, out_key="output_dir", claim="none", check=_check_train, trains=True,
             wandb_key="rl.wandb_project", **COMMON),
        Verb("eval", "accuracy (judge), EM, reward, turns and hard rate of a saved agent per level", cmd_eval,
             arguments=_eval_args, check=_check_eval, default_out=lambda run: Path(run.cfg.output_dir) / "eval",
             **COMMON),
        Verb("replicate", "CPU replication: L1 > L2 > L3 for a fixed agent; GRPO/PPO reward over SFT", cmd_replicate,
             arguments=_replicate_args, claim="none", check=_check_replicate,
             default_config=lambda args: REPLICATE_CONFIGS / ("replicate_quick.yaml" if args.quick
                                                              else "replicate.yaml"),
             default_out="runs/dr9k_replicate",
             description="CPU replication: L1 > L2 > L3 for a fixed agent; GRPO/PPO reward over SFT. --config "
                         "replaces the packaged replicate(_quick).yaml.", **COMMON),
    ],
)


def build_parser() -> argparse.ArgumentParser:
    return APP.build_parser()


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
