"""RL and preference losses on token-level tensors.

- `policy_loss`: PPO clipped surrogate on token-level advantages, with an asymmetric clip (DAPO's clip-higher:
  ratio clipped to [1 - clip_low, 1 + clip_high]) and an optional dual clip for negative advantages.
- `aggregate`: how per-token losses become one scalar — "token-mean" (sum over all policy tokens / their count),
  "seq-mean-token-mean" (mean over sequences of each sequence's token mean), "seq-mean-token-sum-norm"
  (sum over tokens / (num sequences * a constant length), Dr. GRPO). Callers training across processes or
  micro-batches pass the global denominator so the summed gradients equal one big batch's.
- `kl_penalty`: estimators of KL(pi || ref) per token: k1 = log pi - log ref, k2 = (log pi - log ref)^2 / 2,
  k3 = exp(log ref - log pi) - (log ref - log pi) - 1 (Schulman's low-variance unbiased estimator, >= 0).
- `selective_log_softmax` / `token_logprobs`: the log-probability of the chosen token, z_y / T - logsumexp(z / T),
  computed in float32 chunk by chunk over the positions, never as a full [B, R, V] float32 log-softmax (at a 150k
  vocabulary that copy was the memory peak of a training step). Its backward recomputes each chunk's softmax, so
  autograd keeps only the logits themselves and one float per position. `entropy_from_logits` works the same way.
  Temperature 0 means greedy sampling: logprobs are then those of softmax(z) (T = 1), as the generators report them.
- `value_loss` (clipped), `dpo_loss` (sigmoid DPO, IPO, with label smoothing).
- `ppo_objective`: the RL trainer's micro-batch loss assembled from these terms as an `RLConfig` asks.

Every tensor these functions create is made on their inputs' device (tests run them on the `meta` device and under
`shared.devicecheck`, which refuses a CPU tensor meeting a device one).
"""

from __future__ import annotations

from typing import Any

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
        values = torch.stack([((clipped > unclipped).float() * mask).sum().float(), (-log_ratio * mask).sum().float(),
                              (ratio * mask).sum().float()]) / n
        clip_frac, approx_kl, ratio_mean = values.tolist()  # one device-to-host copy, not three
    return loss, {"clip_frac": clip_frac, "approx_kl": approx_kl, "ratio_mean": ratio_mean}


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


CHUNK_BYTES = 256 * 1024**2  # float32 working set of one chunk of the chunked vocabulary passes


def scoring_temperature(temperature: float) -> float:
    """The temperature logprobs are taken at: T itself, or 1 for greedy sampling (T = 0), never a division by 0."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}")
    return 1.0 if temperature == 0 else float(temperature)


def _chunk_rows(vocab: int, chunk_bytes: int | None) -> int:
    return max(1, (CHUNK_BYTES if chunk_bytes is None else chunk_bytes) // (4 * max(1, vocab)))


def _as_3d(logits: Tensor) -> Tensor:
    """[A, T, V] without copying where possible: a [B, R, V] slice of a model's logits (not contiguous) stays a
    view, so the chunked passes never hold a second copy of the logits."""
    if logits.dim() == 3 and not logits.is_contiguous():
        return logits
    return logits.reshape(-1, logits.shape[-1]).unsqueeze(0)  # a view when contiguous: one run over all positions


def _chunks(z: Tensor, rows: int):
    """(a, slice) over the leading index and chunks of `rows` positions."""
    for a in range(z.shape[0]):
        for s in range(0, z.shape[1], rows):
            yield a, slice(s, s + rows)


class _SelectiveLogSoftmax(torch.autograd.Function):
    """log softmax(z / T)[y] over z [A, T, V]; backward (onehot(y) - softmax(z / T)) / T, one chunk at a time."""

    @staticmethod
    def forward(ctx, logits: Tensor, index: Tensor, temperature: float, rows: int) -> Tensor:  # type: ignore[override]
        out = torch.empty(logits.shape[:-1], dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(out)
        for a, s in _chunks(logits, rows):
            z = logits[a, s].float() / temperature
            lse[a, s] = torch.logsumexp(z, dim=-1)
            out[a, s] = z.gather(-1, index[a, s, None]).squeeze(-1) - lse[a, s]
        ctx.save_for_backward(logits, index, lse)
        ctx.temperature, ctx.rows = temperature, rows
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        logits, index, lse = ctx.saved_tensors
        t, rows = ctx.temperature, ctx.rows
        grad_logits = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
        for a, s in _chunks(logits, rows):
            p = torch.exp(logits[a, s].float() / t - lse[a, s, None])
            g = grad[a, s, None].float()
            chunk = -p * g
            chunk.scatter_add_(-1, index[a, s, None], g)
            grad_logits[a, s] = (chunk / t).to(logits.dtype)
        return grad_logits, None, None, None


class _Entropy(torch.autograd.Function):
    """Entropy of softmax(z) over z [A, T, V]; backward dH/dz = -p * (log p + H), one chunk at a time."""

    @staticmethod
    def forward(ctx, logits: Tensor, rows: int) -> Tensor:  # type: ignore[override]
        out = torch.empty(logits.shape[:-1], dtype=torch.float32, device=logits.device)
        for a, s in _chunks(logits, rows):
            logp = torch.log_softmax(logits[a, s].float(), dim=-1)
            # exp(-inf) * -inf is nan: a masked (-inf) logit contributes 0
            out[a, s] = -(logp.exp() * logp).nan_to_num(0.0).sum(-1)
        ctx.save_for_backward(logits, out)
        ctx.rows = rows
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        logits, ent = ctx.saved_tensors
        grad_logits = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)
        for a, s in _chunks(logits, ctx.rows):
            logp = torch.log_softmax(logits[a, s].float(), dim=-1)
            d = -(logp.exp() * (logp + ent[a, s, None])).nan_to_num(0.0)
            grad_logits[a, s] = (d * grad[a, s, None].float()).to(logits.dtype)
        return grad_logits, None


def selective_log_softmax(logits: Tensor, index: Tensor, temperature: float = 1.0,
                          chunk_bytes: int | None = None) -> Tensor:
    """log softmax(logits / T) gathered at `index`: logits [..., V], index [...] -> float32 [...].

    Equal to the full log-softmax gather (tests: 1e-6), without its [..., V] float32 copy: positions are processed in
    chunks whose float32 working set is about `chunk_bytes` (default `CHUNK_BYTES`)."""
    if logits.shape[:-1] != index.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and index {tuple(index.shape)}: index must be logits' shape "
                         "without the vocabulary dimension")
    t = scoring_temperature(temperature)
    z = _as_3d(logits)
    out = _SelectiveLogSoftmax.apply(z, index.reshape(z.shape[:-1]).to(torch.long), t,
                                     _chunk_rows(logits.shape[-1], chunk_bytes))
    return out.reshape(index.shape)


def entropy_from_logits(logits: Tensor, chunk_bytes: int | None = None) -> Tensor:
    """Entropy of the categorical distribution at each position, -sum softmax(z) log softmax(z), in float32, chunked
    over positions like `selective_log_softmax` (no [..., V] float32 copy kept for backward)."""
    z = _as_3d(logits)
    out = _Entropy.apply(z, _chunk_rows(logits.shape[-1], chunk_bytes))
    return out.reshape(logits.shape[:-1])


def token_logprobs(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / temperature) gathered at the target ids, in float32 (temperature 0: greedy, T = 1)."""
    return selective_log_softmax(logits, targets, temperature)


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


def ppo_objective(
    cfg: Any,
    logprobs: Tensor,
    logits: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    denom: dict[str, float],
    ref_logprobs: Tensor | None = None,
    critic: tuple[Tensor, Tensor, Tensor] | None = None,
    critic_only: bool = False,
) -> tuple[Tensor, dict[str, float]]:
    """One micro-batch's training loss from the policy's forward: the clipped surrogate, + beta x KL to the
    reference (when `ref_logprobs`), - entropy_coef x entropy (the entropy is also logged with `entropy_metric`),
    + critic.coef x the clipped value loss (`critic` = (values, old values, returns)). `cfg` is an RLConfig;
    `denom` holds the global "tokens" and "seqs" of the mini-batch; `critic_only` (critic warm-up) weighs the
    policy terms 0 while keeping them in the graph. Returns (loss, stats) with stats["tokens"] the mask's sum."""
    agg = dict(num_tokens=denom["tokens"], num_seqs=denom["seqs"], norm_len=cfg.loss_norm_len or cfg.max_new_tokens)
    loss, stats = policy_loss(logprobs, old_logprobs, advantages, mask, cfg.clip_low, cfg.clip_high, cfg.dual_clip,
                              cfg.loss_agg, **agg)
    n = mask.sum().clamp(min=1)
    if ref_logprobs is not None:
        kl = kl_penalty(logprobs, ref_logprobs, cfg.kl_estimator)
        loss = loss + cfg.beta * aggregate(kl, mask, cfg.loss_agg, **agg)
        stats["kl"] = float((kl.detach() * mask).sum() / n)
    ent = None
    if cfg.entropy_coef > 0:
        ent = entropy_from_logits(logits)
        loss = loss - cfg.entropy_coef * aggregate(ent, mask, cfg.loss_agg, **agg)
    elif cfg.entropy_metric:  # chunked, without a graph: no [B, R, V] float32 copy
        with torch.no_grad():
            ent = entropy_from_logits(logits.detach())
    if ent is not None:
        stats["entropy"] = float((ent.detach() * mask).sum() / n)
    if critic_only:  # the policy terms weigh 0 (the policy stays in the graph, as DDP expects)
        loss = loss * 0.0
    if critic is not None:
        values, old_values, returns = critic
        vf = value_loss(values, old_values, returns, mask, cfg.critic.value_clip, "token-mean",
                        num_tokens=denom["tokens"])
        loss = loss + cfg.critic.coef * vf
        stats["value_loss"] = float(vf.detach()) * float(denom["tokens"]) / float(n)
        stats["value_mean"] = float((values.detach() * mask).sum() / n)
    stats["tokens"] = float(mask.sum())
    return loss, stats


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
