"""ROSE's token advantages: segment-level values over branch points plus the length-aware penalty.

For one prompt's tree with final rewards R_b (no std normalisation):
- V(k) = mean reward of the rollouts that pass through branch point k; V(0) = the group mean.
- For consecutive branch points k_i < k_{i+1} on rollout b: A = V(k_{i+1}) - V(k_i) on tokens [k_i, k_{i+1});
  the last segment [k_last, L_b) gets R_b - V(k_last).
- Length penalty (alpha > 0): among correct rollouts, with s the shortest (first on ties), every other correct b
  with common branch point k_c gets f = 1 - ((L_s - k_c) / (L_b - k_c))^alpha and A[k_c:L_b] -= |A| * f.

`rose_advantage_fn` adapts this to the shared trainer's `advantage_fn` hook: it rebuilds each group's tree from
the trajectories' metadata and returns a [B, R] tensor aligned with the trainer's padded response mask. The segment
values read R_b as the sum of the token rewards the trainer passes (so `rl.kl_in_reward` subtracts its -beta*KL
terms there), but which rollouts are correct for the length term is read from each rollout's own reward: the KL
terms pull a correct rollout's sum below `correct_reward`, which silently switched the length penalty off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from rose.tree import RolloutTree


def _check_rewards(tree: RolloutTree, rewards: Sequence[float]) -> None:
    if len(rewards) != len(tree):
        raise ValueError(f"{len(rewards)} rewards for a tree of {len(tree)} rollouts")


def node_values(tree: RolloutTree, rewards: Sequence[float]) -> dict[int | None, float]:
    """V per branch point, keyed by the rollout that created it (None = the root, V(0) = group mean)."""
    _check_rewards(tree, rewards)
    values: dict[int | None, float] = {None: sum(rewards) / len(rewards)}
    for d, r in enumerate(tree.rollouts):
        if r.parent is None:
            continue
        through = [rewards[b] for b in range(len(tree)) if tree.passes_through(b, d)]
        values[d] = sum(through) / len(through)
    return values


def segment_advantages(tree: RolloutTree, rewards: Sequence[float]) -> list[list[float]]:
    """Per rollout, one advantage per token from the value differences between consecutive branch points."""
    values = node_values(tree, rewards)
    out = []
    for b, r in enumerate(tree.rollouts):
        points = list(tree.branch_points(b).items())  # sorted by position
        adv = [0.0] * len(r)
        for i, (k, node) in enumerate(points):
            if i + 1 < len(points):
                end, a = points[i + 1][0], values[points[i + 1][1]] - values[node]
            else:
                end, a = len(r), rewards[b] - values[node]
            adv[k:end] = [a] * (end - k)
        out.append(adv)
    return out


def length_penalty(
    tree: RolloutTree, rewards: Sequence[float], advantages: list[list[float]], alpha: float,
    correct_reward: float = 1.0,
) -> list[list[float]]:
    """Apply the length-aware penalty among correct rollouts (reward >= correct_reward); returns new lists."""
    _check_rewards(tree, rewards)
    if alpha < 0:
        raise ValueError(f"length penalty alpha must be >= 0, got {alpha}")
    out = [list(a) for a in advantages]
    correct = [b for b in range(len(tree)) if rewards[b] >= correct_reward]
    if alpha == 0 or len(correct) < 2:
        return out
    s = min(correct, key=lambda b: (len(tree[b]), b))
    ls = len(tree[s])
    for b in correct:
        lb = len(tree[b])
        if b == s or lb <= ls:
            continue
        kc = tree.common_branch_point(b, s)
        f = 1.0 - ((ls - kc) / (lb - kc)) ** alpha
        out[b][kc:lb] = [a - abs(a) * f for a in out[b][kc:lb]]
    return out


def rose_advantages(tree: RolloutTree, rewards: Sequence[float], alpha: float = 0.0,
                    correct_reward: float = 1.0, outcomes: Sequence[float] | None = None) -> list[list[float]]:
    """Segment advantages of `rewards` followed by the length penalty (alpha = 0 turns it off) among the rollouts
    whose `outcomes` (default: `rewards`) reach `correct_reward`."""
    segments = segment_advantages(tree, rewards)
    return length_penalty(tree, rewards if outcomes is None else outcomes, segments, alpha, correct_reward)


def distinct_answers(answers: Sequence[str | None]) -> int:
    """Number of different extracted final answers in a group (a missing answer counts as one kind)."""
    return len({a if a is not None else "<none>" for a in answers})


def rose_advantage_fn(alpha: float = 0.0, correct_reward: float = 1.0) -> Callable[..., torch.Tensor]:
    """The shared trainer's `advantage_fn(trajs, token_rewards, mask, group_ids) -> [B, R]` for ROSE."""

    def fn(trajs: Sequence[Any], token_rewards: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        adv = torch.zeros_like(mask, dtype=torch.float32)
        groups: dict[int, list[int]] = {}
        for row, g in enumerate(group_ids.tolist()):
            groups.setdefault(g, []).append(row)
        for rows in groups.values():
            tree, ids = RolloutTree.from_metadata([list(trajs[j].response_ids) for j in rows],
                                                  [trajs[j].metadata for j in rows])
            rewards, outcomes = [0.0] * len(tree), [0.0] * len(tree)
            for j, tid in zip(rows, ids):
                rewards[tid] = float(token_rewards[j].sum())
                outcomes[tid] = float(trajs[j].reward)  # the verifier's reward, without KL terms
            per_node = rose_advantages(tree, rewards, alpha, correct_reward, outcomes)
            for j, tid in zip(rows, ids):
                values = torch.tensor(per_node[tid], dtype=torch.float32)
                adv[j, : len(values)] = values
        return adv * mask

    return fn
