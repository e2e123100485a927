"""Golden values for InfoNCE and the stage-1 losses, and GradCache gradients equal to the full batch's."""

import math

import pytest
import torch
from cocoa.losses import (
    cached_contrastive_backward,
    duplicate_positives,
    image_patch_targets,
    info_nce,
    mask_text_tokens,
    masked_lm_loss,
    masked_patch_loss,
    next_token_loss,
)
from torch import nn


def test_info_nce_hand_value():
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # second query is not unit length: the loss normalises
    t = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # cosines: q0 -> (1, 0.6), q1 -> (0, 0.8); tau = 0.5 doubles them.
    loss0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(1.2)))
    loss1 = -math.log(math.exp(1.6) / (math.exp(0.0) + math.exp(1.6)))
    assert info_nce(q, t, temperature=0.5).item() == pytest.approx((loss0 + loss1) / 2, abs=1e-6)


def test_info_nce_hard_negatives_join_every_candidate_set():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    hard = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]])  # (B, k=1, d)
    # q0 candidates: t0 (cos 1), t1 (0), h0 (0), h1 (1); q1 symmetric.
    expected = -math.log(math.e / (math.e + 1 + 1 + math.e))
    assert info_nce(q, t, temperature=1.0, hard_negatives=hard).item() == pytest.approx(expected, abs=1e-6)


def test_info_nce_does_not_push_a_query_away_from_copies_of_its_positive():
    # hand batch, tau = 1: q0 and q2 share the positive "red" (t0 and t2 are equal), q1's positive is t1
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    q = torch.tensor([e1, e2, e1])
    t = torch.tensor([e1, e2, e1])
    keys = ["red", "blue", "red"]
    # q0: candidates t0 (pos, cos 1), t1 (0), t2 = copy of t0 (masked) -> -log(e / (e + 1)); q2 likewise;
    # q1: t0 and t2 are real negatives (cos 0 each) -> -log(e / (e + 2))
    masked = (2 * math.log(1 + 1 / math.e) + math.log(1 + 2 / math.e)) / 3
    assert info_nce(q, t, 1.0, target_keys=keys).item() == pytest.approx(masked, abs=1e-6)
    # without keys the copy counts as a negative as strong as the positive: -log(e / (2e + 1)) for q0 and q2
    unmasked = (2 * -math.log(math.e / (2 * math.e + 1)) + math.log(1 + 2 / math.e)) / 3
    assert info_nce(q, t, 1.0).item() == pytest.approx(unmasked, abs=1e-6)
    # a hard negative equal to a query's positive is masked too: q1's hard negative is "red" (masked for q0, q2)
    hard = torch.tensor([[e2], [e1], [e2]])
    hard_keys = ["blue", "red", "blue"]
    # q0: t0 (1), t1 (0), h0 = "blue" (0), h1 = "red" masked, h2 = "blue" (0) -> -log(e / (e + 3)); q2 the same;
    # q1 (positive "blue"): t0 (0), t2 (0), h1 "red" (0) are negatives, h0 and h2 are copies of "blue" (masked)
    want = (2 * math.log(1 + 3 / math.e) + math.log(1 + 3 / math.e)) / 3
    got = info_nce(q, t, 1.0, hard_negatives=hard, target_keys=keys, negative_keys=hard_keys)
    assert got.item() == pytest.approx(want, abs=1e-6)
    assert duplicate_positives(keys) == 2 and duplicate_positives(keys, hard_keys) == 3
    with pytest.raises(ValueError, match="negative_keys"):
        info_nce(q, t, 1.0, hard_negatives=hard, target_keys=keys)


def test_info_nce_rejects_bad_shapes():
    with pytest.raises(ValueError, match="queries and targets"):
        info_nce(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(torch.ones(2, 3), torch.ones(2, 3), temperature=0.0)


def test_grad_cache_matches_full_batch_gradients():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4))
    queries, targets, hard = torch.randn(8, 5), torch.randn(8, 5), torch.randn(8, 5)

    def loss_fn(q, t, h):
        return info_nce(q, t, 0.1, hard_negatives=h)

    encoder.zero_grad()
    full = loss_fn(encoder(queries), encoder(targets), encoder(hard))
    full.backward()
    expected = [p.grad.clone() for p in encoder.parameters()]

    encoder.zero_grad()
    value = cached_contrastive_backward(
        encoder, queries.split(3), targets.split(3), loss_fn, hard_negative_chunks=hard.split(5)
    )
    assert value == pytest.approx(full.item(), abs=1e-6)
    for got, want in zip([p.grad for p in encoder.parameters()], expected):
        assert torch.allclose(got, want, atol=1e-6)


def test_grad_cache_replays_dropout():
    torch.manual_seed(1)
    encoder = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 4))
    q, t = torch.randn(6, 5), torch.randn(6, 5)

    def loss_fn(a, b):
        return info_nce(a, b, 0.1)

    torch.manual_seed(7)
    encoder.zero_grad()
    cached_contrastive_backward(encoder, q.split(2), t.split(2), loss_fn)
    first = [p.grad.clone() for p in encoder.parameters()]
    torch.manual_seed(7)
    encoder.zero_grad()
    # the no-graph pass draws masks chunk by chunk in this order, so replaying it as one graph must match
    reps_q = torch.cat([encoder(c) for c in q.split(2)])
    reps_t = torch.cat([encoder(c) for c in t.split(2)])
    loss_fn(reps_q, reps_t).backward()
    for got, want in zip(first, [p.grad for p in encoder.parameters()]):
        assert torch.allclose(got, want, atol=1e-6)


def test_mask_text_tokens_respects_maskable_and_labels():
    ids = torch.tensor([[5, 6, 7, 8]])
    maskable = torch.tensor([[True, True, False, True]])
    masked, labels = mask_text_tokens(ids, maskable, prob=1.0, mask_token_id=1)
    assert masked.tolist() == [[1, 1, 7, 1]]
    assert labels.tolist() == [[5, 6, -100, 8]]
    untouched, none = mask_text_tokens(ids, maskable, prob=0.0, mask_token_id=1)
    assert untouched.tolist() == ids.tolist() and (none == -100).all()


def test_masked_and_next_token_losses_hand_values():
    logits = torch.zeros(1, 3, 4)
    logits[0, 1, 2] = math.log(3.0)  # p(2) = 3 / (3 + 3) = 0.5 at position 1
    labels = torch.tensor([[-100, 2, -100]])
    assert masked_lm_loss(logits, labels).item() == pytest.approx(math.log(2.0), abs=1e-6)
    # next-token: position 1's logits predict label at position 2
    shifted = torch.tensor([[-100, -100, 2]])
    assert next_token_loss(logits, shifted).item() == pytest.approx(math.log(2.0), abs=1e-6)
    assert masked_lm_loss(logits, torch.full((1, 3), -100)).item() == 0.0


def test_image_patch_targets_pool_each_patch():
    # one merged token of 2x2 patches, 1 channel, temporal 2, patch 2: pool=1 gives each patch's mean
    patches = torch.stack([torch.full((8,), float(v)) for v in (1, 2, 3, 4)])
    patches[0, :4] = 3.0  # patch 0: time step 0 is 3, time step 1 is 1 -> mean 2
    got = image_patch_targets(patches, merge_size=2, channels=1, temporal_patch=2, patch_size=2, pool=1)
    assert got.tolist() == [[2.0, 2.0, 3.0, 4.0]]
    with pytest.raises(ValueError, match="whole 2x2 tokens"):
        image_patch_targets(patches[:3], merge_size=2, channels=1, temporal_patch=2, patch_size=2)


def test_masked_patch_loss_value():
    pred, target = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
    assert masked_patch_loss(pred, target).item() == pytest.approx((1 + 4) / 2)
    assert masked_patch_loss(torch.zeros(0, 2), torch.zeros(0, 2)).item() == 0.0
