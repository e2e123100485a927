"""The stage masks are exactly the intended ones, checked element-wise on a 6-token example."""

import pytest
import torch
from cocoa.masks import additive_mask, allowed_pairs, attention_mask

# 3 input tokens, <EOS> at index 3, a 2-token reconstruction copy at 4 and 5.
STAGE2_CAUSAL = [
    [1, 0, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0],
    [1, 1, 1, 0, 0, 0],
    [1, 1, 1, 1, 0, 0],  # <EOS> sees the whole input
    [0, 0, 0, 1, 1, 0],  # copy token 1: <EOS> and itself only
    [0, 0, 0, 1, 1, 1],  # copy token 2: <EOS>, copy 1 and itself
]
STAGE2_BIDIRECTIONAL = [
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [0, 0, 0, 1, 1, 0],
    [0, 0, 0, 1, 1, 1],
]
# Stage 1 / pooling: 4 input tokens (last is <EOS>) then 2 padding tokens.
PADDED_BIDIRECTIONAL = [
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 1, 0, 0],
    [0, 0, 0, 0, 1, 0],  # padding rows attend to themselves only (no empty softmax row)
    [0, 0, 0, 0, 0, 1],
]


def test_stage2_mask_causal_input():
    got = allowed_pairs(torch.tensor([4]), torch.tensor([2]), 6, "causal")[0]
    assert got.int().tolist() == STAGE2_CAUSAL


def test_stage2_mask_bidirectional_input():
    got = allowed_pairs(torch.tensor([4]), torch.tensor([2]), 6, "bidirectional")[0]
    assert got.int().tolist() == STAGE2_BIDIRECTIONAL


def test_stage1_mask_all_pairs_and_padding():
    full = allowed_pairs(torch.tensor([6]), torch.tensor([0]), 6, "bidirectional")[0]
    assert full.all()
    padded = allowed_pairs(torch.tensor([4]), torch.tensor([0]), 6, "bidirectional")[0]
    assert padded.int().tolist() == PADDED_BIDIRECTIONAL


def test_additive_float_values_and_shape():
    mask = attention_mask(torch.tensor([4, 6]), 6, "causal", n_copy=torch.tensor([2, 0]))
    assert mask.shape == (2, 1, 6, 6) and mask.dtype == torch.float32
    lowest = torch.finfo(torch.float32).min
    expected = torch.tensor(STAGE2_CAUSAL, dtype=torch.bool)
    assert torch.equal(mask[0, 0] == 0, expected)
    assert torch.equal(mask[0, 0] == lowest, ~expected)
    assert torch.equal(mask[1, 0] == 0, torch.ones(6, 6).tril().bool())


def test_bad_mask_arguments():
    with pytest.raises(ValueError, match="longer than the padded length"):
        allowed_pairs(torch.tensor([5]), torch.tensor([2]), 6)
    with pytest.raises(ValueError, match="input_attention"):
        allowed_pairs(torch.tensor([4]), torch.tensor([0]), 6, "sideways")
    with pytest.raises(ValueError, match="boolean"):
        additive_mask(torch.zeros(1, 3, 3))
