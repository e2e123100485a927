"""Preference optimisation entry point: a thin wrapper over TRL's DPOTrainer.

Records are prompt/chosen/rejected strings. `loss` picks TRL's loss ("sigmoid" = DPO, "ipo", ...);
`sft_weight > 0` adds the negative log-likelihood of the chosen answer (RPO-style DPO + SFT, which the CPU
calibration found stable where plain DPO decays), through TRL's multi-loss `loss_type=[loss, "sft"]`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.rl.trl_common import check_records, schedule_args, workspace_callbacks


@dataclass
class DPOSettings:
    output_dir: str = "runs/dpo"
    steps: int = 100
    lr: float = 1e-5
    beta: float = 0.1
    loss: str = "sigmoid"
    sft_weight: float = 0.0
    label_smoothing: float = 0.0
    batch_size: int = 8
    grad_accum: int = 1
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    max_length: int = 512
    seed: int = 0
    logging_steps: int = 10
    threads: int = 1  # 2 threads on a shared 2-core box ran 10x slower than 1 (OpenMP contention)
    report_to: str = "none"  # passed to TRL unchanged (e.g. "wandb", "tensorboard"); metrics.jsonl is always written


def run_dpo(
    model: torch.nn.Module | str,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    settings: DPOSettings,
    ref_model: torch.nn.Module | None = None,
    source: str = "preference records",
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train on preference pairs; returns (model, TRL log history). The reference defaults to a frozen copy."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    torch.set_num_threads(settings.threads)
    check_records(records, ("prompt", "chosen", "rejected"), source)
    if settings.sft_weight < 0:
        raise ValueError(f"DPOSettings.sft_weight must be >= 0, got {settings.sft_weight}")
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in records])
    losses, weights = [settings.loss], [1.0]
    if settings.sft_weight > 0:
        losses.append("sft")
        weights.append(settings.sft_weight)
    args = DPOConfig(
        **schedule_args(settings),
        beta=settings.beta,
        loss_type=losses,
        loss_weights=weights,
        label_smoothing=settings.label_smoothing,
    )
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=workspace_callbacks(settings))
    trainer.train()
    return trainer.model, list(trainer.state.log_history)
