"""`rose train --config FILE --dry-run`: what one process of a ROSE run holds on a GPU, from its RoseConfig.

The policy is trained by the shared RL trainer, so the core's `rl_specs` sizes it; rose adds the prompt length and
its own engine switch (`rose.backend`: the tree rounds sample with vLLM or with the HF generator over the policy).
"""

from __future__ import annotations

import dataclasses
from typing import Any

PROMPT_TOKENS = 512  # a MATH problem in the release's prompt template stays under this (assumed, not measured)


def specs(cfg: Any, layout: Any) -> list:
    from shared.dryrun import DryRunError, rl_specs

    if not cfg.model.path:
        raise DryRunError("model.path is empty (the tiny warm-started policy): a dry run sizes a real model; give a "
                          "hub id of a bundled architecture or a folder with config.json")
    rl = dataclasses.replace(cfg.rl, generator_backend=cfg.rose.backend)  # rose's switch decides the engine
    return rl_specs(rl, cfg.model.path, PROMPT_TOKENS, layout)
