"""Config dataclasses of rose's `train`, `eval` and `replicate` (YAML + dotted overrides via shared.config).

Sections: `model` (which policy), `warm_start` (how the tiny policy is SFT'd when no path is given), `data`, `rose`
(tree rollout and advantage settings), `rl` (the shared trainer's RLConfig) and `eval`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.config import ConfigError
from shared.rl.trainer import RLConfig

ADVANTAGES = ("segment",)  # plus every name of shared.rl.advantages.ADVANTAGES (grpo, dr_grpo, rloo, ...)


@dataclass
class ModelSection:
    path: str = ""  # an HF causal LM directory; empty = the warm-started tiny policy below


@dataclass
class WarmStartSection:
    steps: int = 1000
    lr: float = 3e-3
    batch_size: int = 32
    n_train: int = 20_000
    verbose_fraction: float = 0.5  # share of SFT targets in the verbose (restating) style; 0 = calibration only
    cache_dir: str = ""  # where the SFT'd policy is kept; empty = $ROSE_CACHE or ~/.cache/rose/warmstart/<settings>


@dataclass
class DataSection:
    train: str = "arithmetic"  # arithmetic | a .jsonl file with prompt/answer
    n_train: int = 5000
    eval: str = "arithmetic"  # arithmetic | math500 | gsm8k | aime24 | a .jsonl file
    n_eval: int = 200
    seed: int = 0


@dataclass
class RoseSection:
    mode: Literal["tree", "independent"] = "tree"  # tree (ROSE) | independent (GRPO-style sampling)
    epsilon: float = 0.5  # chance a later rollout restarts from the root
    top_k: int = 20  # next-token candidates per position for the branching score
    score: Literal["semantic", "authors", "entropy", "cosine"] = "semantic"
    advantage: str = "segment"  # segment (ROSE) | a shared estimator name, e.g. grpo
    length_penalty: float = 1.0  # alpha of the length-aware term; 0 = off
    correct_reward: float = 1.0  # rewards at or above this count as correct for the length term
    backend: Literal["hf", "vllm"] = "hf"  # rollout generation: hf (HFGenerator over the policy) | vllm (GPU, weights synced per step)


@dataclass
class EvalSection:
    samples: int = 8  # k samples per prompt; pass@1 = mean correctness over them
    temperature: float = 0.6
    max_new_tokens: int = 64
    batch_size: int = 256


@dataclass
class RoseConfig:
    out_dir: str = "runs/rose"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    warm_start: WarmStartSection = field(default_factory=WarmStartSection)
    data: DataSection = field(default_factory=DataSection)
    rose: RoseSection = field(default_factory=RoseSection)
    rl: RLConfig = field(default_factory=lambda: RLConfig(max_new_tokens=64, dynamic_sampling=True))
    eval: EvalSection = field(default_factory=EvalSection)

    def validate(self) -> None:
        """Raise ConfigError naming the first inconsistent setting."""
        from shared.rl.advantages import ADVANTAGES as SHARED

        self.rl.validate()  # the shared trainer's own checks (rose.advantage below replaces rl.advantage in training)
        if self.rose.advantage not in ADVANTAGES and self.rose.advantage not in SHARED:
            raise ConfigError(f"rose.advantage {self.rose.advantage!r} unknown; use segment or one of {sorted(SHARED)}")
        if self.rose.advantage == "gae":
            raise ConfigError("rose.advantage 'gae' needs a value head, which rose does not train")
        if self.rose.backend not in ("hf", "vllm"):
            raise ConfigError(f"rose.backend must be hf or vllm, got {self.rose.backend!r}")
        if self.rose.length_penalty < 0:
            raise ConfigError(f"rose.length_penalty must be >= 0, got {self.rose.length_penalty}")
        if self.eval.samples < 1:
            raise ConfigError(f"eval.samples must be >= 1, got {self.eval.samples}")
        if self.rl.generations < 2:
            raise ConfigError(f"rl.generations must be >= 2 (a group needs rollouts to compare), got {self.rl.generations}")
        if not 0.0 <= self.warm_start.verbose_fraction <= 1.0:
            raise ConfigError(f"warm_start.verbose_fraction must be in [0, 1], got {self.warm_start.verbose_fraction}")
