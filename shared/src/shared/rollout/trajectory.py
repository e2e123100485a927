"""Trajectory: one rollout as token ids plus the masks and rewards the RL losses need.

A trajectory keeps the prompt ids and the response ids exactly as produced (generated tokens and the
environment's observation tokens interleaved), a loss mask over the response (1 = token sampled by the policy,
0 = observation token the policy must not be trained on), the spans of each generated turn, rewards at trajectory,
turn and token granularity, the sampling logprobs and (when asked for) the sampling entropies. `group_id` links a
trajectory to its prompt record; `group_key` (default: the group id) says which trajectories are compared with each
other by group estimators (GRPO, RLOO) and dynamic sampling, so two roles of one question can keep one record link
and still be normalised apart. `pad_trajectories` turns a list of them into padded
tensors laid out like verl's batches: prompts left-padded to a common length and responses right-padded after it,
so every response starts at the same column and logprob slicing is a single slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


class TrajectoryError(ValueError):
    """A trajectory whose fields disagree in length or content."""


@dataclass
class Trajectory:
    """One rollout. Lengths of `loss_mask`, `old_logprobs`, `entropies` and `token_rewards` equal
    len(response_ids); `entropies` (like `old_logprobs`) hold 0 on observation tokens."""

    prompt_ids: list[int]
    response_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    old_logprobs: list[float] | None = None
    turn_spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) in response_ids per turn
    turn_rewards: list[float] = field(default_factory=list)
    reward: float = 0.0  # final (trajectory-level) reward
    token_rewards: list[float] | None = None  # optional dense rewards added on top of reward/turn_rewards
    group_id: int | str = 0
    text: str = ""  # decoded response (generated text and observations), for reward functions and logs
    finish_reason: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    entropies: list[float] | None = None  # sampling entropy of each policy token (SamplingParams.entropy)
    group_key: Any = None  # grouping for GRPO/RLOO and dynamic sampling; None = group_id

    @property
    def group(self) -> Any:
        """The key group estimators compare this trajectory under: `group_key`, or `group_id` when unset (lists, e.g.
        read back from JSON, as tuples so that the key is hashable)."""
        return _hashable(self.group_id if self.group_key is None else self.group_key)

    def append(self, ids: Sequence[int], policy: bool, logprobs: Sequence[float] | None = None,
               entropies: Sequence[float] | None = None) -> tuple[int, int]:
        """Append tokens; `policy=True` marks them trainable and records a turn span. Returns the span."""
        start = len(self.response_ids)
        ids = [int(i) for i in ids]
        for name, values in (("logprobs", logprobs), ("entropies", entropies)):
            if values is not None and policy and len(values) != len(ids):
                raise TrajectoryError(f"append: {len(values)} {name} for {len(ids)} token ids")
        self.response_ids.extend(ids)
        self.loss_mask.extend([1 if policy else 0] * len(ids))
        self.old_logprobs = _extend_aligned(self.old_logprobs, logprobs, start, len(ids), policy)
        self.entropies = _extend_aligned(self.entropies, entropies, start, len(ids), policy)
        span = (start, start + len(ids))
        if policy and ids:
            self.turn_spans.append(span)
        return span

    @property
    def num_policy_tokens(self) -> int:
        return sum(self.loss_mask)

    def validate(self) -> None:
        """Raise TrajectoryError naming the field whose length or values are inconsistent."""
        n = len(self.response_ids)
        if len(self.loss_mask) != n:
            raise TrajectoryError(f"loss_mask has {len(self.loss_mask)} entries for {n} response ids")
        if any(m not in (0, 1) for m in self.loss_mask):
            raise TrajectoryError("loss_mask must hold only 0 and 1")
        if self.old_logprobs is not None and len(self.old_logprobs) != n:
            raise TrajectoryError(f"old_logprobs has {len(self.old_logprobs)} entries for {n} response ids")
        if self.entropies is not None and len(self.entropies) != n:
            raise TrajectoryError(f"entropies has {len(self.entropies)} entries for {n} response ids")
        if self.token_rewards is not None and len(self.token_rewards) != n:
            raise TrajectoryError(f"token_rewards has {len(self.token_rewards)} entries for {n} response ids")
        for s, e in self.turn_spans:
            if not 0 <= s < e <= n:
                raise TrajectoryError(f"turn span ({s}, {e}) outside the response of length {n}")
        if self.turn_rewards and len(self.turn_rewards) != len(self.turn_spans):
            raise TrajectoryError(f"{len(self.turn_rewards)} turn_rewards for {len(self.turn_spans)} turns")

    def dense_rewards(self) -> list[float]:
        """Token-level rewards: the final reward on the last policy token, each turn reward on its turn's last
        token, plus `token_rewards` when set. Summing them gives the trajectory return."""
        self.validate()
        out = [0.0] * len(self.response_ids)
        if self.token_rewards is not None:
            out = [float(r) for r in self.token_rewards]
        for (_, e), r in zip(self.turn_spans, self.turn_rewards):
            out[e - 1] += float(r)
        last = max((i for i, m in enumerate(self.loss_mask) if m), default=None)
        if last is not None:
            out[last] += float(self.reward)
        return out

    def segments(self, tokenizer: Any) -> list:
        """Runs of policy and observation tokens as `Segment(kind, start, end, text)` (see `rollout.spans`)."""
        from shared.rollout.spans import segments

        return segments(self, tokenizer)


def _extend_aligned(column: list[float] | None, values: Sequence[float] | None, start: int, n: int,
                    policy: bool) -> list[float] | None:
    """Extend a per-token column that is kept only once some segment supplies it (zeros elsewhere)."""
    if values is None and column is None:
        return None
    if column is None:  # earlier segments had none: fill with zeros so lengths stay aligned
        column = [0.0] * start
    if values is None or not policy:
        column.extend([0.0] * n)
    else:
        column.extend(float(x) for x in values)
    return column


def pad_trajectories(trajs: Sequence[Trajectory], pad_id: int, device: torch.device | str = "cpu") -> dict:
    """Pad trajectories into one batch.

    Returns a dict of tensors: input_ids, attention_mask, position_ids [B, P+R]; response_mask (loss mask),
    response_attention (real response tokens), old_logprobs, token_rewards [B, R]; plus `prompt_len` = P.
    Prompts are left-padded and responses right-padded, so response token t of every row sits at column P+t and
    its logprob is read from the logits at column P+t-1.
    """
    if not trajs:
        raise TrajectoryError("pad_trajectories got an empty list")
    for i, t in enumerate(trajs):
        try:
            t.validate()
        except TrajectoryError as err:
            raise TrajectoryError(f"trajectory {i}: {err}") from None
        if not t.prompt_ids:
            raise TrajectoryError(f"trajectory {i}: empty prompt_ids")
    b = len(trajs)
    p = max(len(t.prompt_ids) for t in trajs)
    r = max(1, max(len(t.response_ids) for t in trajs))
    input_ids = torch.full((b, p + r), pad_id, dtype=torch.long)
    attention = torch.zeros((b, p + r), dtype=torch.long)
    resp_mask = torch.zeros((b, r), dtype=torch.float32)
    old_lp = torch.zeros((b, r), dtype=torch.float32)
    rewards = torch.zeros((b, r), dtype=torch.float32)
    for i, t in enumerate(trajs):
        lp, lr = len(t.prompt_ids), len(t.response_ids)
        input_ids[i, p - lp : p] = torch.tensor(t.prompt_ids, dtype=torch.long)
        attention[i, p - lp : p + lr] = 1
        if lr:
            input_ids[i, p : p + lr] = torch.tensor(t.response_ids, dtype=torch.long)
            resp_mask[i, :lr] = torch.tensor(t.loss_mask, dtype=torch.float32)
            rewards[i, :lr] = torch.tensor(t.dense_rewards(), dtype=torch.float32)
            if t.old_logprobs is not None:
                old_lp[i, :lr] = torch.tensor(t.old_logprobs, dtype=torch.float32)
    # Positions count real tokens only, so left padding does not shift the prompt's positions.
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    return {
        "input_ids": input_ids.to(device),
        "attention_mask": attention.to(device),
        "position_ids": position_ids.to(device),
        "response_mask": resp_mask.to(device),
        "response_attention": attention[:, p:].float().to(device),
        "old_logprobs": old_lp.to(device),
        "token_rewards": rewards.to(device),
        "prompt_len": p,
    }


def group_index(trajs: Sequence[Trajectory]) -> torch.Tensor:
    """Map each trajectory's group (`group_key`, else `group_id`) to a dense integer index (first-seen order), as a
    LongTensor [B]."""
    seen: dict[Any, int] = {}
    return torch.tensor([seen.setdefault(t.group, len(seen)) for t in trajs], dtype=torch.long)


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


GROUP_SIGNALS = ("reward", "return")


def group_signal(traj: Trajectory, signal: str = "reward") -> float:
    """What dynamic sampling compares within a group: the final reward, or the return (final + turn + token
    rewards: the score GRPO/RLOO normalise)."""
    if signal == "reward":
        return float(traj.reward)
    if signal == "return":
        return float(sum(traj.dense_rewards()))
    raise ValueError(f"unknown dynamic sampling signal {signal!r}; known: {GROUP_SIGNALS}")


def informative_groups(trajs: Sequence[Trajectory], signal: str = "reward") -> list[list[Trajectory]]:
    """The groups (by `Trajectory.group`, first-seen order) whose signal differs between members: the groups that
    give GRPO/RLOO a learning signal (dynamic sampling keeps only these)."""
    groups: dict[Any, list[Trajectory]] = {}
    for t in trajs:
        groups.setdefault(t.group, []).append(t)

    def value(t: Trajectory) -> float:  # sums of float rewards compare to 9 decimals (0.1 + 0.2 == 0.3)
        return group_signal(t, signal) if signal == "reward" else round(group_signal(t, signal), 9)

    return [g for g in groups.values() if len({value(t) for t in g}) > 1]


def rollout_stats(trajs: Sequence[Trajectory], signal: str = "reward") -> dict[str, float]:
    """Statistics of one step's scored trajectories: mean and sd of the final reward, the share of groups with a
    signal (`groups_informative`) and the mean number of policy tokens."""
    rewards = torch.tensor([float(t.reward) for t in trajs]) if trajs else torch.zeros(1)
    groups = {t.group for t in trajs}
    return {"reward": float(rewards.mean()) if trajs else 0.0,
            "reward_std": float(rewards.std()) if len(trajs) > 1 else 0.0,
            "groups_informative": len(informative_groups(trajs, signal)) / max(1, len(groups)),
            "response_len": sum(t.num_policy_tokens for t in trajs) / max(1, len(trajs))}
