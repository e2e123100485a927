"""`cocoa train --config FILE --dry-run`: the vision-language embedder of the contrastive stage, sized from its config.

GradCache encodes a batch in chunks of `contrastive.chunk_size` items with gradients (the whole batch only as
embeddings), so one chunk's activations are what must fit; an item is `model.max_text_tokens` text tokens plus the
image's tokens (`IMAGE_TOKENS`, assumed).
"""

from __future__ import annotations

from typing import Any

IMAGE_TOKENS = 1024  # visual tokens of one image at up to about 900 x 900 pixels (Qwen2-VL: 28 x 28 px per token)


def specs(cfg: Any, layout: Any) -> list:
    from shared.dryrun import DryRunError, DryRunSpec

    if not cfg.model.path:
        raise DryRunError("model.path is empty (a tiny Qwen2-VL built on the fly): a dry run sizes a real model; give "
                          "a hub id of a bundled architecture (Qwen/Qwen2-VL-2B-Instruct) or a folder with config.json")
    c = cfg.contrastive
    dtype = "bfloat16" if cfg.model.dtype in ("auto", "") else cfg.model.dtype
    return [("embedder (contrastive stage)", DryRunSpec(
        model=cfg.model.path, kind="vl", dtype=dtype, micro_batch=c.chunk_size or c.batch_size,
        seq_len=cfg.model.max_text_tokens + IMAGE_TOKENS, gradient_checkpointing=False, lora_r=c.lora_r,
        world_size=layout.world_size, sharding=layout.sharding))]
