"""`dome train --config FILE --dry-run`: the T5 generative retriever a DOME run trains, sized from its config.

Training is plain float32 AdamW on batches of `train.batch_size` examples of at most `model.max_input_tokens` input
tokens (docID targets are a handful of tokens); the editing stage's closed-form solves are d_ff x d_ff matrices in
float64 (3072 x 3072 for t5-base: 72 MiB each), small beside the model.
"""

from __future__ import annotations

from typing import Any


def specs(cfg: Any, layout: Any) -> list:
    from shared.dryrun import DryRunError, DryRunSpec

    if not cfg.model.path:
        raise DryRunError("model.path is empty (a tiny T5 built on the fly): a dry run sizes a real model; give a hub "
                          "id of a bundled architecture (google-t5/t5-base) or a folder with config.json")
    return [("generative retriever (T5, training)", DryRunSpec(
        model=cfg.model.path, kind="seq2seq", dtype="float32", micro_batch=cfg.train.batch_size,
        seq_len=cfg.model.max_input_tokens, gradient_checkpointing=False, world_size=layout.world_size,
        sharding=layout.sharding))]
