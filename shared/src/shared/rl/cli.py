"""`shared-rl`: run a GRPO job from a YAML config, or build the SFT'd arithmetic warm-start policy.

    shared-rl grpo --config shared/configs/grpo_arithmetic.yaml [rl.steps=50 ...] [--resume]
    shared-rl warmstart --out runs/warmstart/arith_sft_s0 --target 0.35 --seed 0
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml -m shared.rl.cli grpo --config ...  (2 CPU
        processes over gloo, same global batch; fsdp.yaml / deepspeed_zero2.yaml need GPUs)

The GRPO job loads the policy (a given HF directory, or the cached warm start), trains with `RLTrainer` on the
task's train prompts, evaluates greedy exact match on held-out problems before, every `task.eval_every` steps and
after, and writes config.yaml, metrics.jsonl and results.json (package contract) into `rl.output_dir`.

The arithmetic problems come from the "arithmetic" record source (`shared.rl.warmstart.record_source`), which an
installed package registers as a `shared.record_sources` entry point (in this workspace: benchmarks); without it
the command stops with one line saying so (exit 2). Built on the workspace's parent CLI (`shared.cli`): `--out`
sets `rl.output_dir`, `--seed` `rl.seed`; task, record source, launch and policy path are checked before any model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.rl.trainer import RLConfig

TASKS = ("arithmetic",)


@dataclass
class PolicySettings:
    path: str = ""  # HF causal LM directory; empty = the cached SFT'd arithmetic policy below
    warmstart_dir: str = "runs/warmstart/arith_sft_s0"
    warmstart_steps: int = 1000  # cosine horizon; training stops at warmstart_target validation accuracy
    warmstart_target: float = 0.35
    warmstart_n_train: int = 10_000
    warmstart_seed: int = 0


@dataclass
class TaskSettings:
    name: str = "arithmetic"
    train_n: int = 5000
    test_n: int = 500
    seed: int = 0
    eval_every: int = 50


@dataclass
class GRPOJob:
    rl: RLConfig = field(default_factory=RLConfig)
    policy: PolicySettings = field(default_factory=PolicySettings)
    task: TaskSettings = field(default_factory=TaskSettings)


def _policy_dir(job: GRPOJob) -> Path:
    if job.policy.path:
        return Path(job.policy.path)
    from shared.rl.warmstart import sft_arithmetic_policy

    return sft_arithmetic_policy(job.policy.warmstart_dir, steps=job.policy.warmstart_steps,
                                 seed=job.policy.warmstart_seed, target_accuracy=job.policy.warmstart_target,
                                 n_train=job.policy.warmstart_n_train)


def run_grpo_job(job: GRPOJob, resume: bool = False, stop_after: int | None = None) -> dict[str, Any]:
    """Train and evaluate; returns {"before", "after", "curve", "history", "seconds_per_step"}."""
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shared.config import save_config
    from shared.eval import write_results
    from shared.rl.launch import check_launch
    from shared.rl.trainer import RLTrainer
    from shared.rl.warmstart import arithmetic_accuracy, arithmetic_records, arithmetic_reward

    if job.task.name not in TASKS:  # also checked by the command line before any work
        raise ValueError(f"task.name {job.task.name!r} is not supported; known: {TASKS}")
    check_launch(job.rl.generator_backend)  # FSDP / DeepSpeed / vLLM asked for without a GPU: one clear error
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    accelerator = Accelerator(cpu=not _cuda())
    if accelerator.is_main_process:
        policy = _policy_dir(job)  # the warm start is built once, by the main process
    accelerator.wait_for_everyone()
    policy = _policy_dir(job)
    model = AutoModelForCausalLM.from_pretrained(policy)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    train = arithmetic_records(job.task.train_n, "train", job.task.seed)
    test = arithmetic_records(job.task.test_n, "test", 1000 + job.task.seed)
    out = Path(job.rl.output_dir)
    if accelerator.is_main_process:
        save_config(job, out)

    def evaluate(trainer: RLTrainer) -> dict[str, float]:
        return {"accuracy": arithmetic_accuracy(trainer.policy, tokenizer, test)}

    cfg = job.rl
    cfg.eval_every = job.task.eval_every
    generator = None
    if cfg.generator_backend != "hf":
        from shared.generation import make_generator

        generator = make_generator(cfg.generator_backend, policy, tokenizer)
    trainer = RLTrainer(cfg, model, tokenizer, train, arithmetic_reward, generator=generator, eval_fn=evaluate,
                        accelerator=accelerator)
    if not (resume and trainer.resume()):
        trainer.extra_state["start_accuracy"] = evaluate(trainer)["accuracy"]
    before = trainer.extra_state.get("start_accuracy")
    history = trainer.train(stop_after=stop_after)
    after = evaluate(trainer)["accuracy"] if trainer.step >= cfg.steps else None
    curve = [(h["step"], h["eval/accuracy"]) for h in history if "eval/accuracy" in h]
    steps_s = [h["step_seconds"] for h in history[1:]] or [h["step_seconds"] for h in history]
    result = {"before": before, "after": after, "curve": curve, "history": history,
              "seconds_per_step": sum(steps_s) / max(1, len(steps_s))}
    if accelerator.is_main_process and after is not None:
        write_results(out, "shared", None, "grpo_arithmetic",
                      [{"method": "grpo", "metrics": {"accuracy_before": before, "accuracy_after": after,
                                                      "seconds_per_step": result["seconds_per_step"]}}],
                      job, cfg.seed, False, {"name": "synthetic-arithmetic", "sha256": _records_hash(train, test)},
                      started, time.perf_counter() - t0, extra={"curve": curve})
    return result


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _records_hash(*parts: list[dict]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _check_record_source(name: str) -> None:
    """The record source is registered (in-process or as an installed entry point), looked up without importing
    the warm-start module (it imports transformers' trainer stack: tens of seconds on a loaded box)."""
    import sys
    from importlib.metadata import entry_points

    from shared.cli import CLIError

    loaded = sys.modules.get("shared.rl.warmstart")
    if loaded is not None:
        loaded.record_source(name)  # its registry may hold sources registered in this process
        return
    if not any(p.name == name for p in entry_points(group="shared.record_sources")):
        raise CLIError(f"no record source {name!r} is installed; install the package that registers it under the "
                       "'shared.record_sources' entry points (this workspace's benchmarks package provides "
                       "'arithmetic')")


def _check_grpo(run) -> None:
    """Before any model: the task, the record source and the launch (GPU-only engines on a CPU machine)."""
    from shared.cli import CLIError
    from shared.rl.launch import check_launch

    job = run.cfg
    if job.task.name not in TASKS:
        raise CLIError(f"task.name {job.task.name!r} is not supported; known: {', '.join(TASKS)}")
    _check_record_source(job.task.name)
    check_launch(job.rl.generator_backend)


def _check_warmstart(run) -> None:
    from shared.cli import CLIError

    if run.args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {run.args.steps}")
    _check_record_source("arithmetic")


def cmd_grpo(run) -> int:
    res = run_grpo_job(run.cfg, resume=run.resume)
    print(f"accuracy before {res['before']} after {res['after']}  seconds/step {res['seconds_per_step']:.3f}")
    return 0


def cmd_warmstart(run) -> int:
    import json

    from shared.rl.warmstart import STAMP, sft_arithmetic_policy

    target = run.args.target if run.args.target > 0 else None
    path = sft_arithmetic_policy(run.out, steps=run.args.steps, seed=run.seed if run.seed is not None else 0,
                                 target_accuracy=target, n_train=10_000)
    print(path, json.loads((path / STAMP).read_text()))
    return 0


def _warmstart_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=1000, help="SFT steps (cosine horizon)")
    p.add_argument("--target", type=float, default=0.35, help="stop at this validation accuracy (<= 0: never)")


def _app():
    from shared import __version__
    from shared.cli import App, Verb

    return App(
        prog="shared-rl", version=__version__, description="On-policy RL jobs of the shared RL engine.",
        verbs=[
            Verb("grpo", "run a GRPO job from a YAML config (with key=value overrides)", cmd_grpo,
                 config=lambda: GRPOJob, out_key="rl.output_dir", seed_key="rl.seed", resume=True, trains=True,
                 wandb_key="rl.wandb_project", progress_key="rl.progress", model_keys=("policy.path",),
                 check=_check_grpo, claim="none",
                 description="Run a GRPO job (see shared/configs/grpo_arithmetic.yaml); --out sets rl.output_dir, "
                             "--resume continues from its latest checkpoint."),
            Verb("warmstart", "build (or reuse) the SFT'd tiny arithmetic policy", cmd_warmstart,
                 arguments=_warmstart_args, out="required", check=_check_warmstart, claim="none",
                 description="Build (or reuse) the SFT'd tiny arithmetic policy in --out (--seed: model init and "
                             "data seed, default 0)."),
        ],
    )


def build_parser() -> argparse.ArgumentParser:
    return _app().build_parser()


def main(argv: list[str] | None = None) -> int:
    return _app().main(argv)


if __name__ == "__main__":
    import sys

    sys.exit(main())
