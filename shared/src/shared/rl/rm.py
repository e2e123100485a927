"""Reward-model training: a thin wrapper over TRL's RewardTrainer (Bradley-Terry loss on chosen vs rejected).

Records are {prompt, chosen, rejected} strings. They are tokenised here with `shared.rewards.rm.rm_input_ids`
(the input `RewardModel.score` uses) and handed to TRL as a processed dataset, so training and scoring read the
same tokens, and a pair longer than `max_length` is an error naming the record (TRL would drop it silently).
CPU flags and the schedule come from `trl_common`, as for `run_sft` / `run_dpo`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.rewards.rm import rm_input_ids
from shared.rl.trl_common import check_records, schedule_args, workspace_callbacks


@dataclass
class RMSettings:
    output_dir: str = "runs/rm"
    steps: int = 200
    lr: float = 1e-4
    batch_size: int = 16
    grad_accum: int = 1
    lr_schedule: str = "linear"
    warmup_steps: int = 0
    max_length: int = 512
    center_rewards_coefficient: float | None = None  # e.g. 0.01 keeps rewards near zero mean
    seed: int = 0
    logging_steps: int = 10
    threads: int = 1  # 2 threads on a shared 2-core box ran 10x slower than 1 (OpenMP contention)
    report_to: str = "none"  # passed to TRL unchanged (e.g. "wandb", "tensorboard"); metrics.jsonl is always written


def rm_examples(tokenizer: Any, records: Sequence[Mapping[str, Any]], max_length: int,
                source: str = "preference records") -> list[dict[str, list[int]]]:
    """{chosen_ids, rejected_ids} per record; a pair over `max_length` tokens raises ValueError naming it."""
    check_records(records, ("prompt", "chosen", "rejected"), source)
    out = []
    for i, rec in enumerate(records):
        chosen = rm_input_ids(tokenizer, rec["prompt"], rec["chosen"])
        rejected = rm_input_ids(tokenizer, rec["prompt"], rec["rejected"])
        if max(len(chosen), len(rejected)) > max_length:
            raise ValueError(f"{source}: record {i} (id {rec.get('id', '?')!r}) has {max(len(chosen), len(rejected))} "
                             f"tokens > max_length {max_length}")
        out.append({"chosen_ids": chosen, "rejected_ids": rejected})
    return out


def run_rm(model: torch.nn.Module | str, tokenizer: Any, records: Sequence[Mapping[str, Any]], settings: RMSettings,
           source: str = "preference records", callbacks: Sequence[Any] = ()
           ) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train a reward model (a one-label sequence classifier, or a path TRL loads as one); returns (model, TRL log
    history). Nothing is saved: wrap the returned model in `shared.rewards.rm.RewardModel` to score."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    torch.set_num_threads(settings.threads)
    if tokenizer.pad_token_id is None:
        raise ValueError("run_rm needs a tokenizer with a pad token (pairs are padded into batches)")
    if isinstance(model, torch.nn.Module):
        model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last non-pad token
    data = Dataset.from_list(rm_examples(tokenizer, records, settings.max_length, source))
    args = RewardConfig(**schedule_args(settings), center_rewards_coefficient=settings.center_rewards_coefficient)
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                            callbacks=[*callbacks, *workspace_callbacks(settings)])
    trainer.train()
    return trainer.model, list(trainer.state.log_history)
