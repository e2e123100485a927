"""Command line of `agentic-r`: the Agentic-R stages (mine, label, train-retriever), the loop, evaluation, replication.

Every subcommand takes `--config FILE` (YAML of `agentic_r.config.AgenticRConfig`), `--out DIR` (the run folder,
shared by all stages so each resumes from the files of the previous one), `--seed` and dotted `key=value`
overrides; the resolved config is written to DIR/config.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys

STEPS = {
    "train-agent": "agent.kind=tiny: train round r's agent (fresh tiny Qwen2, SFT on oracle traces, GRPO) "
    "against retriever_{r-1}",
    "mine": "agent rollouts with the current retriever, then top-k candidates per search turn",
    "label": "sub-answers, local utility (listwise judge), global utility (agent continuation), training groups",
    "train-retriever": "train retriever_r (InfoNCE) from the base encoder on round r's groups; save it and its index",
    "iterate": "all rounds: (train-agent,) mine, label and train-retriever for round 0, then round 1, ...",
    "eval": "held-out sub-query Recall@5/20 and agent EM/F1 for the base encoder and every trained round",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentic-r",
        description="Agentic-R: train the retriever of a search agent from passage utility (local + global).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, help_text in STEPS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=None, help="YAML config (default: built-in defaults)")
        p.add_argument("--out", required=True, help="run folder holding every stage's files")
        p.add_argument("--seed", type=int, default=None, help="random seed (overrides the config)")
        if name in ("train-agent", "mine", "label", "train-retriever"):
            p.add_argument("--round", type=int, default=0, help="round index (0: base retriever, 1: retriever_0)")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-4")
    rep = sub.add_parser(
        "replicate",
        help="CPU-scale replication: base vs round 0 vs round 1 (prints a table)",
        description="Run the whole loop on the synthetic knowledge base and write results.json.",
    )
    rep.add_argument("--quick", action="store_true", help="small knowledge base (a few minutes on 2 CPU cores)")
    rep.add_argument("--out", default="runs/agentic-r-replicate", help="output folder (results.json, config.yaml)")
    rep.add_argument("--seed", type=int, default=0, help="random seed")
    rep.add_argument("--config", default=None, help="YAML config to start from")
    rep.add_argument("overrides", nargs="*", help="dotted overrides, e.g. data.n_train=80")
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.dryrun import cli_hook  # `iterate --config FILE --dry-run`: size the run, run nothing

    argv = sys.argv[1:] if argv is None else argv
    code = cli_hook("agentic-r", argv, "agentic_r.config:AgenticRConfig", "agentic_r.dryrun:specs",
                    verbs=("iterate", "train-retriever"))
    if code is not None:
        return code
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as err:  # bad config, records or folders: one line, no traceback
        print(f"agentic-r: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(2)
    if args.command == "replicate":
        from agentic_r.replicate import replicate

        replicate(args.out, quick=args.quick, seed=args.seed, config=args.config, overrides=args.overrides)
        return 0
    from shared.config import claim_run_dir, load_config

    from agentic_r.config import AgenticRConfig
    from agentic_r.pipeline import Pipeline

    overrides = list(args.overrides) + ([f"seed={args.seed}"] if args.seed is not None else [])
    cfg = load_config(AgenticRConfig, args.config, overrides)
    claim_run_dir(cfg, args.out)  # stages resume from the files in --out: only for the same config
    pipe = Pipeline(cfg, args.out)
    if args.command == "train-agent":
        pipe.train_agent(args.round)
    elif args.command == "mine":
        pipe.mine(args.round)
    elif args.command == "label":
        pipe.label(args.round)
    elif args.command == "train-retriever":
        pipe.train_retriever(args.round)
    elif args.command == "iterate":
        pipe.iterate()
    elif args.command == "eval":
        results = {"base": pipe.evaluate(-1)}
        for r in range(cfg.rounds):
            if (pipe.out / f"round{r}/retriever/encoder").exists():
                results[f"round{r}"] = pipe.evaluate(r)
        print(json.dumps(results, indent=2))
    if args.command != "eval":
        stats = pipe.out / f"round{getattr(args, 'round', cfg.rounds - 1)}/stats.json"
        if stats.exists():
            print(json.dumps(json.loads(stats.read_text()), indent=2))
        else:  # train-agent with the deterministic reader: nothing to train, nothing written
            print(f"nothing to do for agent.kind={cfg.agent.kind!r}; no {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
