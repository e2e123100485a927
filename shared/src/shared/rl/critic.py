"""Value head for PPO with GAE: a linear map from the policy's last hidden states to one value per token.

The head shares the policy's backbone (one forward gives logits and values), so the critic costs one
hidden_size x 1 layer instead of a second transformer; the value loss, scaled by `CriticConfig.coef`, flows into
the shared backbone as in the original PPO-for-LM setups with a shared trunk (`shared_trunk: false` detaches the
hidden states instead: the head learns on the policy's features and the value loss never moves the policy). The
head has its own optimizer (lr `CriticConfig.lr`) and starts at zero, so initial values are 0 and building it
draws no random numbers (runs without a critic and runs with one see the same RNG stream).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass
class CriticConfig:
    """Value-head settings, used when RLConfig.advantage is "gae" (gamma and lam go in RLConfig.adv_options)."""

    lr: float = 1e-3
    coef: float = 0.5  # weight of the value loss in the total loss
    value_clip: float | None = 0.2  # clip V around its rollout value (PPO2); None = plain squared error
    shared_trunk: bool = True  # False: the head reads detached hidden states, so the value loss leaves the policy alone


class ValueHead(torch.nn.Module):
    """hidden [..., H] -> value [...]; computed in float32 whatever the policy's dtype."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"ValueHead needs hidden_size >= 1, got {hidden_size}")
        # plain zero parameters: nn.Linear would draw an init from the global RNG before being zeroed
        self.weight = torch.nn.Parameter(torch.zeros(hidden_size))
        self.bias = torch.nn.Parameter(torch.zeros(()))

    def forward(self, hidden: Tensor) -> Tensor:
        return hidden.float() @ self.weight + self.bias


def hidden_size_of(model: torch.nn.Module) -> int:
    """The width of the model's last hidden states, read from its HF config."""
    config = getattr(model, "config", None)
    size = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    if not size:
        raise ValueError(f"{type(model).__name__}: config has no hidden_size; cannot attach a value head")
    return int(size)
