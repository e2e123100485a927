"""`matchtir train --config FILE --dry-run`: what one process of a MatchTIR run holds on a GPU, from its config.

The shared RL trainer trains the policy (`rl_specs` sizes it). A multi-turn rollout's response holds the policy's
turns and the tool responses, bounded by `rollout.max_response_tokens`; the HF generator decodes
`rollout.gen_batch_size` rows at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

PROMPT_TOKENS = 1024  # system prompt with the tools' JSON schemas plus the request (assumed for FTRL-style samples)


def specs(cfg: Any, layout: Any) -> list:
    from shared.dryrun import DryRunError, rl_specs

    if not cfg.model.path:
        raise DryRunError("model.path is empty (the tiny policy built on the fly): a dry run sizes a real model; give "
                          "a hub id of a bundled architecture or a folder with config.json")
    if cfg.rl.generator_backend != "hf":
        raise DryRunError("rl.generator_backend: matchtir's multi-turn rollouts run on the HF generator "
                          "(matchtir.train builds it); vLLM is not wired into matchtir yet, use hf")
    rl = dataclasses.replace(cfg.rl, max_new_tokens=cfg.rollout.max_response_tokens,
                             gen_batch_size=cfg.rollout.gen_batch_size)
    return rl_specs(rl, cfg.model.path, PROMPT_TOKENS, layout)
