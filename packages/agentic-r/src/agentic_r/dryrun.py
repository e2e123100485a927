"""`agentic-r iterate --config FILE --dry-run`: the retriever an Agentic-R round trains and the agent it serves.

The retriever trains on groups of one positive and `label.num_negatives` negatives: a step encodes
`train.batch_groups` queries and their groups' passages of up to `retriever.max_length` tokens. An `hf` agent runs
on the same GPU for inference only (one prompt at a time through the HF generator: weights plus one row's KV cache
of `AGENT_CONTEXT` tokens). Endpoint judges live on their own servers and are not counted.
"""

from __future__ import annotations

from typing import Any

AGENT_CONTEXT = 4096  # question + up to 5 searches x 3 passages + the agent's turns (assumed)


def specs(cfg: Any, layout: Any) -> list:
    from shared.dryrun import DryRunError, DryRunSpec

    r = cfg.retriever
    if not r.base_model:
        raise DryRunError("retriever.base_model is empty (the offline MiniLM): a dry run sizes a real encoder; give a "
                          "hub id of a bundled architecture (intfloat/e5-base-v2) or a folder with config.json")
    if r.train_layers != "all":
        raise DryRunError(f"retriever.train_layers={r.train_layers!r}: the dry run sizes full fine-tuning (all); "
                          "training only the top layers needs less")
    sequences = cfg.train.batch_groups * (2 + cfg.label.num_negatives)  # queries + (positive + negatives) each
    out = [("retriever (training)", DryRunSpec(
        model=r.base_model, kind="encoder", dtype="float32", micro_batch=sequences, seq_len=r.max_length,
        gradient_checkpointing=False, world_size=layout.world_size, sharding=layout.sharding))]
    if cfg.agent.kind == "hf":
        if not cfg.agent.path:
            raise DryRunError("agent.kind is hf but agent.path is empty")
        out.append(("agent (inference)", DryRunSpec(
            model=cfg.agent.path, trainable=False, micro_batch=1, seq_len=AGENT_CONTEXT, gradient_checkpointing=False,
            rollout_tokens=AGENT_CONTEXT)))
    return out
