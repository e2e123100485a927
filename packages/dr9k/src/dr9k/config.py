"""Configuration of dr9k: nested dataclasses read from YAML by `shared.config.load_config` (unknown keys and values
outside a `Literal` are refused before any work, naming the dotted key).

Sections: `seeds` (where the seed questions come from: the synthetic KB, the bundled HotpotQA/MuSiQue slices or a
JSONL file), `levels`, `filters`, `teacher` and `judge` (the synthesis pipeline's endpoints), `synth` (stage cache,
calibration attempts), `search` (BM25, dense or web backend), `reward`, `rollout`, `model`, `warm_start` (the SFT
on teacher trajectories), `sft` (the equal-budget SFT baseline of the replication), `rl` (`shared.rl.RLConfig`),
`algorithm` and `eval`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.rl.critic import CriticConfig
from shared.rl.sft import SFTSettings
from shared.rl.trainer import RLConfig

LEVELS = ("L1", "L2", "L3")
ALGORITHMS = ("grpo", "ppo", "reinforce_pp")


@dataclass
class KBSettings:
    """The synthetic knowledge base the CPU seeds come from (`benchmarks.synthetic.kb`)."""

    n_people: int = 800
    n_companies: int = 40
    n_cities: int = 30
    n_countries: int = 8
    seed: int = 0
    test_fraction: float = 0.5  # share of (entity, relation) hops in the test split (split_by="entity_chain")
    dev_per_level: int = 128  # dev questions per level, drawn from the training split (never trained on)


@dataclass
class SeedSettings:
    source: Literal["kb", "hotpotqa", "musique", "jsonl"] = "kb"
    path: str = ""  # source jsonl: {id, question, golden_answers, supporting_facts?, paragraphs?} per line
    limit: int = 0  # 0 = every record
    # a seed without supporting facts cannot be obfuscated: "error" refuses it when L2/L3 are asked for (naming the
    # record), "skip" drops its L2/L3 with reason no_supporting_facts and keeps its L1
    missing_support: Literal["error", "skip"] = "error"
    kb: KBSettings = field(default_factory=KBSettings)


@dataclass
class LevelSettings:
    levels: list[str] = field(default_factory=lambda: list(LEVELS))
    description_facts: int = 2  # facts in an entity's description (KB); "the person who works for X and ..."
    min_description_words: int = 5  # real data: shorter off-path sentences do not single an entity out


@dataclass
class FilterSettings:
    max_answer_words: int = 5  # "short" answers
    validity: Literal["none", "rule", "judge"] = "judge"  # judge: the validity prompt through the judge endpoint
    dedup: bool = True


@dataclass
class EndpointSettings:
    """An OpenAI-compatible chat endpoint: `kind: stub` serves the deterministic CPU stand-in on loopback (the real
    client talks to it over HTTP), `endpoint` uses base_url, `hf` serves a local causal LM folder (`path`)."""

    kind: Literal["stub", "endpoint", "hf"] = "stub"
    base_url: str = ""
    model: str = ""
    path: str = ""  # kind hf: a save_pretrained folder
    api_key_env: str = ""  # environment variable holding the API key (never the key itself)
    temperature: float = 0.0
    max_tokens: int = 256
    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_s: float = 0.5
    workers: int = 4
    cache_dir: str = ""  # on-disk reply cache (replays identical requests)


@dataclass
class TeacherSettings(EndpointSettings):
    max_turns: int = 6


@dataclass
class JudgeSettings(EndpointSettings):
    template: Literal["release", "with_question"] = "release"  # the release's judge prompt has no question
    on_failure: Literal["raise", "count_incorrect"] = "raise"  # release: every failure is silently "incorrect"
    on_unparsed: Literal["raise", "verdict"] = "raise"  # verdict: an unreadable reply counts as incorrect
    max_prediction_chars: int = 500  # the release cuts the prediction to 500 characters


@dataclass
class SynthSettings:
    cache_dir: str = ""  # stage folders; "" = <out>/synth
    attempts: int = 1  # teacher attempts per question; the hard subset = questions with 0 of `attempts` correct


@dataclass
class SearchSettings:
    backend: Literal["bm25", "dense", "web"] = "bm25"
    topk: int = 3
    encoder: str = ""  # dense: an encoder folder ("" = the offline MiniLM)
    provider: Literal["serper", "serpapi"] = "serper"  # web
    api_key_env: str = ""  # web: "" = SERPER_API_KEY / SERPAPI_API_KEY
    url: str = ""  # web: "" = the provider's endpoint
    rate: float = 5.0  # web: requests per second
    max_retries: int = 3  # web: retries of 429 / 5xx / timeouts, with exponential back-off from backoff_s
    backoff_s: float = 1.0
    cache_dir: str = ""  # web: on-disk (query, topk) cache


@dataclass
class RewardSettings:
    """The outcome reward. Release constants: format 0.2 when an <answer> exists, +1.0 exact match, +0.1 when the
    gold answer appeared in an observation."""

    kind: Literal["rule", "judge"] = "rule"  # judge: correctness by exact match first, else the judge endpoint
    scope: Literal["response", "full_text"] = "response"  # full_text: the release (prompt + response)
    bonus_when: Literal["wrong_only", "always"] = "wrong_only"  # the release pays the bonus on wrong answers only
    variant: Literal["qa_em", "qa_em_format"] = "qa_em"  # qa_em_format: the release's unwired scorer
    format_score: float = 0.2
    correct_score: float = 1.0
    retrieval_bonus: float = 0.1
    structure_format_score: float = 0.0  # qa_em_format only (the release passes none: 0)
    final_format_score: float = 0.2  # qa_em_format only: paid for a wrong answer, valid format or not


@dataclass
class RolloutSettings:
    prompt: Literal["short", "search_r1"] = "short"  # search_r1: the release's instruction (with "<answer> Beijing")
    max_turns: int = 6
    max_new_tokens_per_turn: int = 64
    max_response_tokens: int = 900
    temperature: float = 1.0
    gen_batch_size: int = 128


@dataclass
class ModelSettings:
    path: str = ""  # a saved causal LM; empty = the tiny policy below
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 512
    vocab_size: int = 700  # byte-level BPE trained on corpus, questions and teacher turns
    max_positions: int = 1024
    seed: int = 0


@dataclass
class WarmStartSettings:
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=1500, lr=3e-3, batch_size=16, warmup_steps=50,
                                                                 max_length=1024, logging_steps=100, threads=1))
    cache_dir: str = ""  # "" = <out>/warm_starts; replicate configs share ~/.cache/dr9k/warmstarts


@dataclass
class EvalSettings:
    test_per_level: int = 300
    hard_attempts: int = 4  # sampled attempts (T = 1) per item; hard = none correct
    hard_items_per_level: int = 100  # items per level that get the sampled attempts (0 = all)
    temperature: float = 0.0
    dev_per_level: int = 128  # dev items per level the replication scores the warm start on (0 = none)


@dataclass
class LaunchSettings:
    """The GPU layout `--dry-run` estimates memory for (`shared.dryrun`): per training process."""

    dtype: str = "bfloat16"
    world_size: int = 1
    sharding: str = "none"  # none | ddp | zero1 | zero2 | zero3 | fsdp
    micro_batch: int = 16
    seq_len: int = 2048
    gradient_checkpointing: bool = True
    rollout_tokens: int = 0  # tokens whose KV cache a colocated vLLM engine keeps


@dataclass
class Dr9kConfig:
    output_dir: str = "runs/dr9k"
    seed: int = 0
    seeds: SeedSettings = field(default_factory=SeedSettings)
    levels: LevelSettings = field(default_factory=LevelSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    synth: SynthSettings = field(default_factory=SynthSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    # the equal-budget SFT baseline: continues from the warm start on the RL rows' prompts (their teacher traces)
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=40, lr=3e-4, batch_size=8, warmup_steps=0,
                                                                 lr_schedule="constant", max_length=1024,
                                                                 logging_steps=10, threads=1))
    algorithm: Literal["grpo", "ppo", "reinforce_pp"] = "grpo"
    rl: RLConfig = field(default_factory=lambda: RLConfig(steps=40, prompts_per_step=8, generations=8, lr=3e-5,
                                                          beta=0.001, kl_estimator="k3", max_grad_norm=0.5,
                                                          checkpoint_every=10, tensorboard=False, threads=1,
                                                          critic=CriticConfig(shared_trunk=False, lr=1e-3)))
    eval: EvalSettings = field(default_factory=EvalSettings)
    launch: LaunchSettings = field(default_factory=LaunchSettings)

    def validate(self) -> None:
        unknown = [lv for lv in self.levels.levels if lv not in LEVELS]
        if unknown or not self.levels.levels:
            raise ValueError(f"levels.levels must be a non-empty subset of {list(LEVELS)}, got {self.levels.levels}")
        if self.seeds.source == "jsonl" and not self.seeds.path:
            raise ValueError("seeds.source=jsonl needs seeds.path (a JSONL file of seed questions)")
        if self.teacher.kind == "endpoint" and not self.teacher.base_url:
            raise ValueError("teacher.kind=endpoint needs teacher.base_url (an OpenAI-compatible server)")
        if self.judge.kind == "endpoint" and not self.judge.base_url:
            raise ValueError("judge.kind=endpoint needs judge.base_url (an OpenAI-compatible server)")
        for name, ep in (("teacher", self.teacher), ("judge", self.judge)):
            if ep.kind == "hf" and not ep.path:
                raise ValueError(f"{name}.kind=hf needs {name}.path (a local causal LM folder)")
        if self.synth.attempts < 1 or self.eval.hard_attempts < 1:
            raise ValueError("synth.attempts and eval.hard_attempts must be >= 1")
        if self.levels.description_facts < 1:
            raise ValueError("levels.description_facts must be >= 1")
