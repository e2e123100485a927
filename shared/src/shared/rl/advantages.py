"""Advantage estimators as pure tensor functions over token-level rewards.

Every estimator takes `token_rewards` [B, R] (a trajectory reward sits on its last policy token; turn, segment or
token schemes put rewards wherever they belong) and `mask` [B, R] (1 = policy token), and returns
`(advantages, returns)` of shape [B, R], zero on non-policy tokens. Group-based estimators also take `group_ids`
[B] (the rollouts of one prompt share an id). `ADVANTAGES` maps names to functions; `compute_advantages` passes
each function only the inputs it uses, so trainers can select an estimator by name from a config.

Conventions (each written out in the tests' hand computations):
- GRPO: A_i = (R_i - mean_g) / (std_g + eps), std unbiased (torch.std), as in TRL and verl; `dr_grpo` drops the
  std division (Dr. GRPO). A group of one rollout has no comparison and gets advantage 0.
- RLOO: A_i = R_i - mean of the other rollouts of the group.
- REINFORCE++: discounted return-to-go per token, whitened over all policy tokens of the batch (unbiased variance);
  `reinforce_pp_baseline` first subtracts the group mean of the trajectory scores.
- GAE: with values from a value head; the recursion runs over policy tokens only (observation tokens are
  skipped, their rewards carried to the preceding policy token), advantages whitened over policy tokens.

Every tensor an estimator creates is made on its inputs' device (`new_zeros`, `device=`), so the same code runs on
CUDA; `shared/tests/test_device_safety.py` runs each under `shared.devicecheck`, which refuses CPU/device mixes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

Tensor = torch.Tensor


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of x over positions where mask is 1 (all of them, or along dim)."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise x to zero mean and unit (unbiased) variance over masked positions."""
    n = mask.sum()
    mean = masked_mean(x, mask)
    var = (((x - mean) ** 2) * mask).sum() / (n - 1).clamp(min=1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def _check(token_rewards: Tensor, mask: Tensor, group_ids: Tensor | None = None) -> None:
    if token_rewards.shape != mask.shape or token_rewards.dim() != 2:
        raise ValueError(f"token_rewards {tuple(token_rewards.shape)} and mask {tuple(mask.shape)} must be equal [B, R]")
    if group_ids is not None and group_ids.shape != (token_rewards.shape[0],):
        raise ValueError(f"group_ids has shape {tuple(group_ids.shape)}, expected ({token_rewards.shape[0]},)")


def _group_stats(scores: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row group mean, unbiased group std and group size."""
    _, inv = torch.unique(group_ids.to(scores.device), return_inverse=True)
    k = int(inv.max()) + 1
    zeros = scores.new_zeros(k)  # on the scores' device: group ids may come from the CPU
    count = zeros.clone().scatter_add_(0, inv, torch.ones_like(scores))
    mean = zeros.clone().scatter_add_(0, inv, scores) / count
    sq = zeros.clone().scatter_add_(0, inv, (scores - mean[inv]) ** 2)
    std = torch.sqrt(sq / (count - 1).clamp(min=1))
    return mean[inv], std[inv], count[inv]


def grpo_advantages(
    token_rewards: Tensor, mask: Tensor, group_ids: Tensor, eps: float = 1e-6, norm_by_std: bool = True
) -> tuple[Tensor, Tensor]:
    """GRPO outcome advantage: the trajectory score normalised within its group, broadcast to its policy tokens."""
    _check(token_rewards, mask, group_ids)
    scores = token_rewards.sum(-1)
    mean, std, count = _group_stats(scores, group_ids)
    adv = scores - mean
    if norm_by_std:
        adv = adv / (std + eps)
    adv = torch.where(count > 1, adv, torch.zeros_like(adv))
    return adv[:, None] * mask, scores[:, None] * mask


def rloo_advantages(token_rewards: Tensor, mask: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor]:
    """RLOO: score minus the mean score of the other rollouts of the same prompt."""
    _check(token_rewards, mask, group_ids)
    scores = token_rewards.sum(-1)
    mean, _, count = _group_stats(scores, group_ids)
    others = (mean * count - scores) / (count - 1).clamp(min=1)
    adv = torch.where(count > 1, scores - others, torch.zeros_like(scores))
    return adv[:, None] * mask, scores[:, None] * mask


def _carry_to_policy_tokens(token_rewards: Tensor, mask: Tensor) -> Tensor:
    """Move rewards that sit on non-policy tokens to the nearest preceding policy token of the same row."""
    out = token_rewards * mask
    pending = token_rewards.new_zeros(token_rewards.shape[0])
    for t in reversed(range(token_rewards.shape[1])):
        m = mask[:, t]
        pending = pending + token_rewards[:, t] * (1 - m)
        out[:, t] = out[:, t] + pending * m
        pending = pending * (1 - m)
    return out


def reinforce_pp_advantages(
    token_rewards: Tensor,
    mask: Tensor,
    group_ids: Tensor | None = None,
    gamma: float = 1.0,
    group_baseline: bool = False,
) -> tuple[Tensor, Tensor]:
    """REINFORCE++: discounted return-to-go over policy tokens, whitened over the whole batch."""
    _check(token_rewards, mask, group_ids)
    rewards = _carry_to_policy_tokens(token_rewards, mask)
    if group_baseline:
        if group_ids is None:
            raise ValueError("reinforce_pp with group_baseline needs group_ids")
        mean, _, _ = _group_stats(rewards.sum(-1), group_ids)
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask * positions).argmax(-1)  # baseline subtracted at the last policy token
        rewards = rewards.clone()
        rows = torch.arange(rewards.shape[0], device=rewards.device)
        rewards[rows, last] -= mean * (mask.sum(-1) > 0)
    returns = torch.zeros_like(rewards)
    running = rewards.new_zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        # Non-policy tokens neither add reward nor discount: the return passes over them unchanged.
        running = m * (rewards[:, t] + gamma * running) + (1 - m) * running
        returns[:, t] = running * m
    return masked_whiten(returns, mask), returns


def gae_advantages(
    token_rewards: Tensor, mask: Tensor, values: Tensor, gamma: float = 1.0, lam: float = 1.0, whiten: bool = True
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over policy tokens; returns (advantages, value targets)."""
    _check(token_rewards, mask)
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} must match mask {tuple(mask.shape)}")
    rewards = _carry_to_policy_tokens(token_rewards, mask)
    values = values * mask
    adv = torch.zeros_like(rewards)
    next_value = rewards.new_zeros(rewards.shape[0])
    last_gae = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * last_gae
        adv[:, t] = gae * m
        last_gae = m * gae + (1 - m) * last_gae
        next_value = m * values[:, t] + (1 - m) * next_value
    returns = (adv + values) * mask
    if whiten:
        adv = masked_whiten(adv, mask)
    return adv, returns


ADVANTAGES: dict[str, Callable[..., tuple[Tensor, Tensor]]] = {
    "grpo": grpo_advantages,
    "dr_grpo": partial(grpo_advantages, norm_by_std=False),
    "rloo": rloo_advantages,
    "reinforce_pp": reinforce_pp_advantages,
    "reinforce_pp_baseline": partial(reinforce_pp_advantages, group_baseline=True),
    "gae": gae_advantages,
}


def compute_advantages(
    name: str,
    token_rewards: Tensor,
    mask: Tensor,
    group_ids: Tensor | None = None,
    values: Tensor | None = None,
    **options: float,
) -> tuple[Tensor, Tensor]:
    """Run the estimator `name` with the inputs it needs; unknown names list the known ones."""
    if name not in ADVANTAGES:
        raise KeyError(f"unknown advantage estimator {name!r}; known: {sorted(ADVANTAGES)}")
    fn = ADVANTAGES[name]
    if name == "gae":
        if values is None:
            raise ValueError("advantage 'gae' needs values from a value head")
        return fn(token_rewards, mask, values, **options)
    if name in ("grpo", "dr_grpo", "rloo", "reinforce_pp_baseline") and group_ids is None:
        raise ValueError(f"advantage {name!r} needs group_ids")
    return fn(token_rewards, mask, group_ids, **options)
