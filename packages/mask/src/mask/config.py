"""Configuration of an M-ASK run: nested dataclasses read from YAML by `shared.config.load_config`.

Sections: `model` (the tiny policy built on the fly, or a checkpoint), `data` (the synthetic KB and its (entity,
chain) split, or FlashRAG-style JSONL question files with a corpus), `loop` (iterations, top-k, token budgets per
role), `parse` / `prompt` / `memory` (the release's behaviours as options), `reward` (turn and format penalties),
`sft` (the warm starts), `rl` (`shared.rl.trainer.RLConfig`: PPO with GAE by default), `monolithic` (the
Search-R1-style baseline) and `eval`. Enumerated options are `Literal`s, so an unknown value is a ConfigError that
names the key before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.rl.critic import CriticConfig
from shared.rl.sft import SFTSettings
from shared.rl.trainer import RLConfig

ROLES = ("plan", "search", "summary", "update", "answer")


@dataclass
class ModelSettings:
    path: str = ""  # a saved causal LM (with tokenizer); empty = build the tiny policy below
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 512
    vocab_size: int = 1200  # byte-level BPE trained on the corpus, questions and oracle texts
    max_positions: int = 1024
    seed: int = 0


@dataclass
class DataSettings:
    # FlashRAG-style question files {id, question, golden_answers} and a corpus {id, contents}; empty = synthetic KB
    train_file: str = ""
    dev_file: str = ""
    test_file: str = ""
    corpus_file: str = ""
    kb_seed: int = 0
    n_people: int = 500
    n_companies: int = 60
    n_cities: int = 40
    n_countries: int = 10
    hops: list[int] = field(default_factory=lambda: [2, 3])  # RL, dev and test questions
    sft_hops: list[int] = field(default_factory=lambda: [1, 2, 3])  # oracle questions of the warm starts
    split_by: Literal["entity", "entity_chain"] = "entity_chain"
    n_train: int = 0  # RL training questions (0 = every train-split question left after dev)
    n_dev: int = 128  # train-split questions never trained on: settings and curves
    n_test: int = 512


@dataclass
class LoopSettings:
    max_iterations: int = 5
    topk: int = 5
    retriever: Literal["bm25"] = "bm25"
    plan_tokens: int = 64
    search_tokens: int = 24
    summary_tokens: int = 48
    update_tokens: int = 8
    answer_tokens: int = 16
    max_summary_words: int = 75

    def tokens(self, role: str) -> int:
        return int(getattr(self, f"{role}_tokens"))


@dataclass
class ParseSettings:
    # strict: an output without a usable tag takes the fixed fallback action (search -> end, summary -> "No useful
    # information", update -> Add, answer -> empty); release: the release's text fallbacks act (first line as query /
    # evidence / answer, "a: b" lines as a plan, the "population" heuristic)
    mode: Literal["strict", "release"] = "strict"


@dataclass
class PromptSettings:
    style: Literal["release", "short"] = "release"  # release: the roles' instructions; short: one header line
    chat: bool = False  # render [system, user] through the tokenizer's chat template (instruct models)
    unknown_token: str = "unkown"  # the release's literal (sic), written by the planner for unknown facts
    max_tokens: int = 1024  # the release's max_prompt_length
    # error: a longer prompt is a ValueError naming episode and role; finish: the call is skipped, counted and acts
    # as an empty (illegal) output; left: keep the last max_tokens; release_right: keep the first (the release)
    overflow: Literal["error", "finish", "left", "release_right"] = "error"


@dataclass
class MemorySettings:
    search_history: bool = True  # the search agent also reads its earlier (query, summary) pairs (release)
    after_plan: Literal["reset", "keep_plan"] = "reset"  # spec: {t1: (question, plan answer)}; keep_plan: t1..tN


@dataclass
class RewardSettings:
    turn_penalty: float = 0.0
    format_penalty: float = -1.0  # added to an illegal call's reward


@dataclass
class MonolithicSettings:
    max_turns: int = 6  # up to 5 searches, then the answer: the same search budget as mask's 5 iterations
    max_new_tokens_per_turn: int = 32
    max_response_tokens: int = 1600
    max_positions: int = 2048  # five turns of five passages do not fit mask's 1024


@dataclass
class TrainSettings:
    """The RL loop around `rl`: questions per step and episodes per question (the same for both rows)."""

    questions_per_step: int = 8
    episodes_per_question: int = 4
    lr_grid: list[float] = field(default_factory=lambda: [1e-5, 3e-5])  # replicate: chosen on dev by a fixed rule
    # the actor lr of each row in `replicate` (0 = rl.lr): the pilot's pick per row (pilot.json "lr") goes here
    mask_lr: float = 0.0
    monolithic_lr: float = 0.0


@dataclass
class WarmStartSettings:
    """SFT of the two warm starts (lr, schedule, warm-up from `sft`): at most `*_steps` steps, stopping once the
    greedy F1 on the first `val_questions` dev questions, measured every `eval_every` steps, reaches `target_f1`."""

    mask_steps: int = 2000
    monolithic_steps: int = 1500
    monolithic_batch_size: int = 16  # transcripts are ~4x longer than a call's prompt
    eval_every: int = 200
    target_f1: float = 0.6  # <= 0: no early stop
    val_questions: int = 32
    cache_dir: str = ""  # "" = beside the run's seed folders


@dataclass
class EvalSettings:
    temperature: float = 0.0
    batch_size: int = 128


@dataclass
class GPUSettings:
    """The launch a paper-scale config is meant for; `mask train --dry-run` estimates memory per process from it."""

    world_size: int = 8
    sharding: Literal["none", "ddp", "zero1", "zero2", "zero3", "fsdp"] = "fsdp"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    micro_batch: int = 4
    response_tokens: int = 1024  # the release's max_response_length
    rollout_tokens: int = 0  # tokens whose KV cache a colocated vLLM engine keeps (0: vLLM on its own GPUs)


@dataclass
class MaskConfig:
    output_dir: str = "runs/mask"
    seed: int = 0
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    loop: LoopSettings = field(default_factory=LoopSettings)
    parse: ParseSettings = field(default_factory=ParseSettings)
    prompt: PromptSettings = field(default_factory=PromptSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    monolithic: MonolithicSettings = field(default_factory=MonolithicSettings)
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=1500, lr=3e-3, batch_size=32, warmup_steps=50,
                                                                 logging_steps=100, max_length=1024, threads=1))
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    # PPO with GAE (gamma = lam = 1), no KL, the critic a value head on detached features (the release: a separate
    # critic model, `critic.kind: model`)
    rl: RLConfig = field(default_factory=lambda: RLConfig(
        steps=40, lr=1e-5, advantage="gae", adv_options={"gamma": 1.0, "lam": 1.0}, beta=0.0,
        critic=CriticConfig(lr=1e-3, shared_trunk=False), checkpoint_every=5, keep_checkpoints=1, tensorboard=False,
        threads=1))
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    gpu: GPUSettings = field(default_factory=GPUSettings)

    def validate(self) -> None:
        """Checks `load_config` cannot make from the types alone (the parent CLI calls it before any work);
        ValueError names the key."""
        self.rl.validate()  # the shared trainer's own checks: the advantage, and the critic under gae
        positive = {"loop.max_iterations": self.loop.max_iterations, "loop.topk": self.loop.topk,
                    "loop.max_summary_words": self.loop.max_summary_words, "prompt.max_tokens": self.prompt.max_tokens,
                    "train.questions_per_step": self.train.questions_per_step,
                    "train.episodes_per_question": self.train.episodes_per_question, "data.n_test": self.data.n_test,
                    "monolithic.max_turns": self.monolithic.max_turns, "rl.steps": self.rl.steps,
                    **{f"loop.{r}_tokens": self.loop.tokens(r) for r in ROLES}}
        for key, value in positive.items():
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if self.data.n_dev < 0 or self.data.n_train < 0:
            raise ValueError("data.n_dev and data.n_train must be >= 0")
        if not self.data.hops or any(h not in (1, 2, 3) for h in [*self.data.hops, *self.data.sft_hops]):
            raise ValueError(f"data.hops / data.sft_hops must be hop counts among 1, 2, 3; got {self.data.hops}, "
                             f"{self.data.sft_hops}")
        if self.rl.lr <= 0:
            raise ValueError(f"rl.lr must be > 0, got {self.rl.lr}")
        if self.train.mask_lr < 0 or self.train.monolithic_lr < 0:
            raise ValueError("train.mask_lr and train.monolithic_lr must be >= 0 (0 = rl.lr)")
        if self.reward.format_penalty > 0:
            raise ValueError(f"reward.format_penalty is added to illegal outputs and must be <= 0, got "
                             f"{self.reward.format_penalty}")
        files = {"data.train_file": self.data.train_file, "data.dev_file": self.data.dev_file,
                 "data.test_file": self.data.test_file, "data.corpus_file": self.data.corpus_file}
        for key, path in files.items():
            if path and not Path(path).expanduser().is_file():
                raise ValueError(f"{key}: file not found: {path}")
        if (self.data.test_file or self.data.train_file) and not self.data.corpus_file:
            raise ValueError("question files need data.corpus_file (the documents the retrieval tool searches)")
