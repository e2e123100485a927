"""Critics for PPO with GAE: a value head on the policy's trunk (`kind: head`) or a separate critic LM (`kind: model`).

`kind: head` (default): a linear map from the policy's last hidden states to one value per token. The head shares the policy's backbone (one forward gives logits and values), so the critic costs one
hidden_size x 1 layer instead of a second transformer; the value loss, scaled by `CriticConfig.coef`, flows into
the shared backbone as in the original PPO-for-LM setups with a shared trunk (`shared_trunk: false` detaches the
hidden states instead: the head learns on the policy's features and the value loss never moves the policy). The
head has its own optimizer (lr `CriticConfig.lr`) and starts at zero, so initial values are 0 and building it
draws no random numbers (runs without a critic and runs with one see the same RNG stream).

`kind: model` (verl / Search-R1 / M-ASK PPO): a separate transformer trunk (the base model of a causal LM, loaded
from `model_path`, or a copy of the policy when empty) with its own zero-initialised value head, its own forward
pass and its own optimizer at `lr`; the value loss never touches the policy. `warmup_steps` (both kinds): for the
first steps of a run only the critic learns; the policy, its optimizer and its lr schedule stay as they were
(verl's `critic_warmup`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass
class CriticConfig:
    """Value-head settings, used when RLConfig.advantage is "gae" (gamma and lam go in RLConfig.adv_options)."""

    kind: str = "head"  # head: a value head on the policy's trunk | model: a separate critic LM
    model_path: str = ""  # kind "model": a causal-LM folder for the critic's trunk; "" = a copy of the policy
    lr: float = 1e-3
    coef: float = 0.5  # weight of the value loss in the total loss
    value_clip: float | None = 0.2  # clip V around its rollout value (PPO2); None = plain squared error
    shared_trunk: bool = True  # False: the head reads detached hidden states, so the value loss leaves the policy alone
    warmup_steps: int = 0  # trainer steps at the start during which only the critic learns

    def validate(self) -> None:
        if self.kind not in CRITIC_KINDS:
            raise ValueError(f"critic.kind must be one of {CRITIC_KINDS}, got {self.kind!r}")
        if self.lr <= 0 or self.coef <= 0:
            raise ValueError(f"advantage 'gae' needs critic.lr > 0 and critic.coef > 0, got {self}")
        if self.warmup_steps < 0:
            raise ValueError(f"critic.warmup_steps must be >= 0, got {self.warmup_steps}")


CRITIC_KINDS = ("head", "model")


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


class CriticModel(torch.nn.Module):
    """A separate critic: a transformer trunk (no LM head) and a value head on its last hidden states."""

    def __init__(self, trunk: torch.nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = ValueHead(hidden_size_of(trunk))

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor) -> Tensor:
        """Values [B, T], one per position (the value of the state after reading that position's token)."""
        out = self.trunk(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False)
        return self.head(out.last_hidden_state)


def build_critic_model(cfg: CriticConfig, policy: torch.nn.Module) -> CriticModel:
    """The `kind: model` critic: the trunk of the causal LM at `cfg.model_path`, or of a copy of the policy."""
    if cfg.model_path:
        from shared.modeling import load_model

        lm, _ = load_model(cfg.model_path, kind="causal", device=str(next(policy.parameters()).device))
    else:
        from shared.modeling import clone_model

        lm = clone_model(policy)
    prefix = getattr(lm, "base_model_prefix", "")
    trunk = getattr(lm, prefix, None) if prefix else None
    if not isinstance(trunk, torch.nn.Module):
        raise ValueError(f"critic.kind 'model': {type(lm).__name__} has no base model to use as the critic's trunk")
    vocab, own = (getattr(getattr(m, "config", None), "vocab_size", None) for m in (policy, lm))
    if vocab is not None and own is not None and own < vocab:
        raise ValueError(f"critic.model_path {cfg.model_path!r}: vocabulary of {own} tokens, the policy's has {vocab}; "
                         f"the critic reads the policy's token ids")
    return CriticModel(trunk).train()
