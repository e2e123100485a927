"""Experiment configuration of the cocoa package: nested dataclasses filled from YAML by ``shared.config``.

One ``CocoaConfig`` drives every subcommand: ``pretrain --stage 1|2`` reads ``stage1``/``stage2``, ``train`` reads
``contrastive``, ``eval`` reads ``eval``, and ``replicate`` runs the whole comparison (generative pre-training of the
shared starting model, then the ``contrastive`` and ``cocoa`` rows) from the same file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ModelConfig:
    """The backbone: a local folder or hub id, or empty to build a tiny random Qwen2-VL on the fly."""

    path: str = ""
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ffn: int = 512
    vision_depth: int = 2
    vision_dim: int = 64
    tokenizer_vocab: int = 400
    input_attention: Literal["causal", "bidirectional"] = "causal"
    max_text_tokens: int = 48
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"


@dataclass
class DataConfig:
    """Training pairs and MMEB-format evaluation: the procedural image-text suite, or an MMEB folder."""

    suite: Literal["synthetic", "mmeb"] = "synthetic"
    path: str = ""  # MMEB folder when suite == "mmeb"
    train_size: int = 2000
    eval_queries: int = 100  # queries per evaluation dataset
    candidates: int = 50  # candidates per query (gold included)
    image_size: int = 112
    # synthetic suite only: "heldout" evaluates on (shape or digit, colour) pairs never seen in training; "seen"
    # on fresh scenes drawn from the training combinations (separates learning the content from generalising)
    eval_combos: Literal["heldout", "seen"] = "heldout"


@dataclass
class GenerativeConfig:
    """Generative (captioning / language-model) pre-training that makes the shared starting MLLM."""

    steps: int = 400
    batch_size: int = 32
    lr: float = 1e-3  # at 3e-3 the break-out from the image-blind plateau was erratic here
    warmup: int = 20
    # "captions": image -> caption only; "captions_qa" adds (image, question + answer) items. Measured here: the
    # mixed items at lr 3e-3 left the tiny model image-blind after 400 steps; captions alone at lr 1e-3 made it read
    # its images from step ~150 (the mix was not retried at lr 1e-3; see the README)
    texts: Literal["captions", "captions_qa"] = "captions"


@dataclass
class Stage1Config:
    """Collaborative attention: bidirectional input attention, masked text + masked image-patch reconstruction."""

    steps: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 10
    text_mask_prob: float = 0.4
    image_mask_prob: float = 0.5
    mae_weight: float = 0.1


@dataclass
class Stage2Config:
    """EOS-based reconstruction: the copy after <EOS> sees only <EOS> and its own past."""

    steps: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 10
    patch_weight: float = 0.1


@dataclass
class ContrastiveConfig:
    """Stage 3: InfoNCE on normalised <EOS> embeddings, in-batch + hard negatives, optional GradCache and LoRA."""

    steps: int = 150
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 10
    temperature: float = 0.02
    hard_negatives: bool = True
    chunk_size: int = 0  # GradCache chunk; 0 encodes the whole batch at once
    eval_every: int = 0  # > 0: also measure P@1 every this many steps (the learning curve of the row)
    lora_r: int = 0  # 0 = full fine-tuning
    lora_alpha: int = 32


@dataclass
class EvalConfig:
    batch_size: int = 64
    probe_items: int = 128  # items whose reconstruction-from-<EOS> loss is measured


@dataclass
class CocoaConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generative: GenerativeConfig = field(default_factory=GenerativeConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    rows: list[str] = field(default_factory=lambda: ["contrastive", "cocoa"])  # replicate rows
    threads: int = 1  # 1 thread per process: oversubscribed cores made torch many times slower here
    out_dir: str = "runs/cocoa"
