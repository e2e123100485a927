"""ARR's advantage: GRPO on each role's outcome score, then the verifier's token-level process reward added unscaled.

For trajectory i in group g (the n rollouts of one question for one role: `Trajectory.group_key`), with outcome score
R_i (F1 plus the adversarial bonus, `traj.reward`) and process rewards r_i,t (`traj.token_rewards`, zero for the
reasoner):
- A_i = (R_i - mean_g) / (std_g + eps) (the core's `grpo_advantages`: unbiased std, a group of one gets 0);
- `form="sum"` (default): adv_i,t = A_i + r_i,t on policy tokens;
- `form="release"`: the verifier's adv_i,t = 2 A_i + r_i,t — the release adds A + r to an advantage that already
  holds A (`ray_trainer.add_token_level_entropy`); the reasoner keeps A_i.
r_i,t enters after the normalisation, so the process term is never averaged away inside a group. There is one place
where it is added (this function), so the release's second application cannot happen here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from shared.rl.advantages import grpo_advantages
from shared.rollout.trajectory import Trajectory

FORMS = ("sum", "release")


def outcome_advantages(scores: Sequence[float], groups: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """A_i of the shared GRPO estimator for per-trajectory scores, [B]."""
    x = torch.tensor([[float(s)] for s in scores], dtype=torch.float64)
    adv, _ = grpo_advantages(x, torch.ones_like(x), groups, eps=eps)
    return adv[:, 0]


def arr_advantage_fn(form: str = "sum", eps: float = 1e-6, doubled_role: str = "verifier"):
    """`advantage_fn` hook for `shared.rl.trainer.RLTrainer`: (trajs, token_rewards, mask, groups) -> [B, R]."""
    if form not in FORMS:
        from shared.config import ConfigError

        raise ConfigError(f"key 'advantage.form': unknown value {form!r}; known: {list(FORMS)}")

    def fn(trajs: list[Trajectory], token_rewards: torch.Tensor, mask: torch.Tensor,
           groups: torch.Tensor) -> torch.Tensor:
        a = outcome_advantages([t.reward for t in trajs], groups, eps).to(mask.dtype)
        out = torch.zeros_like(mask)
        for i, t in enumerate(trajs):
            n = len(t.response_ids)
            scale = 2.0 if form == "release" and t.metadata.get("role") == doubled_role else 1.0
            row = torch.full((n,), float(a[i]) * scale, dtype=mask.dtype)
            if t.token_rewards is not None:
                row = row + torch.tensor(t.token_rewards, dtype=mask.dtype)
            out[i, :n] = row
        return out * mask

    return fn
