"""DOME's hybrid-label loss for optimising edit vectors: hard docID labels + query-specific soft labels + norm penalty.

L = L_hard + L_soft + μ‖δ‖², per query j (averaged over queries):
- L_hard = −Σ_t log p(docID_t | q_j, z_j)  (the exact mapping to the new document's docID);
- L_soft = Σ_t λ_{j,t} · KL(p̃_{j,t} ‖ p(· | q_j, z_j)), where p̃ mixes the hard label with the unedited model's own
  distribution over docID tokens for that query (temperature T): p̃ = a·onehot(docID_t) + (1 − a)·softmax(z⁰/T).
  The unedited part is what makes p̃ query-specific, so queries of documents sharing a docID prefix keep distinct
  edit vectors instead of collapsing to one.
- adaptive balance (inferred from "adaptive"): λ_{j,t} = λ₀ · (1 − p(docID_t)), detached — the soft term fades as
  the hard label is learned.
"""

from __future__ import annotations

import torch


def soft_targets(
    base_logits: torch.Tensor,
    labels: torch.Tensor,
    allowed: torch.Tensor,
    temperature: float = 1.0,
    hard_weight: float = 0.5,
) -> torch.Tensor:
    """p̃ (n, T, V): `hard_weight`·onehot(label) + (1 − hard_weight)·softmax(base/T) restricted to `allowed` tokens."""
    if not 0.0 <= hard_weight <= 1.0:
        raise ValueError(f"soft_targets: hard_weight must be in [0, 1], got {hard_weight}")
    if temperature <= 0:
        raise ValueError(f"soft_targets: temperature must be > 0, got {temperature}")
    masked = base_logits.float() / temperature
    masked = masked.masked_fill(~allowed.bool().view(1, 1, -1), float("-inf"))
    p0 = torch.softmax(masked, dim=-1)
    onehot = torch.zeros_like(p0).scatter_(-1, labels.clamp_min(0).unsqueeze(-1), 1.0)
    return hard_weight * onehot + (1.0 - hard_weight) * p0


def hybrid_label_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft: torch.Tensor | None,
    delta: torch.Tensor,
    lam: float = 1.0,
    mu: float = 0.0,
    mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Hybrid-label loss; logits (n, T, V), labels (n, T), soft (n, T, V) or None (hard only), delta (n, ...).

    Returns {"loss", "hard", "soft", "norm"}; "loss" = hard + soft + norm, where "soft" already carries λ.
    """
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"hybrid_label_loss: logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    if mask is None:
        mask = torch.ones_like(labels, dtype=torch.float32)
    mask = mask.float()
    logp = torch.log_softmax(logits.float(), dim=-1)
    tok_logp = logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    hard = -(tok_logp * mask).sum(-1).mean()
    if soft is None:
        soft_term = torch.zeros((), dtype=hard.dtype)
    else:
        weight = lam * (1.0 - tok_logp.detach().exp())
        # KL(p̃ ‖ p) with the 0·log 0 = 0 convention
        kl = torch.where(soft > 0, soft * (torch.log(soft.clamp_min(1e-30)) - logp), torch.zeros_like(soft)).sum(-1)
        soft_term = (weight * kl * mask).sum(-1).mean()
    norm = mu * delta.float().pow(2).reshape(delta.shape[0], -1).sum(-1).mean()
    return {"loss": hard + soft_term + norm, "hard": hard, "soft": soft_term, "norm": norm}
