"""Retriever training on Agentic-R groups (InfoNCE, tau 0.01, in-batch + group negatives), saving and re-indexing.

A group is one query, up to 3 positives and 15 negatives; each epoch uses one positive per group, rotating through
the positives (Tevatron's train-group sampling). The optimiser is AdamW with linear warm-up and decay. After
training the encoder is saved as a model folder and the corpus is re-encoded into a fresh faiss flat index.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from shared.retrieval import DenseIndex
from tqdm.auto import tqdm

from agentic_r.encoder import LayerCachedEncoder
from agentic_r.loss import TAU, batch_layout, info_nce


@dataclass
class TrainSettings:
    epochs: int = 3
    lr: float = 1e-4  # the paper: 2e-5 for 2 epochs of full fine-tuning on far more data
    batch_groups: int = 16
    tau: float = TAU
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01


def _check_groups(groups: Sequence[dict], corpus: Mapping[str, str], stats: Counter) -> list[dict]:
    """Drop passage ids that are not in the corpus (counted); a group without a positive left is dropped."""
    clean = []
    for g in groups:
        positives = [d for d in g["positives"] if d in corpus]
        negatives = [d for d in g["negatives"] if d in corpus]
        stats["missing_passage"] += len(g["positives"]) + len(g["negatives"]) - len(positives) - len(negatives)
        if not positives:
            stats["group_without_positive"] += 1
            continue
        clean.append({**g, "positives": positives, "negatives": negatives})
    return clean


def train_retriever(
    encoder: LayerCachedEncoder,
    groups: Sequence[dict],
    corpus: Mapping[str, str],
    settings: TrainSettings,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train the encoder in place; returns stats (steps, losses, dropped data)."""
    stats: Counter = Counter()
    groups = _check_groups(groups, corpus, stats)
    if not groups:
        raise ValueError("no training group left (all dropped or none built); cannot train the retriever")
    rng = random.Random(f"train|{seed}")
    torch.manual_seed(seed)
    params = encoder.trainable_parameters()
    for p in encoder.model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(groups) / settings.batch_groups)
    total = steps_per_epoch * settings.epochs
    warmup = max(1, int(settings.warmup_ratio * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    encoder.model.train()
    losses = []
    bar = tqdm(total=total, desc="train retriever", unit="step", disable=not progress)
    for epoch in range(settings.epochs):
        order = list(range(len(groups)))
        rng.shuffle(order)
        for start in range(0, len(order), settings.batch_groups):
            batch = [groups[i] for i in order[start : start + settings.batch_groups]]
            pairs = [(g["positives"][epoch % len(g["positives"])], g["negatives"]) for g in batch]
            doc_ids, targets = batch_layout(pairs)
            q = encoder.train_embeddings([g["query"] for g in batch], encoder.query_prefix)
            p = encoder.train_embeddings([corpus[d] for d in doc_ids], encoder.passage_prefix)
            loss = info_nce(q, p, torch.tensor(targets), settings.tau)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    encoder.model.eval()
    first = losses[: max(1, steps_per_epoch)]
    last = losses[-max(1, steps_per_epoch) :]
    return {
        "steps": len(losses),
        "groups": len(groups),
        "loss_first_epoch": sum(first) / len(first),
        "loss_last_epoch": sum(last) / len(last),
        **dict(stats),
        "losses": losses,  # per step, for metrics.jsonl
    }


def build_index(
    encoder: LayerCachedEncoder, corpus_docs: Sequence[dict], out_dir: str | Path | None = None
) -> DenseIndex:
    """Encode the corpus into a faiss flat inner-product index (saved under out_dir when given)."""
    index = DenseIndex(encoder.dim, kind="flat", use_gpu=False)
    vectors = encoder.encode_passages([d["contents"] for d in corpus_docs], progress=True)
    index.add(vectors, [str(d["id"]) for d in corpus_docs])
    if out_dir is not None:
        index.save(out_dir)
    return index
