"""Reward models: a sequence-classification model that scores (prompt, response) pairs, batched.

The text a reward model sees is `prompt + response + eos` (the eos added when the response lacks it), tokenised
with the tokenizer's defaults: exactly what `shared.rl.rm.run_rm` trains on (both call `rm_input_ids`), so a
score at inference matches the training input. The score is the model's single logit at the last non-padding
token. Torch and transformers are imported on use, so `shared.rewards` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def rm_input_ids(tokenizer: Any, prompt: str, response: str) -> list[int]:
    """Token ids of the reward model's input for one pair."""
    text = prompt + response
    if tokenizer.eos_token and not text.endswith(tokenizer.eos_token):
        text += tokenizer.eos_token
    return list(tokenizer(text)["input_ids"])


class RewardModel:
    """Batched scoring with a reward model (an `AutoModelForSequenceClassification` with one label)."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, max_length: int | None = None) -> None:
        if getattr(model.config, "num_labels", 1) != 1:
            raise ValueError(f"a reward model needs num_labels=1, this one has {model.config.num_labels}")
        if tokenizer.pad_token_id is None:
            raise ValueError("RewardModel needs a tokenizer with a pad token (batches are padded)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last non-pad token
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_length = batch_size, max_length

    @classmethod
    def load(cls, path: str, device: str = "cpu", **kwargs: Any) -> RewardModel:
        """A saved reward model, or a causal-LM checkpoint with a fresh one-logit head (the start of `run_rm`)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1,
                                                                   pad_token_id=tokenizer.pad_token_id)
        return cls(model.to(device), tokenizer, **kwargs)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """One reward per (prompt, response), computed in batches (right padding, eval mode, no gradients)."""
        import torch

        if isinstance(prompts, str) or isinstance(responses, str):
            raise TypeError("score takes lists of prompts and responses, not single strings")
        if len(prompts) != len(responses):
            raise ValueError(f"score got {len(prompts)} prompts and {len(responses)} responses")
        ids = [rm_input_ids(self.tokenizer, p, r) for p, r in zip(prompts, responses)]
        if self.max_length is not None:
            too_long = [i for i, x in enumerate(ids) if len(x) > self.max_length]
            if too_long:
                raise ValueError(f"pair {too_long[0]} has {len(ids[too_long[0]])} tokens > max_length "
                                 f"{self.max_length} ({len(too_long)} such pairs)")
        self.model.eval()
        device = next(self.model.parameters()).device
        out: list[float] = []
        with torch.no_grad():
            for start in range(0, len(ids), self.batch_size):
                batch = ids[start: start + self.batch_size]
                width = max(len(x) for x in batch)
                input_ids = torch.full((len(batch), width), self.tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros_like(input_ids)
                for row, x in enumerate(batch):
                    input_ids[row, : len(x)] = torch.tensor(x)
                    mask[row, : len(x)] = 1
                logits = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                out.extend(logits.float().view(-1).tolist())
        return out

    def pair_accuracy(self, records: Sequence[Mapping[str, str]]) -> float:
        """Share of {prompt, chosen, rejected} records where the chosen response scores higher."""
        if not records:
            raise ValueError("pair_accuracy needs at least one record")
        prompts = [r["prompt"] for r in records]
        chosen = self.score(prompts, [r["chosen"] for r in records])
        rejected = self.score(prompts, [r["rejected"] for r in records])
        return sum(c > r for c, r in zip(chosen, rejected)) / len(records)
