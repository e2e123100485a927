"""Build or load the backbone MLLM and wrap it as a ``CocoaModel``.

Users point ``model.path`` at a Qwen2-VL / Qwen2.5-VL checkpoint (hub id or folder); CPU runs and tests build a tiny
random Qwen2-VL-architecture model (``shared.modeling.tiny.tiny_qwen2_vl``) with a byte-level BPE tokenizer trained
on the suite's texts, so captions are a handful of tokens. Settings saved by ``CocoaModel.save`` (input
attention, text length, heads) are restored on load.
"""

from __future__ import annotations

import json
from pathlib import Path

from shared.modeling import load_model
from shared.modeling.tiny import build_tokenizer, tiny_qwen2_vl

from cocoa.config import ModelConfig
from cocoa.model import SETTINGS_FILE, CocoaModel


def build_tiny(out_dir: str | Path, texts: list[str], cfg: ModelConfig, image_size: int, seed: int = 0) -> Path:
    """A random tiny Qwen2-VL whose processor keeps ``image_size`` px images at their size (no resize)."""
    tokenizer = build_tokenizer(texts, kind="bpe", vocab_size=cfg.tokenizer_vocab)
    return tiny_qwen2_vl(
        out_dir,
        tokenizer=tokenizer,
        hidden=cfg.hidden,
        layers=cfg.layers,
        heads=cfg.heads,
        ffn=cfg.ffn,
        vision_depth=cfg.vision_depth,
        vision_dim=cfg.vision_dim,
        min_pixels=min(56 * 56, image_size * image_size),
        max_pixels=image_size * image_size,
        seed=seed,
    )


def load_cocoa(path: str | Path, cfg: ModelConfig) -> CocoaModel:
    """Load backbone + processor with ``shared.modeling.load_model`` and restore the CoCoA heads and settings."""
    backbone, processor = load_model(
        str(path), kind="vl", dtype=cfg.dtype, device=cfg.device, attn_implementation=cfg.attn_implementation
    )
    settings = {"input_attention": cfg.input_attention, "max_text_tokens": cfg.max_text_tokens}
    saved = Path(path) / SETTINGS_FILE
    if saved.is_file():
        settings.update(json.loads(saved.read_text()))
    model = CocoaModel(
        backbone,
        processor.tokenizer,
        processor.image_processor,
        input_attention=settings["input_attention"],
        max_text_tokens=settings["max_text_tokens"],
        patch_pool=settings.get("patch_pool", 2),
        processor=processor,
    )
    model.load_heads(path)
    return model.to(device=backbone.device, dtype=backbone.dtype)
