"""Configuration of a sage run: nested dataclasses loaded from YAML by `shared.config.load_config`.

One `method` key picks the ablation (uniform DPO, curriculum only, scoring only, full SAGE); every other knob
(pool sizes, refresh schedule, score and filter thresholds, DPO beta and loss) is shared by all four, so rows of a
replication differ only in the selection rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# method -> (coarse curriculum on, stability-aware scoring on)
METHODS: dict[str, tuple[bool, bool]] = {
    "uniform": (False, False),
    "curriculum": (True, False),
    "scoring": (False, True),
    "sage": (True, True),
}

Method = Literal["uniform", "curriculum", "scoring", "sage"]
Source = Literal["arithmetic", "gsm8k", "math500", "aime24", "jsonl"]


@dataclass
class ModelConfig:
    """`path` empty: build the tiny Qwen2 policy on the fly and SFT it on the arithmetic suite (the warm start,
    shared.rl.warmstart): cosine schedule over `sft_steps`, stopped once validation accuracy reaches
    `sft_target_accuracy` (a mid-training policy with room to improve; null = train all steps)."""

    path: str = ""
    device: str = "auto"  # for model.path: "auto" picks a GPU when present
    dtype: str = "auto"  # bfloat16 on a capable GPU, float32 on CPU
    sft_steps: int = 1000
    sft_lr: float = 3e-3
    sft_batch_size: int = 32
    sft_target_accuracy: float | None = 0.4
    sft_eval_every: int = 20


@dataclass
class DataConfig:
    """Problem pool (train) and held-out problems. `path` names a JSONL file for source=jsonl (fields
    `question`/`problem` and `answer`), or replaces the bundled slice for gsm8k/math500/aime24.

    `n_dev` > 0 sets aside a dev split for choosing settings: on the arithmetic suite dev and test are drawn from
    one shuffled held-out sample (same distribution), on files dev follows the pool and test follows dev.
    `eval_split` names the split the accuracy curve is measured on (dev while tuning, test once at the end)."""

    source: Source = "arithmetic"
    path: str = ""
    n_train: int = 256
    n_test: int = 200
    n_dev: int = 0
    eval_split: Literal["test", "dev"] = "test"
    data_seed: int = 0
    prompt_template: str = "Q: {question}\nA: "
    on_unverifiable: Literal["error", "skip"] = "error"


@dataclass
class SamplingConfig:
    """How the policy is probed for pass rates and pairs (k samples per problem)."""

    samples_per_problem: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 32
    batch_size: int = 64


@dataclass
class CurriculumConfig:
    """Coarse curriculum: re-probe every `refresh_every` steps and keep frontier problems (0 < pass rate < 1).
    Without the curriculum the pool is probed once, at step 0 (static self-generated pairs)."""

    refresh_every: int = 25
    probe_size: int = 0  # problems probed per refresh; 0 = the whole pool
    max_pairs_per_problem: int = 4
    on_empty_frontier: Literal["continue", "stop"] = "continue"


@dataclass
class ScoringConfig:
    """Stability-aware scoring: running margin statistics over `window` evaluations and the two filters."""

    window: int = 4
    eps: float = 0.05
    unstable_std: float = 0.5
    trivial_weight: float = 0.2
    min_obs: int = 2
    prior_std: float = 0.25
    # "margin": sigmoid(-mu)|mu|/(s+eps) (the spec's inferred form); "weight": sigmoid(-mu)/(s+eps), monotone in mu
    score: Literal["margin", "weight"] = "margin"
    # "absolute": the spec's thresholds. "relative" is ours, not the spec's: filters and score on margins in units
    # of the candidates' RMS margin (scale-free thresholds; the replication uses it, see the README)
    thresholds: Literal["absolute", "relative"] = "absolute"
    rank: Literal["score", "random"] = "score"  # "random": filters only, eligible pairs in random order (ablation)
    candidates_per_step: int = 32  # pairs re-evaluated (no grad) each step before selection; 0 = all
    fill: Literal["best_remaining", "none"] = "best_remaining"


@dataclass
class TrainConfig:
    """DPO on the selected pairs against a frozen reference (the starting policy)."""

    method: Method = "sage"
    steps: int = 100
    batch_size: int = 8
    lr: float = 1e-5
    beta: float = 0.1
    loss: Literal["dpo", "rpo", "ipo"] = "rpo"
    sft_weight: float = 1.0  # weight of the chosen-answer NLL term in the rpo loss
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 1  # 1 thread per process: the 2-core box is shared
    checkpoint_every: int = 0  # 0 = only at the end


@dataclass
class EvalConfig:
    """Greedy accuracy on the held-out problems every `every` steps; `target_accuracy` (or start + `target_gain`
    when unset) defines steps_to_target: the first evaluated step where the mean of the last `target_smooth`
    evaluations (a moving average; 1 = the evaluation alone) reaches the target."""

    every: int = 10
    max_new_tokens: int = 32
    batch_size: int = 100
    target_accuracy: float | None = None
    target_gain: float = 0.03
    target_smooth: int = 1
    tasks: list[str] = field(default_factory=lambda: ["gsm8k", "math500", "aime24"])
    n_per_task: int = 50


@dataclass
class SageConfig:
    out_dir: str = "runs/sage"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def method_flags(method: str) -> tuple[bool, bool]:
    """(curriculum, scoring) for a method name; ValueError lists the valid names."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method]
