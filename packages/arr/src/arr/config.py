"""Configuration of an ARR run: nested dataclasses read from YAML by `shared.config.load_config`.

Sections: `model` (the tiny policies built on the fly, or checkpoint paths), `roles` (two policies or one shared
policy with two role prompts), `data` (the synthetic KB and its splits, or JSONL files), `protocol` (turns, top-k,
token budgets, prompt style, final generator), `evidence` (the DropGold noise and de-duplication), `reward` (F1
variant, bins, weights, presence flags, impact patterns), `advantage` (A + r or the release's 2A + r), `train`
(schedule), `sft` / `warm_start` (the cached warm starts), `rl` (`shared.rl.settings.RLConfig`, used for both roles),
`eval` and `probe` (the rejection probe), `gpu` (the paper-scale dry run). Enum-like keys are `Literal` types, so an
unknown value (e.g. `train.schedule=sometimes`) is a `ConfigError` naming the key before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.config import ConfigError
from shared.rl.settings import RLConfig
from shared.rl.sft import SFTSettings


@dataclass
class ModelSettings:
    path: str = ""  # a saved causal LM for the reasoner (and the verifier unless verifier_path); "" = tiny model
    verifier_path: str = ""  # the verifier's own checkpoint ("" = same as path)
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 512
    vocab_size: int = 1000  # byte-level BPE trained on the corpus and the transcripts
    max_positions: int = 1536
    seed: int = 0


@dataclass
class RoleSettings:
    # separate: a reasoner and a verifier policy (the release); shared: one policy, two role prompts
    policies: Literal["separate", "shared"] = "separate"


@dataclass
class DataSettings:
    train_file: str = ""  # JSONL records {id, question, golden_answers, sub_questions?}; "" = the synthetic KB
    test_file: str = ""
    corpus_file: str = ""  # JSONL {id, contents} for the file records ("" = the KB's corpus)
    n_people: int = 300
    n_companies: int = 40
    n_cities: int = 30
    n_countries: int = 8
    kb_seed: int = 0
    hops: list[int] = field(default_factory=lambda: [1, 2])
    split_by: Literal["entity", "entity_chain"] = "entity_chain"
    train_questions: int = 689
    dev_questions: int = 128  # train-split questions after the training ones: curves and settings, never test
    test_questions: int = 512
    seed: int = 0


@dataclass
class ProtocolSettings:
    max_turns: int = 5  # reasoner turns; a search on the last turn ends the episode with finish reason max_turns
    topk: int = 3
    reasoner_tokens: int = 48  # new tokens per reasoner turn
    verifier_tokens: int = 48  # new tokens per verifier turn
    prompt_style: Literal["short", "instruct"] = "short"  # short: "Question: ..." (tiny models); instruct: full
    final_generator: bool = False  # a final answer from the assembled transcript (reasoner weights), reported
    final_tokens: int = 24
    gen_batch_size: int = 128


@dataclass
class EvidenceSettings:
    drop_gold: float = 0.5  # DropGold: probability that a search turn's gold passages are replaced by the next ones
    dedup: bool = True  # documents already shown in an episode are skipped (the release's search cache)
    seed: int = 0
    search_url: str = ""  # a Search-R1 style /retrieve service (e.g. an E5 index over Wikipedia); "" = BM25 in process


@dataclass
class RewardSettings:
    f1: Literal["hotpot", "release"] = "hotpot"  # hotpot: shared f1_score (yes/no rule); release: f1_check
    exact_bins: bool = True  # bins from int(5*F1 + 1e-9); false: the release's int(5*F1) on the float F1
    bins: int = 5
    w_out: float = 1.0  # adversarial bonus weight
    w_ver: float = 1.0  # process reward weight (0 = no process term)
    presence: Literal["per_span", "sticky"] = "per_span"  # sticky = the release's subseq_retrieval_correct
    impact_patterns: Literal["release", "intended"] = "release"
    impact_threshold: float = 0.1


@dataclass
class AdvantageSettings:
    form: Literal["sum", "release"] = "sum"  # sum: A + r_ver,t; release: 2A + r_ver,t (the verifier only)
    eps: float = 1e-6


@dataclass
class TrainSettings:
    schedule: Literal["simultaneous", "alternate"] = "simultaneous"  # simultaneous = the release
    verifier: bool = True  # false: the reasoner alone on raw top-k documents (the Search-R1 baseline)
    train_final_generator: bool = False  # the release trains it with the reasoner's actor (its scripts: off)
    checkpoint_every: int = 10


@dataclass
class WarmStartSettings:
    reasoner_steps: int = 600
    verifier_steps: int = 400
    accept_p: float = 0.5  # the verifier warm start accepts (selects Doc 1) with this probability, blind to evidence
    traces_per_question: int = 2  # oracle episodes with the verifier per training question
    raw_traces_per_question: int = 1  # oracle episodes on raw documents (reasoner_only's view) per question
    cache_dir: str = ""  # "" = a folder beside the run
    seed: int = 0


@dataclass
class EvalSettings:
    temperature: float = 0.0  # greedy test decoding
    seed: int = 12345  # DropGold and sampling seed of evaluation episodes


@dataclass
class ProbeSettings:
    items: int = 256  # hops per class (with / without the gold passage)
    dev_items: int = 128
    seed: int = 0


@dataclass
class GPUSettings:
    """The paper-scale launch `arr train --dry-run` checks with `shared.dryrun` (no download: the architecture comes
    from a local config.json or the core's bundled published configs): per policy, the release's layout."""

    world_size: int = 4  # GPUs per policy (the release: 4 for the reasoner, 4 for the verifier)
    sharding: Literal["none", "ddp", "zero1", "zero2", "zero3", "fsdp"] = "fsdp"
    dtype: str = "bfloat16"
    micro_batch: int = 8  # 8 x 5120 tokens = the release's ppo_max_token_len_per_gpu 40960
    seq_len: int = 5120  # prompt 4096 + response 1024
    rollout_tokens: int = 0  # tokens whose KV cache a colocated vLLM engine holds (0: rollouts on other cards)


@dataclass
class ARRConfig:
    output_dir: str = "runs/arr"
    seed: int = 0
    model: ModelSettings = field(default_factory=ModelSettings)
    roles: RoleSettings = field(default_factory=RoleSettings)
    data: DataSettings = field(default_factory=DataSettings)
    protocol: ProtocolSettings = field(default_factory=ProtocolSettings)
    evidence: EvidenceSettings = field(default_factory=EvidenceSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    advantage: AdvantageSettings = field(default_factory=AdvantageSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    # one thread per process: on a shared 2-core box two threads ran a training step 10-20x slower
    sft: SFTSettings = field(default_factory=lambda: SFTSettings(steps=1000, lr=3e-3, batch_size=16,
                                                                 warmup_steps=50, logging_steps=100, threads=1,
                                                                 max_length=1536))
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    rl: RLConfig = field(default_factory=lambda: RLConfig(steps=30, prompts_per_step=8, generations=5, lr=3e-5,
                                                          beta=0.001, kl_estimator="k3", entropy_coef=0.0,
                                                          checkpoint_every=0, tensorboard=False, threads=1))
    eval: EvalSettings = field(default_factory=EvalSettings)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    gpu: GPUSettings = field(default_factory=GPUSettings)

    def validate(self) -> None:
        """Cross-field checks before any work (ConfigError names the key)."""
        p = self.protocol
        for key, value in (("protocol.max_turns", p.max_turns), ("protocol.topk", p.topk),
                           ("protocol.reasoner_tokens", p.reasoner_tokens),
                           ("protocol.verifier_tokens", p.verifier_tokens), ("rl.generations", self.rl.generations),
                           ("reward.bins", self.reward.bins)):
            if value < 1:
                raise ConfigError(f"key '{key}': must be >= 1, got {value}")
        if not 0.0 <= self.evidence.drop_gold <= 1.0:
            raise ConfigError(f"key 'evidence.drop_gold': must lie in [0, 1], got {self.evidence.drop_gold}")
        if not 0.0 <= self.warm_start.accept_p <= 1.0:
            raise ConfigError(f"key 'warm_start.accept_p': must lie in [0, 1], got {self.warm_start.accept_p}")
        if self.warm_start.traces_per_question < 1 or self.warm_start.raw_traces_per_question < 0:
            raise ConfigError("keys 'warm_start.traces_per_question' (>= 1) and 'warm_start.raw_traces_per_question' "
                              "(>= 0) are out of range")
        if self.reward.w_out < 0 or self.reward.w_ver < 0:
            raise ConfigError("keys 'reward.w_out' and 'reward.w_ver' must be >= 0")
        if self.rl.dynamic_sampling:
            raise ConfigError("key 'rl.dynamic_sampling': arr collects joint rollouts itself; dynamic sampling is "
                              "not supported (keep it false)")
        if self.rl.advantage != "grpo":
            raise ConfigError(f"key 'rl.advantage': arr computes GRPO advantages per role itself; got "
                              f"{self.rl.advantage!r} (keep 'grpo')")
        if not self.train.verifier and self.roles.policies == "shared":
            raise ConfigError("key 'roles.policies': 'shared' needs the verifier (train.verifier=true)")
        if self.train.train_final_generator and not self.protocol.final_generator:
            raise ConfigError("key 'train.train_final_generator': needs protocol.final_generator=true")
