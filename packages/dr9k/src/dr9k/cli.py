"""Command line of `dr9k`: the DeepResearch-9K synthesis pipeline and DeepResearch-R1 training.

    dr9k synthesize --config FILE --out DIR [--stages seed,levels,filter] [key=value ...]
    dr9k stats --config FILE --out DIR
    dr9k train --config FILE --out DIR [--dry-run] [key=value ...]
    dr9k eval --config FILE --model PATH --out DIR
    dr9k replicate [--quick] [--out DIR] [--seed N] [--seeds K] [--rows sft,grpo,ppo]

Every error a user can cause (a config key, a data record, an endpoint that is down, a web search that keeps
answering 429) ends the command with one line on stderr and exit status 2, before heavy work where it can.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from dr9k import __version__


def _load(args: argparse.Namespace, overrides: list[str] | None = None):
    from shared.config import load_config

    from dr9k.config import Dr9kConfig

    items = list(args.overrides) + (overrides or [])
    if getattr(args, "seed", None) is not None:
        items.append(f"seed={args.seed}")
    cfg = load_config(Dr9kConfig, args.config, items)
    cfg.validate()
    from dr9k.search import check_search

    check_search(cfg.search)
    return cfg


def _out(args: argparse.Namespace, cfg) -> Path:
    return Path(args.out or cfg.output_dir)


def _synth_root(cfg, out: Path) -> Path:
    return Path(cfg.synth.cache_dir).expanduser() if cfg.synth.cache_dir else out / "synth"


def cmd_synthesize(args: argparse.Namespace) -> int:
    from shared.config import save_config

    from dr9k.synth import STAGES, Pipeline, format_stats, stats_report

    cfg = _load(args)
    out = _out(args, cfg)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else list(STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    save_config(cfg, out)
    results = Pipeline(cfg, _synth_root(cfg, out), log=_log).run(stages)
    print(format_stats(stats_report(results)))
    for name, r in results.items():
        print(f"{name:<13} {'built ' if r.built else 'reused'} {r.path}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from dr9k.synth import Pipeline, format_stats, stats_report

    cfg = _load(args)
    pipe = Pipeline(cfg, _synth_root(cfg, _out(args, cfg)), log=None)
    done = pipe.finished()
    if not done:
        raise ValueError(f"no finished synthesis stage for this config under {pipe.root}; run dr9k synthesize first")
    report = stats_report(done)
    if args.json:
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
    return (format_report(report) + critic + f"\nalgorithm    {cfg.algorithm}, lr {cfg.rl.lr}, KL {cfg.rl.beta}, "
            f"{cfg.rl.prompts_per_step} prompts x {cfg.rl.generations} rollouts, backend {cfg.rl.generator_backend}")


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if args.dry_run:
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
    out = _out(args, cfg)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    save_config(cfg, out)
    s = prepare(cfg, out, _log)
    cache = Path(cfg.warm_start.cache_dir).expanduser() if cfg.warm_start.cache_dir else out / "warm_starts"
    warm = warm_start(cfg, s.train, s.corpus, cache, _log) if not cfg.model.path or cfg.warm_start.sft.steps > 0 \
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


def cmd_eval(args: argparse.Namespace) -> int:
    import torch
    from shared.config import save_config
    from shared.eval import sha256_of, write_results

    from dr9k.config import LEVELS
    from dr9k.endpoints import serve
    from dr9k.evaluate import evaluate, summarize
    from dr9k.judge import STUB_JUDGE, grade_client, stub_reply
    from dr9k.replicate import _load as load_saved
    from dr9k.replicate import prepare

    cfg = _load(args)
    model_dir = Path(args.model)
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"--model {model_dir}: not a saved model folder (no config.json)")
    torch.set_num_threads(cfg.rl.threads)
    out = _out(args, cfg) / "eval" if not args.out else Path(args.out)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    save_config(cfg, out)
    s = prepare(cfg, out, _log)
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


def cmd_replicate(args: argparse.Namespace) -> int:
    from dr9k.replicate import replicate

    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    path = replicate(quick=args.quick, out=args.out, seed=args.seed or 0, config=args.config,
                     overrides=args.overrides, seeds=args.seeds, rows=rows, log=_log)
    doc = json.loads(Path(path).read_text())
    print(f"results: {path} ({doc['seconds']:.0f}s)")
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dr9k", description="DeepResearch-9K: synthesise multi-level search "
                                     "questions (L1-L3) and train DeepResearch-R1 search agents (SFT, GRPO, PPO).")
    parser.add_argument("--version", action="version", version=f"dr9k {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, config_required: bool = False) -> None:
        p.add_argument("--config", required=config_required, help="YAML config (see packages/dr9k/configs/)")
        p.add_argument("--out", help="output folder (default: output_dir of the config)")
        p.add_argument("--seed", type=int, help="random seed (overrides the config)")
        p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. seeds.source=hotpotqa")

    p = sub.add_parser("synthesize", help="run the synthesis stages (seed, levels, filter, trajectories, verdicts, "
                       "calibrate); finished stages are reused")
    common(p)
    p.add_argument("--stages", help="comma-separated stages to run (with everything before them); default: all")
    p.set_defaults(fn=cmd_synthesize)

    p = sub.add_parser("stats", help="counts per level and drop reasons of the finished synthesis stages")
    common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(fn=cmd_stats)

    p = sub.add_parser("train", help="synthesis, SFT warm start on teacher trajectories, then RL (rl.steps > 0)")
    common(p, config_required=True)
    p.add_argument("--dry-run", action="store_true", help="validate the config, build the model on the meta device, "
                   "print parameters and the GPU memory estimate per process; no training")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="accuracy (judge), EM, reward, turns and hard rate of a saved agent per level")
    common(p)
    p.add_argument("--model", required=True, help="saved causal LM folder with its tokenizer")
    p.add_argument("--split", choices=("test", "dev"), default="test", help="which synthesised split to score")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("replicate", help="CPU replication: L1>L2>L3 for a fixed agent; GRPO/PPO reward over SFT")
    p.add_argument("--quick", action="store_true", help="one seed, 100 items per level, 3 RL steps (warm start cached)")
    p.add_argument("--out", default="runs/dr9k_replicate", help="output folder")
    p.add_argument("--seed", type=int, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, help="number of seeds (default 1 with --quick, else 3)")
    p.add_argument("--rows", help="comma-separated subset of sft,grpo,ppo (the level rows are always there)")
    p.add_argument("--config", help="config replacing the packaged replicate config")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(fn=cmd_replicate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.retrieval.service import SearchServiceError
    from shared.serving import ChatError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, KeyError, OSError, ChatError, SearchServiceError) as err:  # user-caused: one line
        message = " ".join(str(err.args[0] if isinstance(err, KeyError) and err.args else err).split())
        print(f"dr9k {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
