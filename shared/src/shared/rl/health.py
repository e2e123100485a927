"""Checks that an RL step trains what it thinks it trains: the policy's precision and the rollout-vs-trainer gap.

- `check_policy_dtype`: a float16 policy (the trainer has no loss scaler) or bf16 weights on a GPU without bf16 are
  refused before any step.
- `autocast_dtype`: bf16 when the policy's forwards should run under autocast (CUDA, float32 weights, autocast on,
  no mixed precision from accelerate already).
- `logprob_gap` / `GapStats` / `gap_report`: |log p_rollout - log p_trainer| over policy tokens, summed per update
  and reported as `logprob_gap_mean` / `logprob_gap_max`, with a warning above a threshold: a gap well above 0 means
  the rollouts were not sampled from the weights being trained (weight sync, dtype, temperature, chat template).
Pure functions of tensors and settings; `RLTrainer` calls them.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import torch

from shared.rollout.trajectory import Trajectory


def check_policy_dtype(dtype: torch.dtype, device: torch.device) -> None:
    """A float16 policy (no loss scaler here) or bf16 weights on a GPU without bf16 cannot train correctly."""
    if dtype == torch.float16:
        raise ValueError("the policy's weights are float16: the trainer has no loss scaler, so float16 gradients "
                         "underflow; load it in bfloat16 (or float32 with rl.autocast on CUDA)")
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("the policy's weights are bfloat16 but this GPU has no bfloat16 support; load it in "
                         "float32")


def autocast_dtype(enabled: bool, device: torch.device, mixed_precision: str, dtype: torch.dtype) -> torch.dtype | None:
    """bf16 when forwards should run under autocast: `enabled`, CUDA, float32 weights `dtype`, and no mixed
    precision from accelerate already (an `accelerate launch` config with mixed_precision: bf16)."""
    if not enabled or device.type != "cuda" or mixed_precision != "no" or dtype != torch.float32:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else None


@dataclasses.dataclass
class GapStats:
    """Running sum, max and count of |log p_rollout - log p_trainer| over one update's policy tokens."""

    total: float = 0.0
    peak: float = 0.0
    count: float = 0.0

    def add(self, part: tuple[float, float, float]) -> None:
        self.total += part[0]
        self.peak = max(self.peak, part[1])
        self.count += part[2]


def logprob_gap(trainer_lp: torch.Tensor | Sequence[torch.Tensor], trajs: Sequence[Trajectory]) -> tuple[float, float, float]:
    """(sum, max, count) of |log p_rollout - log p_trainer| over the policy tokens of trajectories that carry
    sampling logprobs. A trajectory whose policy logprobs are all exactly 0 is skipped: that is what the rollout
    driver writes for a backend that returned none."""
    total, peak, count = 0.0, 0.0, 0.0
    for i, t in enumerate(trajs):
        if t.old_logprobs is None or not t.response_ids:
            continue
        policy = torch.tensor(t.loss_mask, dtype=torch.bool)
        rollout = torch.tensor(t.old_logprobs, dtype=torch.float32)
        if not policy.any() or not rollout[policy].any():
            continue
        row = trainer_lp[i][: len(t.response_ids)].float()  # on the CPU already
        diff = (rollout - row).abs()[policy]
        total, peak, count = total + float(diff.sum()), max(peak, float(diff.max())), count + float(len(diff))
    return total, peak, count


def gap_report(total: float, peak: float, count: float, warn_above: float, step: int, warn: bool = True) -> dict[str, float]:
    """`logprob_gap_mean` / `logprob_gap_max` of a step's (already gathered) sums; warns when the mean exceeds
    `warn_above` (> 0) and `warn` is set (the main process). Nothing when no token carried logprobs."""
    if count == 0:
        return {}
    mean = total / count
    if warn and warn_above > 0 and mean > warn_above:
        warnings.warn(f"step {step}: rollout-vs-trainer log-prob gap mean {mean:.4g} (max {peak:.4g}) "
                      f"exceeds rl.logprob_gap_warn={warn_above}: the rollouts were not sampled from the weights being "
                      "trained (check the weight sync, dtypes, sampling temperature and chat template)",
                      RuntimeWarning, stacklevel=4)
    return {"logprob_gap_mean": mean, "logprob_gap_max": peak}
