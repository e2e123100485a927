"""Losses of the three CoCoA stages and the GradCache-style chunked contrastive backward.

* ``info_nce``: InfoNCE over normalised embeddings, every query against all in-batch targets plus all hard
  negatives of the batch, temperature tau (VLM2Vec 0.02, MoCa 0.03); copies of a query's own positive (same
  content key) are not its negatives.
* ``cached_contrastive_backward``: GradCache (Gao et al. 2021): encode every chunk without a graph, take the loss and
  its gradient with respect to the embeddings, then re-encode chunk by chunk and push those cached gradients
  through the encoder. Memory scales with the chunk, the gradients equal the full-batch ones.
* ``mask_text_tokens`` / ``masked_lm_loss``: stage-1 masked text prediction (mask probability 0.4 by default).
* ``image_patch_targets`` / ``PatchHead`` / ``masked_patch_loss``: stage-1 masked image-patch reconstruction (MAE)
  and the image part of the stage-2 copy, regressing a pooled pixel summary of each merged image token.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


def info_nce(
    queries: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 0.02,
    hard_negatives: torch.Tensor | None = None,
    target_keys: Sequence[Hashable] | None = None,
    negative_keys: Sequence[Hashable] | None = None,
) -> torch.Tensor:
    """Mean over queries of -log exp(cos(q, t+)/tau) / sum_t exp(cos(q, t)/tau).

    ``queries`` and ``targets`` are (B, d) with targets[i] the positive of queries[i]; ``hard_negatives`` is (B, k, d)
    or (M, d) and joins the candidate set of every query. ``target_keys`` (B) and ``negative_keys`` (B*k or M) name
    each candidate's content: a candidate with the same key as query i's positive is a copy of that positive (two
    queries of one class share the label text, say), so it is left out of query i's negatives instead of being
    pushed away from it. Without keys every other candidate is a negative.
    """
    if queries.dim() != 2 or targets.shape != queries.shape:
        raise ValueError(
            f"queries and targets must both be (B, d); got {tuple(queries.shape)} and {tuple(targets.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    q = F.normalize(queries, dim=-1)
    cands = F.normalize(targets, dim=-1)
    keys = None if target_keys is None else list(target_keys)
    if keys is not None and len(keys) != q.shape[0]:
        raise ValueError(f"target_keys: {len(keys)} keys for {q.shape[0]} targets")
    if hard_negatives is not None:
        hn = hard_negatives.reshape(-1, hard_negatives.shape[-1])
        cands = torch.cat([cands, F.normalize(hn, dim=-1)], dim=0)
        if keys is not None:
            if negative_keys is None or len(negative_keys) != hn.shape[0]:
                raise ValueError(f"negative_keys: need {hn.shape[0]} keys with target_keys and hard negatives")
            keys += list(negative_keys)
    logits = q @ cands.T / temperature
    labels = torch.arange(q.shape[0], device=q.device)
    if keys is not None:
        same = torch.tensor([[keys[j] == keys[i] for j in range(len(keys))] for i in range(q.shape[0])])
        same[labels, labels] = False  # the positive itself stays
        logits = logits.masked_fill(same.to(logits.device), float("-inf"))
    return F.cross_entropy(logits, labels)


def duplicate_positives(target_keys: Sequence[Hashable], negative_keys: Sequence[Hashable] = ()) -> int:
    """How many queries have at least one other candidate equal to their positive (what ``info_nce`` masks)."""
    keys = list(target_keys) + list(negative_keys)
    return sum(1 for i, k in enumerate(target_keys) if any(keys[j] == k for j in range(len(keys)) if j != i))


def cached_contrastive_backward(
    encode: Callable[[Any], torch.Tensor],
    query_chunks: Sequence[Any],
    target_chunks: Sequence[Any],
    loss_fn: Callable[..., torch.Tensor],
    hard_negative_chunks: Sequence[Any] | None = None,
) -> float:
    """Accumulate into the encoder's .grad the gradient of ``loss_fn`` over the whole batch, one chunk at a time.

    ``encode(chunk)`` maps one chunk to its (n, d) embeddings; ``loss_fn(q, t)`` (or ``loss_fn(q, t, h)`` with hard
    negatives) is the full-batch loss. The RNG state of each chunk's first pass is replayed in its second pass so
    that dropout draws the same masks. Returns the loss value.
    """
    groups = [list(query_chunks), list(target_chunks)]
    if hard_negative_chunks is not None:
        groups.append(list(hard_negative_chunks))
    states: list[list[torch.Tensor]] = []
    sizes: list[list[int]] = []
    reps: list[torch.Tensor] = []
    with torch.no_grad():
        for chunks in groups:
            group_states, group_reps = [], []
            for chunk in chunks:
                group_states.append(torch.random.get_rng_state())
                group_reps.append(encode(chunk))
            states.append(group_states)
            sizes.append([r.shape[0] for r in group_reps])
            reps.append(torch.cat(group_reps).detach().requires_grad_(True))
    end_state = torch.random.get_rng_state()
    loss = loss_fn(*reps)
    loss.backward()
    for chunks, group_states, group_sizes, full in zip(groups, states, sizes, reps):
        grads = full.grad.split(group_sizes)
        for chunk, state, grad in zip(chunks, group_states, grads):
            torch.random.set_rng_state(state)
            rep = encode(chunk)
            rep.backward(grad)
    torch.random.set_rng_state(end_state)
    return float(loss.detach())


def mask_text_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    prob: float,
    mask_token_id: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a random ``prob`` share of the maskable positions by ``mask_token_id``.

    Returns (masked ids, labels) where labels hold the original id at masked positions and -100 elsewhere.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"mask probability must lie in [0, 1], got {prob}")
    draw = torch.rand(input_ids.shape, generator=generator) < prob
    chosen = draw & maskable.bool()
    labels = torch.full_like(input_ids, IGNORE)
    labels[chosen] = input_ids[chosen]
    masked = input_ids.masked_fill(chosen, mask_token_id)
    return masked, labels


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy at the masked positions (labels != -100) without shifting; 0 when nothing is masked."""
    chosen = labels != IGNORE
    if not chosen.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[chosen].float(), labels[chosen])


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Causal LM loss: logits at position i predict labels at i+1; -100 labels are ignored; 0 when none."""
    shifted_logits = logits[:, :-1]
    shifted_labels = labels[:, 1:]
    return masked_lm_loss(shifted_logits, shifted_labels)


def image_patch_targets(
    pixel_values: torch.Tensor,
    merge_size: int,
    channels: int,
    temporal_patch: int,
    patch_size: int,
    pool: int = 2,
) -> torch.Tensor:
    """Pooled pixel summary per merged image token, shape (n_tokens, merge^2 * channels * pool^2).

    Qwen2-VL's image processor emits one row per patch, laid out (channels, temporal, patch, patch), with the
    merge_size x merge_size patches of one LLM image token consecutive. Each patch is averaged over time and pooled
    to pool x pool, so the target keeps colour and coarse layout while staying small enough for a linear head.
    """
    per_patch = channels * temporal_patch * patch_size * patch_size
    if pixel_values.dim() != 2 or pixel_values.shape[1] != per_patch:
        raise ValueError(f"pixel_values must be (n_patches, {per_patch}), got {tuple(pixel_values.shape)}")
    group = merge_size * merge_size
    if pixel_values.shape[0] % group:
        raise ValueError(f"{pixel_values.shape[0]} patches do not form whole {merge_size}x{merge_size} tokens")
    x = pixel_values.float().view(-1, channels, temporal_patch, patch_size, patch_size).mean(dim=2)
    x = F.adaptive_avg_pool2d(x, pool)
    return x.reshape(-1, group * channels * pool * pool)


class PatchHead(nn.Module):
    """Linear regression head from a hidden state to one merged image token's pooled pixels."""

    def __init__(self, hidden: int, target_dim: int):
        super().__init__()
        self.proj = nn.Linear(hidden, target_dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden_states)


def masked_patch_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the selected image tokens (rows of pred/target); 0 when none were selected."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    return F.mse_loss(pred.float(), target.float())
