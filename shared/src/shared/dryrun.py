"""GPU-readiness dry run: build a model from its config on the `meta` device and estimate its memory per process.

No weights are read and nothing is downloaded: `meta_model(arch)` builds the architecture from a config mapping (the
fields of a hub `config.json`, e.g. Qwen2.5-7B-Instruct's) with empty tensors, so a paper-scale config can be
checked on a CPU box. `training_memory(...)` is the usual back-of-envelope estimate of one training process:

- weights: parameters x bytes of the training dtype (bf16: 2), divided by the shards under ZeRO-3/FSDP;
- gradients: trainable parameters x the gradient dtype's bytes (divided by shards under ZeRO-2 and up);
- optimizer: AdamW keeps fp32 master weights and two moments: 12 bytes per trainable parameter (divided by shards
  under ZeRO-1 and up);
- a frozen reference model (KL): weights again, in the inference dtype;
- activations: 34 x hidden x tokens x layers x 2 bytes (the Megatron estimate without recomputation), or about
  2 x hidden x tokens x layers x 2 bytes with gradient checkpointing;
- rollout engine (vLLM): `gpu_memory_utilization` of the card when it shares the GPU.

These are estimates, not measurements: `dry_run_report` says so in its output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
GIB = 1024**3


def meta_model(arch: Mapping[str, Any]) -> Any:
    """A causal LM built from `arch` (a `config.json` mapping with `model_type`) on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(arch)
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise ValueError("the architecture needs a 'model_type' (e.g. qwen2, llama), as in a hub config.json")
    try:
        config = AutoConfig.for_model(model_type, **fields)
    except (KeyError, ValueError) as err:
        raise ValueError(f"cannot build a {model_type!r} config from {sorted(fields)}: {err}") from None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def parameter_count(model: Any) -> int:
    """Parameters of a model, counting tied weights once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


@dataclass
class MemoryEstimate:
    params: int
    trainable: int
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    reference_gib: float
    activations_gib: float
    rollout_gib: float
    total_gib: float


def training_memory(params: int, hidden: int, layers: int, tokens_per_micro_batch: int, trainable: int | None = None,
                    dtype: str = "bfloat16", zero_stage: int = 0, shards: int = 1, reference: bool = False,
                    gradient_checkpointing: bool = True, rollout_gib: float = 0.0) -> MemoryEstimate:
    """The per-process memory estimate of one training process (see the module docstring)."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BYTES)}, got {dtype!r}")
    if zero_stage not in (0, 1, 2, 3) or shards < 1:
        raise ValueError(f"zero_stage must be 0-3 and shards >= 1, got {zero_stage}, {shards}")
    trainable = params if trainable is None else trainable
    b = DTYPE_BYTES[dtype]
    weights = params * b / (shards if zero_stage >= 3 else 1)
    grads = trainable * b / (shards if zero_stage >= 2 else 1)
    optim = trainable * 12 / (shards if zero_stage >= 1 else 1)
    ref = params * b / (shards if zero_stage >= 3 else 1) if reference else 0.0
    per_token_layer = 2 if gradient_checkpointing else 34
    acts = per_token_layer * hidden * tokens_per_micro_batch * layers * 2
    parts = [x / GIB for x in (weights, grads, optim, ref, acts)]
    return MemoryEstimate(params, trainable, *(round(x, 2) for x in parts), round(rollout_gib, 2),
                          round(sum(parts) + rollout_gib, 2))


def dry_run_report(arch: Mapping[str, Any], tokens_per_micro_batch: int, gpu_gib: float = 80.0,
                   **memory: Any) -> dict[str, Any]:
    """Build `arch` on the meta device and estimate a training process's memory; `fits` compares with `gpu_gib`."""
    model = meta_model(arch)
    params = parameter_count(model)
    cfg = model.config
    est = training_memory(params, cfg.hidden_size, cfg.num_hidden_layers, tokens_per_micro_batch, **memory)
    return {"model_type": cfg.model_type, "params": params, "params_billions": round(params / 1e9, 3),
            "memory_per_process_gib": asdict(est), "gpu_gib": gpu_gib, "fits": est.total_gib <= gpu_gib,
            "note": "estimate from parameter counts and a standard activation formula, not a measurement"}
