"""Config dataclasses for dome (loaded from YAML with dotted overrides through shared.config)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    path: str | None = None  # a T5 checkpoint (hub id or local dir); None builds a tiny random T5
    d_model: int = 128
    d_ff: int = 1024  # wide FFN: the closed-form edit needs more key dimensions than edited keys
    layers: int = 3
    heads: int = 4
    tokenizer: Literal["bpe", "char"] = "bpe"  # tiny model only: "bpe" (trained on the corpus) or "char"
    vocab_size: int = 2000
    max_input_tokens: int = 24


@dataclass
class DocIdConfig:
    scheme: Literal["atomic", "naive", "semantic"] = "semantic"
    k: int = 10
    c: int = 10
    encoder: str | None = None  # embedding model for semantic IDs; None = the offline all-MiniLM-L6-v2


@dataclass
class DataConfig:
    source: str = "hotpotqa"  # hotpotqa | musique | cranfield | a JSONL file of {"id", "text"}
    max_docs: int = 400
    train_queries: int = 8  # pseudo-queries (text spans) per document used for training / editing
    test_queries: int = 2  # held-out spans per document used for evaluation
    query_words_min: int = 5
    query_words_max: int = 10
    index_words: int = 16  # words of the document text used for the indexing example
    # held-out spans share no word n-gram of this length with any training input (dome.heldout)
    heldout_ngram: int = 3


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3  # 3e-3 left a 320-passage collection stuck at its docID-prefix marginals (R@10 0.06)
    warmup: int = 50
    index_weight: float = 0.25  # share of indexing (doc -> docID) examples in each batch
    checkpoint_every: int = 200  # steps between atomic training checkpoints (0 = none); `--resume` continues


@dataclass
class EvalConfig:
    beams: int = 10
    batch_size: int = 64


@dataclass
class EditConfig:
    layers: list[int] = field(default_factory=list)  # empty = pick by causal tracing
    top_layers: int = 2
    trace_queries: int = 64
    loss: Literal["hybrid", "hard"] = "hybrid"
    steps: int = 40
    lr: float = 0.5
    stop_loss: float = 0.0  # stop the edit-vector steps once the hard-label loss is at or below this (0 = off)
    clamp_norm: float = 2.0  # ‖δ‖ ≤ clamp_norm · ‖h‖ at each edited position
    mu: float = 1e-4  # norm penalty on δ
    soft_lambda: float = 1.0
    soft_hard_weight: float = 0.5
    soft_temperature: float = 2.0
    # plain + a strong C0 weight: on dev spans it kept old documents as well as the null-space variant and stored
    # more new ones (README, "Diagnosis"); null_space remains available
    update: Literal["plain", "null_space"] = "plain"
    null_energy: float = 1e-3  # share of the old keys' energy the null space may hold
    alpha: float = 1.0  # ridge of the closed-form solves
    cov_weight: float = 1e4  # λ of the plain solve (times the mean key covariance)
    update_cov: bool = True  # add each batch's keys to the preserved statistics before the next batch


@dataclass
class ProtocolConfig:
    initial_share: float = 0.8  # share of the collection in D0
    batches: int = 2  # new batches D1..Dn, split evenly from the rest
    incremental_max_steps: int = 600
    incremental_check_every: int = 50
    replay_ratio: float = 0.5
    incremental_lr: float = 1e-3
    new_queries: int = 0  # pseudo-queries per new document for every update method (0 = data.train_queries)
    # matched forgetting budget: each editor's C0 weight λ is chosen on dev spans as the one with the highest new
    # R@10 whose old R@10 stays within max_old_drop of before the update; empty grid = the configured λ as it is
    weight_grid: list[float] = field(default_factory=lambda: [1e3, 3e3, 1e4, 3e4])
    max_old_drop: float = 0.03
    old_dev_per_doc: int = 2  # dev spans per indexed document for the old-recall side of the selection (240 quick)


def _memit_defaults() -> EditConfig:
    return EditConfig(layers=[], loss="hard", update="plain", cov_weight=1e3, update_cov=False)


@dataclass
class DomeConfig:
    seed: int = 0
    seeds: list[int] = field(default_factory=list)  # replicate: one run per seed, rows = mean ± sd (empty = [seed])
    threads: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)
    docids: DocIdConfig = field(default_factory=DocIdConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    edit: EditConfig = field(default_factory=EditConfig)
    memit: EditConfig = field(default_factory=_memit_defaults)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
