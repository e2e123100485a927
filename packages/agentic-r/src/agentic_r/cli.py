"""Command line of `agentic-r`: the Agentic-R stages (mine, label, train-retriever), the loop, evaluation, replication.

Built on the workspace's parent CLI (`shared.cli`). Every subcommand takes `--config FILE` (YAML of
`agentic_r.config.AgenticRConfig`), `--out DIR` (the run folder, shared by all stages so each resumes from the files
of the previous one), `--seed`, `--print-config`, `--no-progress`, `--debug` and dotted `key=value` overrides
anywhere on the line. The roles' kinds and model paths, the encoder, and the stage files already in DIR are checked
before any work; the resolved config is then written to DIR/config.yaml, and a folder holding a run with another
config is refused (its stage files would be reused).
"""

from __future__ import annotations

import argparse
import json
import sys

from shared.cli import App, CLIError, Run, Verb, check_encoder_source, check_model_source
from shared.dryrun import verb_dry_run

from agentic_r import __version__

STEPS = {
    "train-agent": "agent.kind=tiny: train round r's agent (fresh tiny Qwen2, SFT on oracle traces, GRPO) "
    "against retriever_{r-1}",
    "mine": "agent rollouts with the current retriever, then top-k candidates per search turn",
    "label": "sub-answers, local utility (listwise judge), global utility (agent continuation), training groups",
    "train-retriever": "train retriever_r (InfoNCE) from the base encoder on round r's groups; save it and its index",
    "iterate": "all rounds: (train-agent,) mine, label and train-retriever for round 0, then round 1, ...",
    "eval": "held-out sub-query Recall@5/20 and agent EM/F1 for the base encoder and every trained round",
}
ROLE_KINDS = {"agent": ("reader", "tiny", "hf"), "judge": ("lexical", "hf", "endpoint"),
              "sub_answers": ("reader", "hf", "endpoint")}


def _config_cls():
    from agentic_r.config import AgenticRConfig

    return AgenticRConfig


def _check_config(run: Run) -> None:
    """Each role's kind and model, the base encoder and `train_layers`, before any model or service starts."""
    cfg = run.cfg
    for role, kinds in ROLE_KINDS.items():
        s = getattr(cfg, role)
        if s.kind not in kinds:
            raise CLIError(f"{role}.kind {s.kind!r} is not one of {list(kinds)} for this role")
        if s.kind == "hf":
            if not s.path:
                raise CLIError(f"{role}.kind 'hf' needs {role}.path (a model folder or hub id)")
            check_model_source(s.path, f"{role}.path")
        if s.kind == "endpoint" and not (s.base_url and s.model):
            raise CLIError(f"{role}.kind 'endpoint' needs {role}.base_url and {role}.model")
    layers = cfg.retriever.train_layers
    if layers != "all" and not (layers.isdigit() and int(layers) > 0):
        raise CLIError(f"retriever.train_layers must be a positive number of top layers or 'all', got {layers!r}")
    check_encoder_source(cfg.retriever.base_model, "retriever.base_model")
    if run.out is not None and (run.out / "data").is_dir():  # a run folder to resume: its data files must read
        from agentic_r.data import read_jsonl, read_questions

        if (run.out / "data/corpus.jsonl").is_file():
            read_jsonl(run.out / "data/corpus.jsonl", required=("id", "contents"))
        for name in ("train", "test"):
            if (run.out / f"data/{name}.jsonl").is_file():
                read_questions(run.out / f"data/{name}.jsonl")


def _threads() -> None:
    import torch

    torch.set_num_threads(2)


def cmd_stage(run: Run) -> int:
    from agentic_r.pipeline import Pipeline

    _threads()
    cfg, command = run.cfg, run.verb
    pipe = Pipeline(cfg, run.out, progress=run.progress)
    if command == "train-agent":
        pipe.train_agent(run.args.round)
    elif command == "mine":
        pipe.mine(run.args.round)
    elif command == "label":
        pipe.label(run.args.round)
    elif command == "train-retriever":
        pipe.train_retriever(run.args.round)
    elif command == "iterate":
        pipe.iterate()
    elif command == "eval":
        results = {"base": pipe.evaluate(-1)}
        for r in range(cfg.rounds):
            if (pipe.out / f"round{r}/retriever/encoder").exists():
                results[f"round{r}"] = pipe.evaluate(r)
        print(json.dumps(results, indent=2))
        return 0
    stats = pipe.out / f"round{getattr(run.args, 'round', cfg.rounds - 1)}/stats.json"
    if stats.exists():
        print(json.dumps(json.loads(stats.read_text()), indent=2))
    else:  # train-agent with the deterministic reader: nothing to train, nothing written
        print(f"nothing to do for agent.kind={cfg.agent.kind!r}; no {stats}")
    return 0


def cmd_replicate(run: Run) -> int:
    from agentic_r.replicate import replicate

    # replicate() builds the same config (quick presets, seed, overrides) and claims the folder itself
    replicate(run.out, quick=run.args.quick, seed=run.cfg.seed, config=run.config_path, overrides=run.overrides,
              progress=run.progress)
    return 0


def _round_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--round", type=int, default=0, help="round index (0: base retriever, 1: retriever_0)")


def _quick_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small knowledge base (a few minutes on 2 CPU cores)")


def _quick(args: argparse.Namespace) -> list[str]:
    if not args.quick:
        return []
    from agentic_r.replicate import quick_overrides

    return quick_overrides()


DRY_RUN = verb_dry_run("agentic_r.dryrun:specs")  # --dry-run: size a paper-scale config (configs/gpu_llm.yaml)
COMMON = {"config": _config_cls, "seed_key": "seed", "check": _check_config}
APP = App(
    prog="agentic-r", version=__version__,
    description="Agentic-R: train the retriever of a search agent from passage utility (local + global).",
    verbs=[
        *(Verb(name, text, cmd_stage, out="required", claim="claim", description=text,
               arguments=_round_arg if name in ("train-agent", "mine", "label", "train-retriever") else None,
               dry_run=DRY_RUN if name in ("iterate", "train-retriever") else None, **COMMON)
          for name, text in STEPS.items()),
        Verb("replicate", "CPU-scale replication: base vs round 0 vs round 1 (prints a table)", cmd_replicate,
             arguments=_quick_arg, presets=_quick, claim="none", default_out="runs/agentic-r-replicate",
             description="Run the whole loop on the synthetic knowledge base and write results.json.", **COMMON),
    ],
)


def build_parser() -> argparse.ArgumentParser:
    return APP.build_parser()


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
