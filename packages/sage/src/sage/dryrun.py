"""`sage train --config FILE --dry-run`: the DPO policy of a SAGE run and what sits beside it, sized from its config.

One process holds the trained policy, the frozen reference (DPO), and the KV cache of its own sampling (the HF
generator over the policy decodes `sampling.batch_size` rows of prompt + `sampling.max_new_tokens`); a DPO step
scores `train.batch_size` pairs, chosen and rejected, of up to the same length.
"""

from __future__ import annotations

from typing import Any

PROMPT_TOKENS = 256  # a GSM8K / MATH problem in the configured template stays under this (assumed, not measured)


def specs(cfg: Any, layout: Any) -> list:
    from shared.dryrun import DryRunError, DryRunSpec

    if not cfg.model.path:
        raise DryRunError("model.path is empty (the tiny warm-started policy): a dry run sizes a real model; give a "
                          "hub id of a bundled architecture or a folder with config.json")
    seq = PROMPT_TOKENS + cfg.sampling.max_new_tokens
    dtype = "bfloat16" if cfg.model.dtype == "auto" else cfg.model.dtype
    return [("policy (DPO)", DryRunSpec(
        model=cfg.model.path, dtype=dtype, micro_batch=2 * cfg.train.batch_size, seq_len=seq, reference_model=True,
        rollout_tokens=cfg.sampling.batch_size * seq, world_size=layout.world_size, sharding=layout.sharding))]
