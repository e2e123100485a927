"""Embedding retrieval Precision@1 (MMEB-style), a per-group mean helper and MMEB's per-dataset aggregation.

A query is a hit when its gold candidate scores strictly higher than every other candidate. Ties count as
misses, so the score does not depend on candidate order (argmax-based scripts would credit a tie to whichever
candidate comes first).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def hits_at_1(
    query_emb: np.ndarray, cand_emb: np.ndarray, gold_index: Sequence[int] | np.ndarray, cosine: bool = True
) -> np.ndarray:
    """Per-query hit (bool array).

    query_emb: (n, d). cand_emb: (m, d) — one pool shared by all queries — or (n, c, d) — c candidates per
    query. gold_index: (n,) index of the gold candidate in the pool / in the query's own list.
    cosine=True scores by cosine similarity, False by raw dot product.
    """
    q = np.asarray(query_emb, dtype=np.float64)
    c = np.asarray(cand_emb, dtype=np.float64)
    gold = np.asarray(gold_index)
    if q.ndim != 2:
        raise ValueError(f"query_emb must be 2-D (n, d), got shape {q.shape}")
    if c.ndim not in (2, 3) or c.shape[-1] != q.shape[1] or (c.ndim == 3 and c.shape[0] != q.shape[0]):
        raise ValueError(f"cand_emb must be (m, {q.shape[1]}) or ({q.shape[0]}, c, {q.shape[1]}), got {c.shape}")
    if gold.shape != (q.shape[0],) or not np.issubdtype(gold.dtype, np.integer):
        raise ValueError(f"gold_index must be {q.shape[0]} integers, got shape {gold.shape} dtype {gold.dtype}")
    n_cands = c.shape[-2]
    if gold.size and (gold.min() < 0 or gold.max() >= n_cands):
        raise ValueError(f"gold_index out of range [0, {n_cands})")
    if cosine:
        q, c = _l2_normalize(q), _l2_normalize(c)
    scores = q @ c.T if c.ndim == 2 else np.einsum("nd,ncd->nc", q, c)
    rows = np.arange(q.shape[0])
    gold_scores = scores[rows, gold]
    others = scores.copy()
    others[rows, gold] = -np.inf
    return gold_scores > others.max(axis=1)


def precision_at_1(
    query_emb: np.ndarray, cand_emb: np.ndarray, gold_index: Sequence[int] | np.ndarray, cosine: bool = True
) -> float:
    """Fraction of queries whose gold candidate is the unique top-scoring one (see `hits_at_1`)."""
    hits = hits_at_1(query_emb, cand_emb, gold_index, cosine=cosine)
    if hits.size == 0:
        raise ValueError("precision_at_1 needs at least one query")
    return float(hits.mean())


def mean_by_group(groups: Sequence[Hashable], values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean of values per group (e.g. per MMEB task) plus "overall", the unweighted mean over groups."""
    vals = np.asarray(values, dtype=np.float64)
    if len(groups) != len(vals):
        raise ValueError(f"got {len(groups)} group labels but {len(vals)} values")
    if len(groups) == 0:
        raise ValueError("mean_by_group needs at least one value")
    if "overall" in {str(g) for g in groups}:
        raise ValueError("mean_by_group: 'overall' is reserved for the mean over groups; rename that group")
    out: dict[str, float] = {}
    for group in dict.fromkeys(groups):
        mask = np.array([g == group for g in groups])
        out[str(group)] = float(vals[mask].mean())
    out["overall"] = float(np.mean(list(out.values())))
    return out


def mmeb_scores(
    datasets: Sequence[str], meta_tasks: Sequence[str], hits: Sequence[float] | np.ndarray
) -> dict[str, dict[str, float] | float]:
    """MMEB's aggregation of per-query hits: P@1 per dataset, then per meta-task the mean over its datasets, and
    overall the mean over all datasets (not over meta-tasks, not over queries), as the MMEB tables report it.

    `datasets[i]`, `meta_tasks[i]`, `hits[i]` describe query i. Returns {"datasets": {name: p@1}, "meta_tasks":
    {meta: mean}, "overall": mean}. A dataset named under two meta-tasks is an error (each MMEB dataset has one).
    """
    if not len(datasets) == len(meta_tasks) == len(hits):
        raise ValueError(f"got {len(datasets)} dataset names, {len(meta_tasks)} meta-tasks and {len(hits)} hits")
    if not len(hits):
        raise ValueError("mmeb_scores needs at least one query")
    meta_of: dict[str, str] = {}
    for name, meta in zip(datasets, meta_tasks):
        if meta_of.setdefault(name, meta) != meta:
            raise ValueError(f"dataset {name!r} is under two meta-tasks ({meta_of[name]!r} and {meta!r})")
    per_dataset = {k: v for k, v in mean_by_group(datasets, hits).items() if k != "overall"}
    per_meta: dict[str, list[float]] = {}
    for name, value in per_dataset.items():
        per_meta.setdefault(meta_of[name], []).append(value)
    return {
        "datasets": per_dataset,
        "meta_tasks": {meta: float(np.mean(values)) for meta, values in per_meta.items()},
        "overall": float(np.mean(list(per_dataset.values()))),
    }
