"""Retriever loss: InfoNCE over in-batch and group passages with cosine similarity and temperature 0.01.

Each query's logits run over every distinct passage of the batch (its own group's positive and negatives plus the
other groups' passages), so the other groups act as in-batch negatives. Passages are de-duplicated by id before
scoring: in a small corpus the same passage often sits in several groups, and a copy of a query's own positive
must not count as its negative.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

TAU = 0.01


def info_nce(
    query_emb: torch.Tensor, passage_emb: torch.Tensor, targets: torch.Tensor, tau: float = TAU
) -> torch.Tensor:
    """Mean over queries of -log softmax(q . p / tau)[target]; embeddings are expected L2-normalised (cosine)."""
    if query_emb.dim() != 2 or passage_emb.dim() != 2 or query_emb.shape[1] != passage_emb.shape[1]:
        raise ValueError(
            f"expected query [B, d] and passage [N, d] embeddings, got {tuple(query_emb.shape)} and "
            f"{tuple(passage_emb.shape)}"
        )
    if targets.shape != (query_emb.shape[0],):
        raise ValueError(f"targets must have shape [{query_emb.shape[0]}], got {tuple(targets.shape)}")
    if tau <= 0:
        raise ValueError(f"temperature must be > 0, got {tau}")
    logits = query_emb @ passage_emb.T / tau
    return F.cross_entropy(logits, targets)


def batch_layout(groups: Sequence[tuple[str, Sequence[str]]]) -> tuple[list[str], list[int]]:
    """Distinct passage ids of a batch in first-seen order, and per group the column of its positive.

    `groups` holds (positive id, negative ids) per query.
    """
    columns: dict[str, int] = {}
    targets = []
    for positive, negatives in groups:
        for doc_id in (positive, *negatives):
            columns.setdefault(doc_id, len(columns))
        targets.append(columns[positive])
    return list(columns), targets


def cosine_embeddings(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows so inner products are cosine similarities."""
    return F.normalize(x, p=2, dim=-1)
