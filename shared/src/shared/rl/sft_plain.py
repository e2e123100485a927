"""Supervised fine-tuning without TRL: a plain masked next-token loop, for tiny models on CPU.

`run_plain_sft` takes the records and `SFTSettings` of `shared.rl.sft.run_sft` and trains the same loss: the mean
next-token cross-entropy over the completion tokens of a batch (prompt/completion records: the completion plus an
eos; token-id records: the tokens whose `completion_mask` is 1). It exists because TRL 1.16's SFTTrainer always
computes that loss through its chunked log-prob kernel, which on a CPU costs about four times the model's own
forward and backward for the workspace's tiny policies (hidden 128, vocabulary ~1.2k): measured 1.5 CPU-s per step
against 0.36 for this loop at batch 16 x ~190 tokens. Differences from `run_sft`, stated:
- a prompt and its completion are tokenised separately and joined (ids of the prompt, then of the completion, then
  eos), exactly as a policy that reads the prompt's ids and samples the completion sees them; TRL tokenises the
  joined text;
- batches are drawn from seeded per-epoch permutations (`settings.seed`), gradients clipped at norm 1 (TRL's
  default), AdamW with `settings.weight_decay`, the lr schedule of `shared.rl.settings.lr_factor`;
- `callbacks` are transformers `TrainerCallback`s; only `on_step_end` is called (with `state.global_step` and a
  `control` whose `should_training_stop` ends training), which is what `shared.rl.warmstart.StopAtTarget` uses.
Validation is `run_sft`'s (`prepare_sft_data`): bad records fail before any training, and an example longer than
`max_length` is an error, never cut. The log history has TRL's shape: `{"step", "loss", "learning_rate"}` every
`logging_steps`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from shared.rl.settings import lr_factor
from shared.rl.sft import SFTSettings, is_token_records, prepare_sft_data


def encode_examples(tokenizer: Any, rows: Sequence[Mapping[str, Any]], max_length: int,
                    source: str = "sft records") -> list[tuple[list[int], list[int]]]:
    """(ids, mask) per validated row: token-id rows as they are; prompt/completion rows as prompt ids (mask 0), then
    completion ids and eos (mask 1). A row over `max_length` tokens is a ValueError naming it."""
    out = []
    for i, row in enumerate(rows):
        if "input_ids" in row:
            ids, mask = list(row["input_ids"]), list(row["completion_mask"])
        else:
            prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
            completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids, mask = [*prompt, *completion], [0] * len(prompt) + [1] * len(completion)
        if len(ids) > max_length:
            raise ValueError(f"{source}: record {i}: {len(ids)} tokens exceed max_length {max_length} (raise "
                             "SFTSettings.max_length or shorten the example)")
        out.append((ids, mask))
    return out


def batch_loss(model: torch.nn.Module, examples: Sequence[tuple[list[int], list[int]]], pad_id: int
               ) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the mask-1 targets of a right-padded batch, and their count."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    target_mask = torch.zeros((len(examples), width), dtype=torch.bool)
    for i, (ids, mask) in enumerate(examples):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        target_mask[i, : len(ids)] = torch.tensor(mask, dtype=torch.bool)
    device = next(model.parameters()).device
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False).logits
    targets = input_ids[:, 1:].to(device)
    keep = target_mask[:, 1:].to(device)  # token 0 has no context, so it is never a target
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, reduction="none")
    return (nll * keep).sum(), int(keep.sum())


def run_plain_sft(
    model: torch.nn.Module,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    settings: SFTSettings,
    source: str = "sft records",
    callbacks: Sequence[Any] = (),
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train on prompt/completion or token-id records (see the module docstring); returns (model, log history)."""
    from transformers import TrainerControl, TrainerState

    torch.set_num_threads(settings.threads)
    rows = prepare_sft_data(model, tokenizer, records, settings, source)
    if not is_token_records(rows) and tokenizer.eos_token_id is None:
        raise ValueError(f"{source}: the tokenizer has no eos token to end the completions with")
    examples = encode_examples(tokenizer, rows, settings.max_length, source)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    total = settings.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: lr_factor(i, settings.warmup_steps, total, settings.lr_schedule))
    state, control = TrainerState(max_steps=total), TrainerControl()
    log: list[dict[str, float]] = []
    order: list[int] = []
    window: list[float] = []
    model.train()
    for step in tqdm(range(total), desc="sft", dynamic_ncols=True):
        optimizer.zero_grad(set_to_none=True)
        parts = []
        for _ in range(settings.grad_accum):
            if len(order) < settings.batch_size:
                order += torch.randperm(len(examples), generator=generator).tolist()
            parts.append([examples[i] for i in order[: settings.batch_size]])
            del order[: settings.batch_size]
        counts = [sum(max(0, sum(m[1:])) for _, m in part) for part in parts]
        total_targets = max(1, sum(counts))
        loss_value = 0.0
        for part in parts:
            loss, _ = batch_loss(model, part, pad_id)
            (loss / total_targets).backward()
            loss_value += float(loss.detach()) / total_targets
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        window.append(loss_value)
        state.global_step = step + 1
        if settings.logging_steps and state.global_step % settings.logging_steps == 0:
            log.append({"step": state.global_step, "loss": sum(window) / len(window),
                        "learning_rate": scheduler.get_last_lr()[0]})
            window = []
        for cb in callbacks:
            cb.on_step_end(None, state, control, model=model)
        if control.should_training_stop:
            break
    if window:
        log.append({"step": state.global_step, "loss": sum(window) / len(window),
                    "learning_rate": scheduler.get_last_lr()[0]})
    model.eval()
    return model, log
