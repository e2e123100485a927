"""Continual pre-training: causal-LM training on raw text with packing, over TRL's SFTTrainer.

Each text is tokenised without special tokens and ends with the eos token; with `packing` the token stream of all
texts is cut into blocks of exactly `block_size` (documents run across block borders and attend to each other
inside a block, as in GPT-style pre-training); the last short block is dropped, or kept with `keep_last` (the
collator then pads it and masks the padding out of the loss). Without packing, each text is one example, cut to
`block_size`. Blocks go to SFTTrainer as token ids (a processed dataset), so every token is a label; the CPU flags
and the schedule come from `trl_common` as for `run_sft`. `perplexity` scores held-out text the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shared.rl.trl_common import schedule_args, workspace_callbacks


@dataclass
class LMSettings:
    output_dir: str = "runs/cpt"
    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 16
    grad_accum: int = 1
    lr_schedule: str = "cosine"
    warmup_steps: int = 10
    weight_decay: float = 0.0
    block_size: int = 256
    packing: bool = True
    keep_last: bool = False  # packing: keep the last short block (padded in its batch) instead of dropping it
    seed: int = 0
    logging_steps: int = 10
    threads: int = 1  # 2 threads on a shared 2-core box ran 10x slower than 1 (OpenMP contention)
    report_to: str = "none"  # passed to TRL unchanged (e.g. "wandb", "tensorboard"); metrics.jsonl is always written

    @property
    def max_length(self) -> int:  # the field name schedule_args reads
        return self.block_size


def tokenize_texts(tokenizer: Any, texts: Sequence[str], source: str = "texts") -> list[list[int]]:
    """Token ids of each text followed by eos; a text that is not a non-empty string raises ValueError naming it."""
    if tokenizer.eos_token_id is None:
        raise ValueError("run_lm needs a tokenizer with an eos token (documents are separated by it)")
    if isinstance(texts, str) or not texts:
        raise ValueError(f"{source}: expected a non-empty list of strings")
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{source}: text {i} is not a non-empty string ({type(text).__name__})")
        out.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id])
    return out


def pack_token_ids(sequences: Sequence[Sequence[int]], block_size: int, keep_last: bool = False) -> list[list[int]]:
    """Concatenate the sequences and cut the stream into blocks of `block_size` (the remainder: dropped, or one short
    block with `keep_last`)."""
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}")
    stream = [t for seq in sequences for t in seq]
    full = len(stream) // block_size * block_size
    blocks = [stream[i: i + block_size] for i in range(0, full, block_size)]
    if keep_last and full < len(stream):
        blocks.append(stream[full:])
    return blocks


def lm_blocks(tokenizer: Any, texts: Sequence[str], settings: LMSettings, source: str = "texts") -> list[list[int]]:
    """The training examples of `texts` under `settings` (packed blocks, or one cut example per text)."""
    ids = tokenize_texts(tokenizer, texts, source)
    if settings.packing:
        blocks = pack_token_ids(ids, settings.block_size, settings.keep_last)
        if not blocks:
            total = sum(len(x) for x in ids)
            raise ValueError(f"{source}: {total} tokens make no full block of {settings.block_size}; use a smaller "
                             f"block_size or keep_last=True")
        return blocks
    return [x[: settings.block_size] for x in ids]


def run_lm(model: torch.nn.Module | str, tokenizer: Any, texts: Sequence[str], settings: LMSettings,
           source: str = "texts", callbacks: Sequence[Any] = ()) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train a causal LM on raw `texts` (continual pre-training); returns (model, TRL log history). Nothing is
    saved."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(settings.threads)
    blocks = lm_blocks(tokenizer, texts, settings, source)
    data = Dataset.from_list([{"input_ids": b} for b in blocks])
    args = SFTConfig(**schedule_args(settings), weight_decay=settings.weight_decay, packing=False)
    Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=[*callbacks, *workspace_callbacks(settings)])
    trainer.train()
    return trainer.model, list(trainer.state.log_history)


@torch.no_grad()
def perplexity(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], block_size: int = 256,
               batch_size: int = 8) -> float:
    """exp(mean next-token NLL) of `texts`, packed like training (every full block, plus the last short one)."""
    blocks = pack_token_ids(tokenize_texts(tokenizer, texts, "perplexity texts"), block_size, keep_last=True)
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        batch = blocks[i: i + batch_size]
        width = max(len(b) for b in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, block in enumerate(batch):
            ids[row, : len(block)] = torch.tensor(block)
            mask[row, : len(block)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device)).squeeze(-1)
        keep = mask[:, 1:].to(device).bool()
        total -= logp[keep].sum().item()
        count += int(keep.sum().item())
    return math.exp(total / max(count, 1))
