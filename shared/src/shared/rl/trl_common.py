"""What the TRL wrappers share: CPU-safe training flags, the schedule fields, and record validation with clear errors.

TRL on a CPU needs `use_cpu=True, bf16=False, gradient_checkpointing=False` (measured in the CPU calibration); on a
GPU the same wrappers leave precision to the caller. `report_to` is "none" unless the settings name TRL
integrations; every trainer writes metrics.jsonl and TensorBoard through `workspace_callbacks` regardless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


def trainer_flags(output_dir: str, seed: int, bf16: bool | None = None) -> dict[str, Any]:
    """TrainingArguments fields that make TRL run here: CPU flags without CUDA, no hub, no external loggers."""
    cuda = torch.cuda.is_available()
    return {
        "output_dir": output_dir,
        "seed": seed,
        "use_cpu": not cuda,
        "bf16": bool(bf16) if cuda and bf16 is not None else False,
        "fp16": False,
        "gradient_checkpointing": False,
        "report_to": "none",
        "save_strategy": "no",
        "disable_tqdm": False,
        "dataloader_num_workers": 0,
        "push_to_hub": False,
    }


def schedule_args(settings: Any) -> dict[str, Any]:
    """TrainingArguments fields of the optimisation schedule, from an SFTSettings/DPOSettings-like object (steps,
    lr, batch_size, grad_accum, lr_schedule, warmup_steps, max_length, logging_steps), plus the CPU-safe flags."""
    return {
        **trainer_flags(settings.output_dir, settings.seed),
        "max_steps": settings.steps,
        "learning_rate": settings.lr,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "lr_scheduler_type": settings.lr_schedule,
        "warmup_steps": settings.warmup_steps,
        "max_length": settings.max_length,
        "logging_steps": settings.logging_steps,
        "report_to": getattr(settings, "report_to", "none"),  # TRL's own integrations (wandb, tensorboard, ...)
    }


def workspace_callbacks(settings: Any) -> list:
    """The callbacks every TRL trainer of the core adds: metrics.jsonl + TensorBoard in `settings.output_dir`
    (the workspace's training-output layout, `shared.rl.trl_logging`)."""
    from shared.rl.trl_logging import MetricsCallback

    return [MetricsCallback(settings.output_dir)]


def check_records(records: Sequence[Mapping[str, Any]], fields: Sequence[str], source: str) -> None:
    """Every record must hold non-empty strings in `fields`; raise ValueError naming source, record and field."""
    if not records:
        raise ValueError(f"{source}: no records")
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ValueError(f"{source}: record {i} is a {type(rec).__name__}, expected a mapping")
        for f in fields:
            value = rec.get(f)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{source}: record {i} (id {rec.get('id', '?')!r}) needs a non-empty string field {f!r}")
