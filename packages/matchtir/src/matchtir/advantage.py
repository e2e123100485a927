"""Dual-level advantage of MatchTIR over multi-turn rollouts.

For rollout i of a group (the n rollouts of one prompt) with per-turn rewards r_{i,t}:
- trajectory level: R_i = sum_t r_{i,t}, A^traj_i = (R_i - mean_group) / (std_group + eps) (shared GRPO estimator:
  unbiased std, a group of one rollout gets 0);
- turn level: discounted return G_{i,t} = r_{i,t} + gamma G_{i,t+1}, normalised across the rollouts of the same
  group that reached turn index t: A^turn_{i,t} = (G_{i,t} - mean_j G_{j,t}) / (std_j + eps) (unbiased std; a
  turn index reached by a single rollout keeps mean 0 and std 1, verl's convention);
- mix: A_{i,t} = w A^traj_i + (1 - w) A^turn_{i,t}; w = 1/2 is the paper's dual level, "trajectory" is w = 1
  (plain GRPO), "turn" is w = 0. A_{i,t} is broadcast to every generated token of turn t.
Per-turn rewards are read from the token-level rewards: the sum over each turn's span (the turn reward sits on
its last token), so any token-level terms the trainer adds are kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from shared.rl.advantages import grpo_advantages
from shared.rollout.trajectory import Trajectory

ADVANTAGE_MODES = ("trajectory", "turn", "dual")


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    """G_t = r_t + gamma G_{t+1}, computed backwards over one trajectory's turns."""
    out, running = [0.0] * len(rewards), 0.0
    for t in reversed(range(len(rewards))):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def turn_advantages(turn_rewards: Sequence[Sequence[float]], group_ids: Sequence[Any], gamma: float = 0.9,
                    eps: float = 1e-6) -> list[list[float]]:
    """A^turn_{i,t}: discounted returns normalised per (group, turn index) across the group's rollouts."""
    if len(turn_rewards) != len(group_ids):
        raise ValueError(f"{len(turn_rewards)} reward lists for {len(group_ids)} group ids")
    returns = [discounted_returns(r, gamma) for r in turn_rewards]
    cells: dict[tuple[Any, int], list[float]] = defaultdict(list)
    for g, rets in zip(group_ids, returns):
        for t, v in enumerate(rets):
            cells[(g, t)].append(v)
    stats = {}
    for key, vals in cells.items():
        x = torch.tensor(vals, dtype=torch.float64)
        stats[key] = (0.0, 1.0) if len(vals) == 1 else (float(x.mean()), float(x.std()))
    return [[(v - stats[(g, t)][0]) / (stats[(g, t)][1] + eps) for t, v in enumerate(rets)]
            for g, rets in zip(group_ids, returns)]


def trajectory_advantages(turn_rewards: Sequence[Sequence[float]], group_ids: Sequence[Any],
                          eps: float = 1e-6) -> list[float]:
    """A^traj_i from the summed turn rewards, by the shared GRPO estimator."""
    _, inv = torch.unique(torch.tensor([hash(g) for g in group_ids]), return_inverse=True)
    scores = torch.tensor([[float(sum(r))] for r in turn_rewards], dtype=torch.float64)
    adv, _ = grpo_advantages(scores, torch.ones_like(scores), inv, eps=eps)
    return [float(a) for a in adv[:, 0]]


def mix_advantages(traj_adv: Sequence[float], turn_adv: Sequence[Sequence[float]], mode: str = "dual",
                   weight: float = 0.5) -> list[list[float]]:
    """Per-turn advantages of each rollout: w A^traj + (1 - w) A^turn, w set by the mode."""
    if mode not in ADVANTAGE_MODES:
        raise ValueError(f"unknown advantage mode {mode!r}; known: {ADVANTAGE_MODES}")
    w = {"trajectory": 1.0, "turn": 0.0, "dual": weight}[mode]
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"advantage weight must lie in [0, 1], got {w}")
    return [[w * a + (1 - w) * b for b in turns] for a, turns in zip(traj_adv, turn_adv)]


def per_turn_rewards(traj: Trajectory, token_rewards: torch.Tensor) -> list[float]:
    """Sum of the token rewards inside each turn span (one row of the padded batch)."""
    return [float(token_rewards[s:e].sum()) for s, e in traj.turn_spans]


def dual_advantage_fn(mode: str = "dual", weight: float = 0.5, gamma: float = 0.9, eps: float = 1e-6):
    """advantage_fn hook for `shared.rl.trainer.RLTrainer`: (trajs, token_rewards, mask, groups) -> [B, R]."""
    if mode not in ADVANTAGE_MODES:
        raise ValueError(f"unknown advantage mode {mode!r}; known: {ADVANTAGE_MODES}")

    def fn(trajs: list[Trajectory], token_rewards: torch.Tensor, mask: torch.Tensor,
           groups: torch.Tensor) -> torch.Tensor:
        rewards = [per_turn_rewards(t, token_rewards[i]) for i, t in enumerate(trajs)]
        gids = [int(g) for g in groups]
        per_turn = mix_advantages(trajectory_advantages(rewards, gids, eps), turn_advantages(rewards, gids, gamma, eps),
                                  mode, weight)
        out = torch.zeros_like(token_rewards)
        for i, t in enumerate(trajs):
            for (s, e), a in zip(t.turn_spans, per_turn[i]):
                out[i, s:e] = a
        return out * mask

    return fn
