"""Supervised fine-tuning entry point: a thin wrapper over TRL's SFTTrainer for warm-starting policies.

Records are prompt/completion pairs; the loss covers the completion only (TRL's completion_only_loss) and TRL
appends the eos token, so the policy learns to stop. CPU flags are set by `trainer_flags`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.rl.trl_common import check_records, schedule_args


@dataclass
class SFTSettings:
    output_dir: str = "runs/sft"
    steps: int = 300
    lr: float = 3e-3
    batch_size: int = 32
    grad_accum: int = 1
    lr_schedule: str = "cosine"
    warmup_steps: int = 30
    weight_decay: float = 0.0
    max_length: int = 512
    seed: int = 0
    logging_steps: int = 50
    threads: int = 1  # 2 threads on a shared 2-core box ran 10x slower than 1 (OpenMP contention)


def run_sft(
    model: torch.nn.Module | str,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    settings: SFTSettings,
    source: str = "sft records",
    callbacks: Sequence[Any] = (),
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train on `prompt` -> `completion` records; returns (model, TRL log history). Nothing is saved.
    `callbacks` are transformers TrainerCallbacks (e.g. to evaluate and stop early)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(settings.threads)
    check_records(records, ("prompt", "completion"), source)
    data = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in records])
    args = SFTConfig(**schedule_args(settings), weight_decay=settings.weight_decay, completion_only_loss=True)
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=list(callbacks))
    trainer.train()
    return trainer.model, list(trainer.state.log_history)
