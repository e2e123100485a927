"""Configuration of a MatchTIR run: nested dataclasses read from YAML by `shared.config.load_config`.

Sections: `model` (the tiny policy built on the fly, or a checkpoint path), `data` (synthetic suite sizes or
FTRL-style JSONL files), `rollout` (turn and token budgets), `sft` (warm start, `shared.rl.sft.SFTSettings`), `warm_start` (second SFT stage, cache), `rl`
(`shared.rl.trainer.RLConfig`), `reward` (scheme, hard/soft matching, assignment, penalty), `advantage` (mode,
weight, gamma) and `eval`. The replication's rows override `reward` and `advantage` per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.rl.sft import SFTSettings
from shared.rl.trainer import RLConfig

from matchtir.rewards import RewardSettings


@dataclass
class ModelSettings:
    path: str = ""  # a saved causal LM; empty = build the tiny policy below
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 512
    vocab_size: int = 640  # byte-level BPE trained on the training texts
    max_positions: int = 1024
    seed: int = 0


@dataclass
class DataSettings:
    train_file: str = ""  # FTRL-style JSONL; empty = the synthetic suite below
    test_file: str = ""
    suite: Literal["tools", "copy"] = "tools"  # tools (benchmarks' chained tool tasks) | copy (argument values verbatim in the request)
    train_tasks: int = 400  # synthetic RL prompts
    sft_traces: int = 64  # gold traces used for the warm start (a subset of the training tasks)
    test_tasks: int = 64
    dev_tasks: int = 0  # synthetic dev tasks: the train-split tasks drawn after the first train_tasks (never trained on)
    kinds: list[Literal["single", "multi_call", "multi_turn"]] = field(default_factory=lambda: ["single", "multi_call", "multi_turn"])  # tools suite
    calls: list[int] = field(default_factory=lambda: [1, 2, 3])  # copy suite: calls per task, cycled
    max_number: int = 99  # copy suite: numbers of add/multiply drawn from 2..max_number
    prompt_style: Literal["schemas", "signatures"] = "signatures"
    seed: int = 0


@dataclass
class RolloutSettings:
    max_turns: int = 5
    max_new_tokens_per_turn: int = 40
    max_response_tokens: int = 256
    tool_timeout_s: float = 10.0
    tool_memory_mb: int = 512
    gen_batch_size: int = 128
    parallel_calls: bool = False  # a turn may hold several <tool_call> blocks (it ends at eos, not </tool_call>)


@dataclass
class AdvantageSettings:
    mode: Literal["trajectory", "turn", "dual"] = "dual"
    weight: float = 0.5  # weight of the trajectory term in the dual mix
    gamma: float = 0.9


@dataclass
class WarmStartSettings:
    """The SFT warm start beyond the `sft` stage: an optional second stage and the on-disk cache."""

    # stage 2: more SFT from the stage-1 weights at a lower lr with a fresh warm-up (the copying of argument
    # values only emerges late; a decayed second stage consolidates it)
    stage2_steps: int = 0
    # >= 0: stage 1 is trained once with this seed (init and data order) and every seed's stage 2 branches from
    # it (one long stage instead of one per seed); -1: each seed trains both stages itself
    stage1_seed: int = -1
    stage2_lr: float = 1e-3
    stage2_warmup_steps: int = 20
    # finished warm starts are kept per (settings hash, seed) and shared by rows, reruns and output folders;
    # "" (default) keeps the warm start inside the run's output folder instead
    cache_dir: str = ""


@dataclass
class EvalSettings:
    temperature: float = 0.0  # greedy decoding for test metrics
    bfcl_categories: list[str] = field(default_factory=lambda: ["simple_python", "multiple", "parallel",
                                                                "parallel_multiple"])
    bfcl_limit: int = 0  # items per category; 0 = all
    bfcl_max_new_tokens: int = 96


@dataclass
class MatchTIRConfig:
    output_dir: str = "runs/matchtir"
    seed: int = 0
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    # one thread per process: on a shared 2-core box two threads ran a training step 10-20x slower
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=300, lr=3e-3, batch_size=32,
                                                                 warmup_steps=30, logging_steps=100, threads=1))
    rl: RLConfig = field(default_factory=lambda: RLConfig(steps=100, prompts_per_step=8, generations=8, lr=3e-5,
                                                          checkpoint_every=25, tensorboard=False, threads=1))
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    advantage: AdvantageSettings = field(default_factory=AdvantageSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
