"""Branching scores: where in an existing rollout a new rollout should branch off.

Each position t of a rollout carries the top-k next-token candidates (probabilities p_i) and the L2-normalised input
embeddings ê_i of those candidate tokens. From them:

- truncated entropy            H_t = -sum_i p_i log p_i
- semantic concentration       F_t = ||sum_i p_i ê_i||^2 - sum_i p_i^2 = sum_{i != j} p_i p_j cos(e_i, e_j)
- semantic dispersion          D_t = 1 - F_t / sum_{i != j} p_i p_j   (p-weighted mean of 1 - cos over pairs)

Score kinds (config `rose.score`):
- "semantic" (default): H_t * D_t, high when candidates are both uncertain and semantically different. The spec
  writes the normaliser as 1 - sum p_i^2; with a truncated top-k (sum p_i < 1) we divide by the pair mass
  (sum p_i)^2 - sum p_i^2 instead, which equals 1 - sum p_i^2 when the top-k holds all the mass and keeps
  "identical candidates -> dispersion exactly 0".
- "authors": -F_t * H_t, the released code's form (kept as an option; with F > 0 it favours confident tokens).
- "entropy": H_t alone; "cosine": D_t alone (ablations).
"""

from __future__ import annotations

import torch

SCORE_KINDS = ("semantic", "authors", "entropy", "cosine")

Tensor = torch.Tensor


def _check(probs: Tensor, emb: Tensor | None = None) -> None:
    if probs.dim() < 1:
        raise ValueError("probs must have a last dimension holding the top-k candidate probabilities")
    if torch.any(probs < 0) or torch.any(probs.sum(-1) > 1 + 1e-4):
        raise ValueError("probs must be non-negative with at most unit mass per position")
    if emb is not None and emb.shape[:-1] != probs.shape:
        raise ValueError(f"embeddings {tuple(emb.shape)} must be probs {tuple(probs.shape)} plus a feature dim")


def truncated_entropy(probs: Tensor) -> Tensor:
    """H = -sum p log p over the top-k candidates (0 log 0 = 0)."""
    _check(probs)
    logs = torch.where(probs > 0, probs.clamp(min=1e-30).log(), torch.zeros_like(probs))
    return -(probs * logs).sum(-1)


def normalize_rows(emb: Tensor) -> Tensor:
    """L2-normalise the last dimension (zero vectors stay zero)."""
    return emb / emb.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def semantic_concentration(probs: Tensor, unit_emb: Tensor) -> Tensor:
    """F = ||sum p_i ê_i||^2 - sum p_i^2 (embeddings must already be unit length)."""
    _check(probs, unit_emb)
    centre = (probs.unsqueeze(-1) * unit_emb).sum(-2)
    return (centre * centre).sum(-1) - (probs * probs).sum(-1)


def semantic_dispersion(probs: Tensor, unit_emb: Tensor) -> Tensor:
    """D = 1 - F / pair mass: 0 when all candidates share one direction, 1 for orthogonal ones; 0 with one candidate."""
    conc = semantic_concentration(probs, unit_emb)
    pair_mass = probs.sum(-1) ** 2 - (probs * probs).sum(-1)
    ok = pair_mass > 1e-12
    return torch.where(ok, 1 - conc / pair_mass.clamp(min=1e-12), torch.zeros_like(conc))


def branch_score(probs: Tensor, unit_emb: Tensor, kind: str = "semantic") -> Tensor:
    """Score per position ([..., k] probabilities, [..., k, d] unit embeddings) for the chosen kind."""
    if kind not in SCORE_KINDS:
        raise ValueError(f"unknown branching score {kind!r}; known: {', '.join(SCORE_KINDS)}")
    if kind == "entropy":
        return truncated_entropy(probs)
    if kind == "cosine":
        return semantic_dispersion(probs, unit_emb)
    if kind == "authors":
        return -semantic_concentration(probs, unit_emb) * truncated_entropy(probs)
    return truncated_entropy(probs) * semantic_dispersion(probs, unit_emb)


def scores_from_top_logprobs(
    top_logprobs: list[list[tuple[int, float]]], embedding_matrix: Tensor | None, kind: str = "semantic"
) -> list[float]:
    """Scores for each generated position from a Completion's top-k (token_id, logprob) lists.

    `embedding_matrix` is the policy's input embedding table [V, d]; rows are normalised here. Positions with
    fewer candidates than others are padded with zero-probability entries (they add nothing to any term).
    The "entropy" score needs no embeddings (`embedding_matrix` may be None).
    """
    if kind not in SCORE_KINDS:
        raise ValueError(f"unknown branching score {kind!r}; known: {', '.join(SCORE_KINDS)}")
    if embedding_matrix is None and kind != "entropy":
        raise ValueError(f"branching score {kind!r} needs the policy's input embedding matrix")
    if not top_logprobs:
        return []
    k = max(len(row) for row in top_logprobs)
    if k == 0:
        return [0.0] * len(top_logprobs)
    ids = torch.zeros((len(top_logprobs), k), dtype=torch.long)
    probs = torch.zeros((len(top_logprobs), k), dtype=torch.float32)
    for t, row in enumerate(top_logprobs):
        for i, (tok, lp) in enumerate(row):
            ids[t, i] = int(tok)
            probs[t, i] = float(lp)
    probs = probs.exp() * (torch.arange(k) < torch.tensor([len(row) for row in top_logprobs])[:, None])
    # top-k logprobs from a full softmax can sum to 1 + rounding error
    probs = probs / probs.sum(-1, keepdim=True).clamp(min=1.0)
    if kind == "entropy":
        return truncated_entropy(probs).tolist()
    with torch.no_grad():
        unit = normalize_rows(embedding_matrix.detach().float()[ids])
    return branch_score(probs, unit, kind).tolist()
