"""The stages as functions of (model, data, config): what ``cocoa pretrain/train/eval`` and ``replicate`` run.

* ``generative_pretrain``: captioning (optionally plus VQA) language modelling that turns the random tiny MLLM into
  the shared starting point of every row (the analogue of a pretrained Qwen2-VL);
* ``stage1`` switches the model to bidirectional (collaborative) input attention and trains masked text + image
  reconstruction; the switch is saved with the model and every later stage keeps it;
* ``stage2``: EOS-based reconstruction on the items the embedder will see (queries and targets);
* ``contrastive``: stage 3, full fine-tuning or LoRA (merged back afterwards), optionally measuring P@1 on the way;
* ``measure``: MMEB P@1 per meta-task and overall plus the reconstruction-from-<EOS> probe.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from cocoa.config import CocoaConfig
from cocoa.data import EvalDataset, TrainPair
from cocoa.evaluate import evaluate, reconstruction_probe
from cocoa.model import CocoaModel, Item
from cocoa.suite import Suite
from cocoa.train import contrastive_step, generative_loss, optimise, stage1_loss, stage2_loss


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pair_items(pairs: list[TrainPair]) -> list[Item]:
    """The distinct queries and positives of the training pairs: what stages 1 and 2 reconstruct."""
    seen, out = set(), []
    for p in pairs:
        for it in (p.query, p.positive):
            if id(it) not in seen:
                seen.add(id(it))
                out.append(it)
    return out


def probe_items(evals: list[EvalDataset], n: int) -> list[Item]:
    """Up to ``n`` distinct evaluation items with text (queries first), for the reconstruction probe."""
    seen, out = set(), []
    for ds in evals:
        for q in ds.queries:
            for it in [q.query, *q.candidates]:
                if it.text and id(it) not in seen:
                    seen.add(id(it))
                    out.append(it)
    rng = random.Random(0)
    rng.shuffle(out)
    return out[:n]


def generative_items(suite: Suite, cfg: CocoaConfig) -> list[Item]:
    """The items of generative pre-training: captions only, or captions plus questions with answers."""
    return suite.captions if cfg.generative.texts == "captions" else suite.generative


def generative_pretrain(model: CocoaModel, items: list[Item], cfg: CocoaConfig, seed: int) -> list[dict]:
    g = cfg.generative
    return optimise(
        model, lambda b: generative_loss(model, b), items, g.steps, g.batch_size, g.lr, g.warmup, seed, "generative"
    )


def stage1(model: CocoaModel, items: list[Item], cfg: CocoaConfig, seed: int) -> list[dict]:
    s = cfg.stage1
    model.input_attention = "bidirectional"
    gen = torch.Generator().manual_seed(seed)

    def step(batch):
        return stage1_loss(model, batch, s.text_mask_prob, s.image_mask_prob, s.mae_weight, gen)

    return optimise(model, step, items, s.steps, s.batch_size, s.lr, s.warmup, seed, "stage1")


def stage2(model: CocoaModel, items: list[Item], cfg: CocoaConfig, seed: int) -> list[dict]:
    s = cfg.stage2
    return optimise(
        model,
        lambda b: stage2_loss(model, b, s.patch_weight),
        items,
        s.steps,
        s.batch_size,
        s.lr,
        s.warmup,
        seed,
        "stage2",
    )


def contrastive(
    model: CocoaModel, pairs: list[TrainPair], cfg: CocoaConfig, seed: int, evals: list[EvalDataset] | None = None
) -> list[dict]:
    """Stage 3; with ``contrastive.eval_every`` and ``evals`` the logs of every k-th step carry ``p@1_overall``."""
    c = cfg.contrastive
    if c.lora_r:
        from shared.modeling import LoraSettings, apply_lora

        targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
        model.backbone = apply_lora(
            model.backbone, LoraSettings(r=c.lora_r, alpha=c.lora_alpha, target_modules=targets)
        )
        for p in (*model.patch_head.parameters(), model.mask_embedding):
            p.requires_grad_(False)

    def step(batch):
        return contrastive_step(model, batch, c.temperature, c.hard_negatives, c.chunk_size)

    def curve(n: int) -> dict[str, float]:
        if evals and c.eval_every and n % c.eval_every == 0 and n < c.steps:
            return {"p@1_overall": evaluate(model, evals, cfg.eval.batch_size)["p@1_overall"]}
        return {}

    logs = optimise(model, step, pairs, c.steps, c.batch_size, c.lr, c.warmup, seed, "contrastive", curve)
    if c.lora_r:
        model.backbone = model.backbone.merge_and_unload()
        for p in (*model.patch_head.parameters(), model.mask_embedding):
            p.requires_grad_(True)
    return logs


def measure(model: CocoaModel, evals: list[EvalDataset], cfg: CocoaConfig) -> dict[str, float]:
    """P@1 per dataset, meta-task and overall, and ``recon_loss_eos`` (text copy decoded from <EOS> alone)."""
    metrics = evaluate(model, evals, cfg.eval.batch_size)
    metrics["recon_loss_eos"] = reconstruction_probe(
        model, probe_items(evals, cfg.eval.probe_items), cfg.eval.batch_size
    )
    return metrics
