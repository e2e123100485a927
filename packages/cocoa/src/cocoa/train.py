"""Training loops: generative pre-training of the starting MLLM and CoCoA stages 1, 2 and 3.

Each stage is a loss on a batch of items plus one shared optimisation loop (AdamW, linear warm-up then cosine
decay, gradient clipping, a tqdm bar). The losses:

* generative: next-token prediction of the text (captions, optionally questions with answers) after the image;
* stage 1: with bidirectional input attention, masked text prediction (lm head, mask 0.4) plus 0.1 x masked
  image-token reconstruction (patch head on the learned mask embedding, mask 0.5);
* stage 2: the reconstruction copy after <EOS> predicts the input text token by token (next-token loss starting at
  <EOS>) and regresses each image token's pooled pixels at its copy slot, seeing only <EOS> and its own past;
* stage 3: InfoNCE on the normalised <EOS> embeddings with in-batch and hard negatives (copies of a query's own
  positive are not its negatives), optionally GradCache-chunked.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
from tqdm import tqdm

from cocoa.data import TrainPair
from cocoa.losses import (
    IGNORE,
    cached_contrastive_backward,
    duplicate_positives,
    info_nce,
    mask_text_tokens,
    masked_lm_loss,
    masked_patch_loss,
    next_token_loss,
)
from cocoa.model import Batch, CocoaModel, Item, content_key


def schedule(step: int, steps: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up to 1 over ``warmup`` steps, then cosine decay to 0.1 at ``steps``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batches(data: Sequence, batch_size: int, rng: random.Random):
    """Endless shuffled mini-batches (each epoch a fresh permutation)."""
    if not data:
        raise ValueError("no training data")
    order = list(range(len(data)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            yield [data[k] for k in order[start : start + batch_size]]


def optimise(
    model: CocoaModel,
    step_fn: Callable[[list], tuple[torch.Tensor | None, dict[str, float]]],
    data: Sequence,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: int,
    seed: int,
    desc: str,
    after_step: Callable[[int], dict[str, float]] | None = None,
) -> list[dict[str, float]]:
    """Run ``steps`` optimisation steps; ``step_fn(batch)`` returns (loss to backprop or None if it already
    backpropagated, logged values). ``after_step(n)``, called after step n (1-based) with the model in eval mode,
    may add measurements to that step's log. Returns the per-step logs."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, steps, warmup))
    rng = random.Random(seed)
    stream = batches(data, batch_size, rng)
    logs = []
    model.train()
    bar = tqdm(range(steps), desc=desc, leave=False, mininterval=2.0)
    for _ in bar:
        opt.zero_grad(set_to_none=True)
        loss, log = step_fn(next(stream))
        if loss is not None:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if after_step is not None:
            model.eval()
            log = {**log, **after_step(len(logs) + 1)}
            model.train()
        logs.append(log)
        bar.set_postfix({k: f"{v:.3f}" for k, v in log.items()})
    model.eval()
    return logs


# --------------------------------------------------------------------------------------------------- losses
def generative_loss(model: CocoaModel, items: list[Item]) -> tuple[torch.Tensor, dict[str, float]]:
    """Causal next-token loss on each item's text and its <EOS>, conditioned on the image."""
    batch = model.encode_items(items)
    labels = batch.input_ids.clone()
    eos_pos = (batch.n_in - 1).unsqueeze(1)
    keep = batch.text_token | (torch.arange(labels.shape[1])[None] == eos_pos)
    labels[~keep] = IGNORE
    hidden = model.hidden_states(batch)
    loss = next_token_loss(model.logits(hidden), labels.to(model.device))
    return loss, {"lm": float(loss.detach())}


def stage1_loss(
    model: CocoaModel, items: list[Item], text_prob: float, image_prob: float, mae_weight: float, gen: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """Masked text prediction + mae_weight x masked image-token reconstruction under bidirectional attention."""
    if model.input_attention != "bidirectional":
        raise ValueError("stage 1 trains collaborative (bidirectional) attention; set input_attention=bidirectional")
    batch = model.encode_items(items)
    masked_ids, labels = mask_text_tokens(batch.input_ids, batch.text_token, text_prob, model.mask_id, gen)
    img_mask = (torch.rand(batch.input_ids.shape, generator=gen) < image_prob) & batch.image_token
    hidden = model.hidden_states(batch, masked_image=img_mask, input_ids=masked_ids)
    mlm = masked_lm_loss(model.logits(hidden), labels.to(model.device))
    mae = hidden.sum() * 0.0
    if batch.patch_targets is not None and img_mask.any():
        # rows of patch_targets follow the order of image tokens in the batch; keep those that were masked
        chosen = img_mask[batch.image_token]
        pred = model.patch_head(hidden[img_mask.to(model.device)])
        mae = masked_patch_loss(pred, batch.patch_targets[chosen].to(model.device))
    loss = mlm + mae_weight * mae
    return loss, {"mlm": float(mlm.detach()), "mae": float(mae.detach())}


def copy_losses(model: CocoaModel, batch: Batch, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage-2 losses of a batch laid out with its copy: (text next-token loss from <EOS>, image-slot MSE)."""
    labels = batch.input_ids.masked_fill(~batch.copy_text, IGNORE).to(model.device)
    text = next_token_loss(model.logits(hidden), labels)
    patch = hidden.sum() * 0.0
    if batch.patch_targets is not None and batch.copy_slot.any():
        pred = model.patch_head(hidden[batch.copy_slot.to(model.device)])
        patch = masked_patch_loss(pred, batch.patch_targets.to(model.device))
    return text, patch


def stage2_loss(model: CocoaModel, items: list[Item], patch_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """EOS-based reconstruction: the copy decodes the input's text and image tokens through <EOS> alone."""
    batch = model.encode_items(items, with_copy=True)
    hidden = model.hidden_states(batch)
    text, patch = copy_losses(model, batch, hidden)
    return text + patch_weight * patch, {"recon": float(text.detach()), "patch": float(patch.detach())}


def contrastive_step(
    model: CocoaModel, pairs: list[TrainPair], temperature: float, hard_negatives: bool, chunk_size: int
) -> tuple[torch.Tensor | None, dict[str, float]]:
    """InfoNCE over (query, positive[, hard negative]) pairs; with ``chunk_size`` the GradCache path backpropagates
    itself and returns None as the loss."""
    queries = [p.query for p in pairs]
    targets = [p.positive for p in pairs]
    use_hard = hard_negatives and all(p.negative is not None for p in pairs)
    negs = [p.negative for p in pairs] if use_hard else None
    # a candidate with the same content as a query's positive is not that query's negative
    target_keys = [content_key(t) for t in targets]
    negative_keys = [content_key(n) for n in negs] if negs else ()
    masked = duplicate_positives(target_keys, negative_keys)

    def loss_fn(q, t, h=None):
        return info_nce(q, t, temperature, hard_negatives=h, target_keys=target_keys, negative_keys=negative_keys)

    def encode(items: list[Item]) -> torch.Tensor:
        return model.embed(model.encode_items(items))

    if chunk_size and chunk_size < len(pairs):

        def chunks(xs):
            return [xs[k : k + chunk_size] for k in range(0, len(xs), chunk_size)]

        value = cached_contrastive_backward(
            encode, chunks(queries), chunks(targets), loss_fn, chunks(negs) if negs else None
        )
        return None, {"nce": value, "dup_positive_queries": masked}
    loss = loss_fn(encode(queries), encode(targets), encode(negs) if negs else None)
    return loss, {"nce": float(loss.detach()), "dup_positive_queries": masked}
