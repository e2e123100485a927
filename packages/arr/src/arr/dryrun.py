"""`arr train --config FILE --dry-run`: what one GPU process of an ARR run holds, from its config (`shared.dryrun`).

The release trains two policies on separate GPU groups (4 + 4 cards, FSDP): each process holds one policy's shard,
its optimizer state, a frozen reference when KL is on, activations of `gpu.micro_batch` x `gpu.seq_len` tokens, and
the KV cache of a colocated rollout engine (`gpu.rollout_tokens`). The layout is the release's, stated in the `gpu`
section (the run is launched by its own scripts, not by an accelerate command on the config's first line). When both
roles use the same model the verifier's processes hold the same as the reasoner's, so one report covers both.
"""

from __future__ import annotations

from typing import Any


def specs(cfg: Any, layout: Any) -> list:
    from shared.dryrun import DryRunError, DryRunSpec

    if not cfg.model.path:
        raise DryRunError("model.path is empty (the tiny CPU policies are built on the fly): a dry run sizes a real "
                          "model; give a hub id of a bundled architecture or a folder with config.json")
    g = cfg.gpu

    def spec(model: str) -> DryRunSpec:
        return DryRunSpec(model=model, dtype=g.dtype, world_size=g.world_size, sharding=g.sharding,
                          micro_batch=g.micro_batch, seq_len=g.seq_len, reference_model=cfg.rl.beta > 0,
                          rollout_tokens=g.rollout_tokens)

    if cfg.roles.policies == "shared":
        return [(f"shared policy (both roles), one of {g.world_size} processes", spec(cfg.model.path))]
    verifier = cfg.model.verifier_path or cfg.model.path
    if verifier == cfg.model.path:
        return [(f"reasoner, one of {g.world_size} processes; the verifier's {g.world_size} processes hold the same",
                 spec(cfg.model.path))]
    return [(f"reasoner, one of {g.world_size} processes", spec(cfg.model.path)),
            (f"verifier, one of its own {g.world_size} processes", spec(verifier))]
