"""Forward passes of the RL trainer over padded trajectory batches (`shared.rollout.trajectory.pad_trajectories`).

- `forward_logprobs`: response-token log-probs [B, R] at the sampling temperature (chunked, `shared.rl.losses`),
  with the logits when asked, and with a value head also the values of the states the tokens are sampled from;
  the lm_head runs on the response positions only when the model takes `logits_to_keep`.
- `critic_values`: a separate critic model's values at the same positions.
- `score_rows`: a no-grad pass over a rollout batch micro-batch by micro-batch, one float32 CPU row per trajectory
  (old-policy and reference log-probs, the critic's V_old).
- `autocast_context`: the bf16 autocast a GPU policy's forwards run under (`shared.rl.health.autocast_dtype`).
Pure functions of modules, batches and settings; `RLTrainer` calls them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from shared.rl.losses import token_logprobs
from shared.rollout.trajectory import Trajectory, pad_trajectories


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast to `dtype` on `device`, or nothing when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def forward_logprobs(model: torch.nn.Module, batch: dict, temperature: float, keeps_logits: bool,
                     autocast: torch.dtype | None = None, need_logits: bool = False,
                     value_head: torch.nn.Module | None = None, detach_hidden: bool = False):
    """Response-token logprobs [B, R]; with need_logits also the logits, with value_head also values [B, R]
    (`detach_hidden`: the value loss trains the head only, never the policy's backbone)."""
    p = batch["prompt_len"]
    r = batch["input_ids"].shape[1] - p
    kwargs = {"logits_to_keep": r + 1} if keeps_logits else {}  # skip the lm_head on prompt positions
    if value_head is not None:
        kwargs["output_hidden_states"] = True
    with autocast_context(batch["input_ids"].device, autocast):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    position_ids=batch["position_ids"], use_cache=False, **kwargs)
    logits = out.logits[:, -(r + 1) : -1]
    lp = token_logprobs(logits, batch["input_ids"][:, p:], temperature)
    if value_head is not None:
        # the value of the state each response token is sampled from: the same positions as its logits
        hidden = out.hidden_states[-1][:, -(r + 1) : -1]
        if detach_hidden:
            hidden = hidden.detach()
        return lp, logits, value_head(hidden)
    return (lp, logits) if need_logits else lp


def critic_values(critic: torch.nn.Module, batch: dict) -> torch.Tensor:
    """A separate critic's values [B, R]: at the positions the response tokens are sampled from."""
    r = batch["input_ids"].shape[1] - batch["prompt_len"]
    values = critic(batch["input_ids"], batch["attention_mask"], batch["position_ids"])
    return values[:, -(r + 1) : -1]


@torch.no_grad()
def score_rows(fn: Callable[[dict], torch.Tensor], trajs: Sequence[Trajectory], pad_id: int,
               device: torch.device | str, micro: int) -> list[torch.Tensor]:
    """`fn(batch) -> [B, R]` over `trajs` in micro-batches of `micro` rows, without a graph; one float32 CPU row
    per trajectory, cut to its response length."""
    rows = []
    for i in range(0, len(trajs), micro):
        part = trajs[i : i + micro]
        out = fn(pad_trajectories(part, pad_id, device))
        rows += [out[j, : len(t.response_ids)].float().cpu() for j, t in enumerate(part)]
    return rows
