"""Settings of the on-policy RL trainer (`RLConfig`) and the learning-rate schedule it shares with SFT loops.

`check_rl_settings` refuses settings that would fail or silently misbehave on a GPU run (a temperature that
divides by zero, micro-batches left empty, a float16 policy without a loss scaler), before any model is built.

`shared.rl.trainer` re-exports both, so `from shared.rl.trainer import RLConfig, lr_factor` keeps working.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from shared.modeling import LoraSettings
from shared.rl.critic import CriticConfig


@dataclass
class RLConfig:
    """Settings of an on-policy run; defaults follow the CPU calibration (8 prompts x 8 generations, lr 3e-5)."""

    output_dir: str = "runs/grpo"
    seed: int = 0
    steps: int = 300
    prompts_per_step: int = 8
    generations: int = 8
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    lr: float = 3e-5
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    ppo_epochs: int = 1
    mini_batches: int = 1
    grad_accum: int = 1
    # rows whose advantages are all 0 add exactly 0 to the gradient when no KL loss, entropy bonus or critic acts on
    # them: they get a no-grad forward (for the logged stats) instead of a place in the backward (one process only).
    # Off by default: the update equals the full backward's only up to float summation order, so turning it on would
    # move every recorded replication by float-level drift; new runs that want the speed set it
    skip_idle_rows: bool = False
    # device and memory (checked by check_rl_settings before any model is built)
    autocast: bool = True  # bf16 autocast of the policy's forwards on CUDA when its weights are float32 (CPU: off)
    entropy_metric: bool = True  # log the mean policy entropy (chunked, no graph); entropy_coef > 0 computes it anyway
    logprob_gap_warn: float = 0.1  # warn when mean |log p_rollout - log p_trainer| over policy tokens exceeds it; 0 = off
    max_grad_norm: float = 1.0
    clip_low: float = 0.2
    clip_high: float = 0.2  # > clip_low gives DAPO's clip-higher
    dual_clip: float | None = None
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    loss_norm_len: int = 0  # constant length for seq-mean-token-sum-norm; 0 = max_new_tokens
    advantage: str = "grpo"  # "gae" trains a value head (settings in `critic`; gamma, lam in adv_options)
    adv_options: dict[str, float] = field(default_factory=dict)
    critic: CriticConfig = field(default_factory=CriticConfig)
    beta: float = 0.0  # KL coefficient against the frozen reference
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    kl_in_reward: bool = False  # subtract beta * k1 from token rewards instead of adding a loss term
    entropy_coef: float = 0.0
    dynamic_sampling: bool = False
    dynamic_sampling_signal: Literal["reward", "return"] = "reward"  # return: final + turn + token rewards
    max_refill_rounds: int = 3
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    eval_every: int = 0
    threads: int = 1  # 2 threads on a shared 2-core box ran 10x slower than 1 (OpenMP contention)
    seeded_generation: bool = False  # seed sampling per prompt: same samples whatever the number of processes
    gen_batch_size: int = 64  # rows per decoding batch of the default HF generator
    generator_backend: Literal["hf", "vllm"] = "hf"  # "vllm": the CLI builds a VLLMGenerator; weights pushed per step
    tensorboard: bool = True  # scalars under output_dir/tensorboard when tensorboard is installed
    wandb_project: str = ""  # a W&B project name logs there too when wandb is installed
    progress: bool = True
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # the policy's weights ("auto": as loaded)
    lora: LoraSettings | None = None  # peft LoRA adapters on the policy (only they train); None = full fine-tuning

    def validate(self) -> None:
        """Settings that types cannot express, checked before any model is built."""
        from shared.rl.advantages import ADVANTAGES

        if self.advantage not in ADVANTAGES:
            raise ValueError(f"rl.advantage {self.advantage!r} unknown; known: {sorted(ADVANTAGES)}")
        if self.advantage == "gae":
            self.critic.validate()


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine") -> float:
    """Learning-rate multiplier at optimizer step `step`: linear warm-up over `warmup` steps, then `schedule`
    (constant, cosine or linear decay to 0 at `total`). Shared by the RL trainer and the packages' SFT loops."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    if schedule == "linear":
        return max(0.0, 1 - frac)
    if schedule == "constant":
        return 1.0
    raise ValueError(f"unknown lr_schedule {schedule!r}; known: constant, cosine, linear")


def check_rl_settings(cfg: RLConfig, world_size: int = 1) -> None:
    """Raise ValueError naming the first RLConfig setting that cannot run as asked (nothing heavy is imported)."""
    if cfg.temperature < 0:
        raise ValueError(f"rl.temperature must be >= 0 (0 = greedy), got {cfg.temperature}")
    if cfg.temperature == 0 and cfg.generations > 1:
        raise ValueError(f"rl.temperature=0 samples greedily: the {cfg.generations} generations of a prompt would be "
                         "identical and every group-normalised advantage 0; use a temperature > 0 (or generations 1)")
    if not 0 < cfg.top_p <= 1:
        raise ValueError(f"rl.top_p must be in (0, 1], got {cfg.top_p}")
    for key in ("prompts_per_step", "generations", "ppo_epochs", "mini_batches", "grad_accum", "gen_batch_size"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"rl.{key} must be >= 1, got {getattr(cfg, key)}")
    if world_size < 1:
        raise ValueError(f"world size must be >= 1, got {world_size}")
    # every process rolls out whole groups (prompts are dealt out round-robin) and splits its rollouts into
    # mini_batches x grad_accum micro-batches; a process with fewer rollouts than micro-batches runs empty ones
    per_process = -(-cfg.prompts_per_step // world_size) * cfg.generations
    micro = cfg.mini_batches * cfg.grad_accum
    if micro > per_process:
        raise ValueError(f"rl.mini_batches x rl.grad_accum = {micro} micro-batches per step, but each of the "
                         f"{world_size} process(es) holds at most {per_process} rollouts (prompts_per_step "
                         f"{cfg.prompts_per_step} / {world_size} processes x generations {cfg.generations}): lower "
                         "them or raise prompts_per_step")
    dtype = getattr(cfg, "dtype", "auto")
    if dtype in ("float16", "fp16", "half"):
        raise ValueError("rl.dtype float16 is refused: the trainer has no loss scaler, so float16 gradients underflow; "
                         "use bfloat16 (or float32 weights with rl.autocast on CUDA)")
    if cfg.logprob_gap_warn < 0:
        raise ValueError(f"rl.logprob_gap_warn must be >= 0 (0 = off), got {cfg.logprob_gap_warn}")
