"""Sequence log-probabilities of preference pairs and the DPO / RPO / IPO objective on them.

A pair is scored as two sequences prompt+chosen+eos and prompt+rejected+eos; only completion tokens count. The
reference model is frozen, so its log-probs are computed once per pair and cached. The same forward pass that
gives the loss gives each pair's margin m = beta * h, which feeds the gradient-weight statistics.

Loss options: `dpo` = -log sigmoid(beta h) (shared.rl.losses.dpo_loss); `ipo` = (h - 1/(2 beta))^2; `rpo` = DPO
plus `sft_weight` times the length-normalised NLL of the chosen answer (RPO-style; plain DPO on self-generated
pairs is fragile at toy scale, cpu-calibration.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sage.pairs import Pair

Tensor = torch.Tensor
LOSSES = ("dpo", "rpo", "ipo")


@dataclass
class EncodedBatch:
    """Right-padded token ids of 2N sequences: rows [0, N) chosen, [N, 2N) rejected."""

    input_ids: Tensor
    attention_mask: Tensor
    completion_mask: Tensor  # 1 on completion tokens (label positions, shifted by one)

    @property
    def n_pairs(self) -> int:
        return self.input_ids.shape[0] // 2


def encode_pairs(tokenizer, pairs: Sequence[Pair], device: torch.device | str = "cpu") -> EncodedBatch:
    """Tokenise prompt and completion separately and append eos to the completion.

    The prompt is tokenised exactly as HFGenerator does (special tokens included), so training scores the ids
    the samples were generated from; the completion text is decoded without special tokens, hence the eos.
    """
    if not pairs:
        raise ValueError("encode_pairs: no pairs")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    rows: list[tuple[list[int], int]] = []  # (ids, prompt length)
    for side in ("chosen", "rejected"):
        for pair in pairs:
            prompt_ids = tokenizer(pair.prompt)["input_ids"]
            completion_ids = tokenizer(getattr(pair, side), add_special_tokens=False)["input_ids"] + [eos]
            rows.append((prompt_ids + completion_ids, len(prompt_ids)))
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    completion = torch.zeros((len(rows), width - 1), dtype=torch.float32)
    for i, (ids, n_prompt) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        # label position t predicts token t+1: completion tokens are ids[n_prompt:], predicted at n_prompt-1...
        completion[i, n_prompt - 1 : len(ids) - 1] = 1.0
    return EncodedBatch(input_ids.to(device), attention.to(device), completion.to(device))


def sequence_logprobs(model, batch: EncodedBatch) -> tuple[Tensor, Tensor]:
    """Summed completion log-probs [2N] and completion token counts [2N]."""
    from shared.rl.losses import token_logprobs

    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    logp = token_logprobs(logits[:, :-1], batch.input_ids[:, 1:])
    return (logp * batch.completion_mask).sum(-1), batch.completion_mask.sum(-1)


def preference_loss(
    policy_logps: Tensor,
    ref_logps: Tensor,
    token_counts: Tensor,
    beta: float,
    kind: str = "dpo",
    sft_weight: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """(scalar loss, per-pair margins beta*h [N], detached) from [2N] summed log-probs (chosen rows first)."""
    from shared.rl.losses import dpo_loss

    if kind not in LOSSES:
        raise ValueError(f"unknown preference loss {kind!r}; choose one of {LOSSES}")
    n = policy_logps.shape[0] // 2
    pc, pr = policy_logps[:n], policy_logps[n:]
    rc, rr = ref_logps[:n], ref_logps[n:]
    loss, _ = dpo_loss(pc, pr, rc, rr, beta=beta, kind="ipo" if kind == "ipo" else "sigmoid")
    if kind == "rpo":
        loss = loss + sft_weight * (-(pc / token_counts[:n].clamp(min=1))).mean()
    margins = (beta * ((pc - rc) - (pr - rr))).detach()
    return loss, margins


class ReferenceCache:
    """Frozen reference log-probs per pair id, computed on first use."""

    def __init__(self, ref_model, tokenizer, device: torch.device | str = "cpu") -> None:
        self.model = ref_model
        self.tokenizer = tokenizer
        self.device = device
        self._cache: dict[str, tuple[float, float]] = {}

    @torch.no_grad()
    def logps(self, pairs: Sequence[Pair]) -> Tensor:
        """[2N] reference log-probs (chosen rows first) for `pairs`."""
        missing = [p for p in pairs if p.pair_id not in self._cache]
        if missing:
            batch = encode_pairs(self.tokenizer, missing, self.device)
            logps, _ = sequence_logprobs(self.model, batch)
            n = len(missing)
            for i, pair in enumerate(missing):
                self._cache[pair.pair_id] = (float(logps[i]), float(logps[n + i]))
        chosen = [self._cache[p.pair_id][0] for p in pairs]
        rejected = [self._cache[p.pair_id][1] for p in pairs]
        return torch.tensor(chosen + rejected, dtype=torch.float32, device=self.device)

    def retain(self, pair_ids: Sequence[str]) -> None:
        keep = set(pair_ids)
        for pid in list(self._cache):
            if pid not in keep:
                del self._cache[pid]


@torch.no_grad()
def pair_margins(model, tokenizer, pairs: Sequence[Pair], ref: ReferenceCache, beta: float, chunk: int = 64) -> list[float]:
    """Current margins beta*h of `pairs` under `model` (eval mode, no gradient), in chunks."""
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        for start in range(0, len(pairs), chunk):
            part = pairs[start : start + chunk]
            batch = encode_pairs(tokenizer, part, ref.device)
            logps, _ = sequence_logprobs(model, batch)
            refs = ref.logps(part)
            n = len(part)
            h = (logps[:n] - refs[:n]) - (logps[n:] - refs[n:])
            out.extend(float(x) for x in beta * h)
    finally:
        model.train(was_training)
    return out
