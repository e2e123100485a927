"""Supervised fine-tuning entry point: a thin wrapper over TRL's SFTTrainer for warm-starting policies.

Records come in one of two forms (all records of a call in the same form):
- prompt/completion strings: the loss covers the completion only (TRL's completion_only_loss) and TRL appends the
  eos token, so the policy learns to stop;
- token ids `{input_ids, completion_mask}` (multi-turn transcripts): the loss covers exactly the tokens whose mask
  is 1 (TRL turns the mask into labels, -100 elsewhere), so a transcript's observation tokens are never trained
  and nothing is re-tokenised or appended. `trajectory_to_example` builds one from a `shared.rollout.Trajectory`
  (prompt mask 0, then the trajectory's own loss mask).
Every example must fit `max_length` (TRL would cut it silently otherwise). CPU flags are set by `trainer_flags`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.rl.trl_common import check_records, schedule_args, workspace_callbacks

TOKEN_FIELDS = ("input_ids", "completion_mask")


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
    report_to: str = "none"  # passed to TRL unchanged (e.g. "wandb", "tensorboard"); metrics.jsonl is always written


def is_token_records(records: Sequence[Mapping[str, Any]]) -> bool:
    """True when the records are token-id examples (the first one has `input_ids`)."""
    return bool(records) and isinstance(records[0], Mapping) and "input_ids" in records[0]


def check_token_examples(records: Sequence[Mapping[str, Any]], source: str, vocab_size: int | None = None,
                         max_length: int | None = None) -> list[dict[str, list[int]]]:
    """Validate `{input_ids, completion_mask}` examples and return plain copies; ValueError names source, record
    and field (lengths differ, a mask value not 0/1, an id outside the vocabulary, too long, nothing to train)."""
    if not records:
        raise ValueError(f"{source}: no records")
    out = []
    for i, rec in enumerate(records):
        where = f"{source}: record {i}" + (f" (id {rec['id']!r})" if isinstance(rec, Mapping) and "id" in rec else "")
        if not isinstance(rec, Mapping) or "input_ids" not in rec:
            raise ValueError(f"{where}: expected a mapping with {TOKEN_FIELDS} like record 0")
        ids, mask = rec.get("input_ids"), rec.get("completion_mask")
        for name, value in (("input_ids", ids), ("completion_mask", mask)):
            if not isinstance(value, Sequence) or isinstance(value, str) or not value:
                raise ValueError(f"{where}: field {name!r} must be a non-empty list of integers")
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
                raise ValueError(f"{where}: field {name!r} must hold integers only")
        if len(ids) != len(mask):
            raise ValueError(f"{where}: field 'completion_mask' has {len(mask)} entries for {len(ids)} input_ids")
        if any(m not in (0, 1) for m in mask):
            raise ValueError(f"{where}: field 'completion_mask' must hold only 0 and 1")
        if not any(mask[1:]):  # token 0 has no preceding context, so it is never a target
            raise ValueError(f"{where}: field 'completion_mask' marks no token after the first: nothing to train")
        bad = next((x for x in ids if x < 0 or (vocab_size is not None and x >= vocab_size)), None)
        if bad is not None:
            raise ValueError(f"{where}: field 'input_ids' holds {bad}, outside the vocabulary of {vocab_size}")
        if max_length is not None and len(ids) > max_length:
            raise ValueError(f"{where}: {len(ids)} tokens exceed max_length {max_length} (raise SFTSettings.max_length "
                             f"or shorten the example; it would be cut silently)")
        out.append({"input_ids": [int(x) for x in ids], "completion_mask": [int(m) for m in mask]})
    return out


def trajectory_to_example(traj: Any, eos_id: int | None = None) -> dict[str, list[int]]:
    """One SFT example from a `shared.rollout.Trajectory`: its prompt ids (mask 0) and response ids with the
    trajectory's loss mask (policy tokens 1, observations 0), taken as they are. With `eos_id`, a trainable eos is
    appended unless the response already ends with it (so the policy learns to stop after a hand-built trace)."""
    traj.validate()
    if not traj.prompt_ids:
        raise ValueError("trajectory_to_example: the trajectory has no prompt ids")
    ids = [int(i) for i in traj.prompt_ids] + [int(i) for i in traj.response_ids]
    mask = [0] * len(traj.prompt_ids) + [int(m) for m in traj.loss_mask]
    if eos_id is not None and (not traj.response_ids or traj.response_ids[-1] != eos_id):
        ids.append(int(eos_id))
        mask.append(1)
    return {"input_ids": ids, "completion_mask": mask}


def _vocab_size(model: torch.nn.Module | str, tokenizer: Any) -> int | None:
    if isinstance(model, torch.nn.Module) and hasattr(model, "get_input_embeddings"):
        return int(model.get_input_embeddings().num_embeddings)
    try:
        return len(tokenizer)
    except TypeError:
        return None


def prepare_sft_data(model: torch.nn.Module | str, tokenizer: Any, records: Sequence[Mapping[str, Any]],
                     settings: SFTSettings, source: str = "sft records") -> list[dict[str, Any]]:
    """The validated rows `run_sft` trains on (either form); raises ValueError before any training."""
    if is_token_records(records):
        return check_token_examples(records, source, _vocab_size(model, tokenizer), settings.max_length)
    check_records(records, ("prompt", "completion"), source)
    return [{"prompt": r["prompt"], "completion": r["completion"]} for r in records]


def run_sft(
    model: torch.nn.Module | str,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    settings: SFTSettings,
    source: str = "sft records",
    callbacks: Sequence[Any] = (),
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train on `prompt` -> `completion` records or on `{input_ids, completion_mask}` examples; returns (model, TRL
    log history). Nothing is saved. `callbacks` are transformers TrainerCallbacks (e.g. to evaluate and stop
    early)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(settings.threads)
    data = Dataset.from_list(prepare_sft_data(model, tokenizer, records, settings, source))
    args = SFTConfig(**schedule_args(settings), weight_decay=settings.weight_decay, completion_only_loss=True)
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=[*callbacks, *workspace_callbacks(settings)])
    trainer.train()
    return trainer.model, list(trainer.state.log_history)
