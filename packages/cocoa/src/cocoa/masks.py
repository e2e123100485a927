"""Additive 4-D attention masks for the three CoCoA stages.

Every sequence is laid out as ``[input tokens (text and image) ... <EOS>] [reconstruction copy] [padding]``.
``n_in`` counts the input tokens *including* ``<EOS>``; ``n_copy`` counts the copy tokens (0 outside stage 2).

* causal (plain MLLM, stage 3 without stage 1): each input token sees itself and earlier input tokens;
* bidirectional (stage 1 "collaborative attention", and every later stage once stage 1 was run): each input token
  sees every input token, text and image alike;
* reconstruction (stage 2): a copy token sees ``<EOS>`` and the copy tokens up to itself, never the original input,
  so all content the copy needs must pass through the ``<EOS>`` state.

Masks are additive floats (0 = may attend, dtype minimum = blocked) of shape (batch, 1, L, L): transformers passes a
4-D mask through unchanged, and a boolean 4-D mask is silently misread by eager attention. Padding rows attend to
themselves only so that no softmax row is empty (an empty row would give NaN).
"""

from __future__ import annotations

from typing import Literal

import torch

InputAttention = Literal["causal", "bidirectional"]


def allowed_pairs(
    n_in: torch.Tensor, n_copy: torch.Tensor, length: int, input_attention: InputAttention = "causal"
) -> torch.Tensor:
    """Boolean (batch, L, L) matrix: entry [b, i, j] is True when query i may attend to key j."""
    if input_attention not in ("causal", "bidirectional"):
        raise ValueError(f"input_attention must be 'causal' or 'bidirectional', got {input_attention!r}")
    n_in = torch.as_tensor(n_in, dtype=torch.long).view(-1, 1, 1)
    n_copy = torch.as_tensor(n_copy, dtype=torch.long).view(-1, 1, 1)
    if (n_in < 1).any():
        raise ValueError("every sequence needs at least one input token (its <EOS>)")
    if ((n_in + n_copy) > length).any():
        raise ValueError(f"input plus copy longer than the padded length {length}")
    pos = torch.arange(length)
    qi = pos.view(1, -1, 1)  # query index
    kj = pos.view(1, 1, -1)  # key index
    q_in, k_in = qi < n_in, kj < n_in
    eos = n_in - 1
    q_copy = (qi >= n_in) & (qi < n_in + n_copy)
    k_copy = (kj >= n_in) & (kj < n_in + n_copy)
    if input_attention == "causal":
        input_block = q_in & k_in & (kj <= qi)
    else:
        input_block = q_in & k_in
    copy_block = q_copy & ((kj == eos) | (k_copy & (kj <= qi)))
    padding_self = (qi >= n_in + n_copy) & (kj == qi)
    return input_block | copy_block | padding_self


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Turn a boolean (batch, L, L) matrix into the additive float (batch, 1, L, L) mask attention layers expect."""
    if allowed.dtype != torch.bool or allowed.dim() != 3:
        raise ValueError("allowed must be a boolean tensor of shape (batch, L, L)")
    blocked = torch.finfo(dtype).min
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, blocked)
    return mask.unsqueeze(1)


def attention_mask(
    n_in: torch.Tensor,
    length: int,
    input_attention: InputAttention = "causal",
    n_copy: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The additive 4-D mask for a padded batch; pass ``n_copy`` for the stage-2 reconstruction layout."""
    n_in = torch.as_tensor(n_in, dtype=torch.long)
    if n_copy is None:
        n_copy = torch.zeros_like(n_in)
    return additive_mask(allowed_pairs(n_in, n_copy, length, input_attention), dtype)
