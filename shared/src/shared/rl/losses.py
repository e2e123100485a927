"""RL and preference losses on token-level tensors.

- `policy_loss`: PPO clipped surrogate on token-level advantages, with an asymmetric clip (DAPO's clip-higher:
  ratio clipped to [1 - clip_low, 1 + clip_high]) and an optional dual clip for negative advantages.
- `aggregate`: how per-token losses become one scalar — "token-mean" (sum over all policy tokens / their count),
  "seq-mean-token-mean" (mean over sequences of each sequence's token mean), "seq-mean-token-sum-norm"
  (sum over tokens / (num sequences * a constant length), Dr. GRPO). Callers training across processes or
  micro-batches pass the global denominator so the summed gradients equal one big batch's.
- `kl_penalty`: estimators of KL(pi || ref) per token: k1 = log pi - log ref, k2 = (log pi - log ref)^2 / 2,
  k3 = exp(log ref - log pi) - (log ref - log pi) - 1 (Schulman's low-variance unbiased estimator, >= 0).
- `entropy_from_logits`, `value_loss` (clipped), `dpo_loss` (sigmoid DPO, IPO, with label smoothing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def aggregate(
    loss_mat: Tensor,
    mask: Tensor,
    mode: str = "token-mean",
    num_tokens: float | Tensor | None = None,
    num_seqs: float | Tensor | None = None,
    norm_len: float | None = None,
) -> Tensor:
    """Reduce a [B, R] per-token loss to a scalar; `num_tokens`/`num_seqs` override the local denominators."""
    if mode == "token-mean":
        denom = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
        return (loss_mat * mask).sum() / denom
    if mode == "seq-mean-token-mean":
        per_seq = (loss_mat * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        denom = loss_mat.shape[0] if num_seqs is None else num_seqs
        return per_seq.sum() / denom
    if mode == "seq-mean-token-sum-norm":
        length = float(mask.shape[-1]) if norm_len is None else float(norm_len)
        denom = loss_mat.shape[0] if num_seqs is None else num_seqs
        return (loss_mat * mask).sum() / (denom * length)
    raise ValueError(f"unknown loss aggregation {mode!r}; known: {AGG_MODES}")


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float | None = None,
    dual_clip: float | None = None,
    agg: str = "token-mean",
    **agg_kwargs: float | Tensor | None,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped surrogate -min(r A, clip(r, 1-clip_low, 1+clip_high) A); returns (loss, stats).

    stats: clip_frac (share of policy tokens where the clipped term was chosen), approx_kl (mean of
    old - new logprob), ratio_mean.
    """
    clip_high = clip_low if clip_high is None else clip_high
    log_ratio = (logprobs - old_logprobs).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss_mat = torch.maximum(unclipped, clipped)
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        # For negative advantages bound the loss by -A * dual_clip (Dual-clip PPO).
        loss_mat = torch.where(advantages < 0, torch.minimum(loss_mat, -advantages * dual_clip), loss_mat)
    loss = aggregate(loss_mat, mask, agg, **agg_kwargs)
    with torch.no_grad():
        n = mask.sum().clamp(min=1)
        stats = {
            "clip_frac": float(((clipped > unclipped).float() * mask).sum() / n),
            "approx_kl": float((-log_ratio * mask).sum() / n),
            "ratio_mean": float((ratio * mask).sum() / n),
        }
    return loss, stats


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, kind: str = "k3") -> Tensor:
    """Per-token estimate of KL(pi || ref) from samples of pi."""
    diff = logprobs - ref_logprobs
    if kind == "k1":
        return diff
    if kind == "k2":
        return 0.5 * diff**2
    if kind == "k3":
        neg = (-diff).clamp(-20.0, 20.0)  # keep exp finite for tokens where the policies disagree wildly
        return torch.exp(neg) - neg - 1.0
    raise ValueError(f"unknown KL estimator {kind!r}; known: k1, k2, k3")


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution at each position: logsumexp(z) - sum softmax(z) z."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def token_logprobs(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / temperature) gathered at the target ids, computed in float32."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.gather(F.log_softmax(logits, dim=-1), -1, targets.unsqueeze(-1)).squeeze(-1)


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip: float | None = 0.2,
    agg: str = "token-mean",
    **agg_kwargs: float | Tensor | None,
) -> Tensor:
    """0.5 * max((V - G)^2, (clip(V, V_old +- clip) - G)^2), aggregated over policy tokens."""
    err = (values - returns) ** 2
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        err = torch.maximum(err, (clipped - returns) ** 2)
    return 0.5 * aggregate(err, mask, agg, **agg_kwargs)


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float = 0.1,
    kind: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[Tensor, dict[str, float]]:
    """Preference loss from summed sequence logprobs [B]; returns (mean loss, stats).

    h = (log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)).
    sigmoid (DPO): -(1-eps) log sigma(beta h) - eps log sigma(-beta h);  ipo: (h - 1/(2 beta))^2.
    """
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    if kind == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif kind == "ipo":
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"unknown DPO loss {kind!r}; known: sigmoid, ipo")
    with torch.no_grad():
        stats = {
            "reward_margin": float(beta * h.mean()),
            "reward_accuracy": float((h > 0).float().mean()),
        }
    return losses.mean(), stats
