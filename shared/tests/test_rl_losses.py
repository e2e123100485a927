"""Golden-value tests for the policy, KL, entropy, value and DPO losses (hand computations in comments)."""

import math

import pytest
import torch
from shared.rl.losses import aggregate, dpo_loss, entropy_from_logits, kl_penalty, policy_loss, value_loss


def test_aggregation_modes_golden():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(loss, mask, "token-mean").item() == pytest.approx(2.5)  # (1+2+3+4)/4
    assert aggregate(loss, mask, "seq-mean-token-mean").item() == pytest.approx(3.0)  # (2 + 4)/2
    assert aggregate(loss, mask, "seq-mean-token-sum-norm").item() == pytest.approx(10 / 6)  # 10/(2 seqs*3)
    # a global denominator (e.g. tokens over all processes) replaces the local count: 10/8
    assert aggregate(loss, mask, "token-mean", num_tokens=8).item() == pytest.approx(1.25)
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate(loss, mask, "sum")


def test_clipped_policy_loss_asymmetric_golden():
    # ratios (1.5, 0.5, 1.1, 0.7), advantages (1, 1, -1, -1), last token masked; clip [1-0.2, 1+0.28]
    # t0: -1.5 vs -1.28 -> -1.28 (clipped chosen); t1: -0.5 vs -0.8 -> -0.5; t2: 1.1 vs 1.1 -> 1.1
    # token-mean = (-1.28 - 0.5 + 1.1)/3 = -0.226667; clip fraction 1/3
    ratios = torch.tensor([[1.5, 0.5, 1.1, 0.7]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = policy_loss(ratios.log(), torch.zeros_like(ratios), adv, mask, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx(-0.226667, abs=1e-5)
    assert stats["clip_frac"] == pytest.approx(1 / 3)
    # symmetric clip 0.2: t0 becomes -1.2 -> (-1.2 - 0.5 + 1.1)/3 = -0.2
    loss_sym, _ = policy_loss(ratios.log(), torch.zeros_like(ratios), adv, mask, clip_low=0.2)
    assert loss_sym.item() == pytest.approx(-0.2, abs=1e-5)


def test_policy_loss_gradient_is_advantage_weighted_at_ratio_one():
    # at ratio 1 the gradient wrt logprob is -A / num_tokens: (-2/2, 1/2)
    lp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = policy_loss(lp, torch.zeros(1, 2), torch.tensor([[2.0, -1.0]]), torch.ones(1, 2))
    loss.backward()
    assert torch.allclose(lp.grad, torch.tensor([[-1.0, 0.5]]))


def test_dual_clip_golden():
    # ratio 3, A = -1: PPO term max(3, 1.2) = 3, dual clip 2 bounds it to min(3, 2) = 2
    r = torch.tensor([[3.0]])
    loss, _ = policy_loss(r.log(), torch.zeros(1, 1), -torch.ones(1, 1), torch.ones(1, 1), dual_clip=2.0)
    assert loss.item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="dual_clip"):
        policy_loss(r.log(), torch.zeros(1, 1), -torch.ones(1, 1), torch.ones(1, 1), dual_clip=0.5)


def test_kl_estimators_golden():
    lp, ref = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    # diff = log 2 = 0.693147; k1 = 0.693147; k2 = 0.5*0.480453 = 0.240227; k3 = e^-0.693147 + 0.693147 - 1
    assert kl_penalty(lp, ref, "k1").item() == pytest.approx(0.693147, abs=1e-6)
    assert kl_penalty(lp, ref, "k2").item() == pytest.approx(0.240227, abs=1e-6)
    assert kl_penalty(lp, ref, "k3").item() == pytest.approx(0.193147, abs=1e-6)
    # reversed: diff = -0.693147; k3 = 2 - 0.693147 - 1 = 0.306853 (never negative, unlike k1)
    assert kl_penalty(ref, lp, "k3").item() == pytest.approx(0.306853, abs=1e-6)
    assert kl_penalty(ref, lp, "k1").item() == pytest.approx(-0.693147, abs=1e-6)
    with pytest.raises(ValueError, match="unknown KL estimator"):
        kl_penalty(lp, ref, "k4")


def test_entropy_golden():
    # uniform over 2 -> ln 2; probs (0.25, 0.75) -> 0.25 ln 4 + 0.75 ln(4/3) = 0.346574 + 0.215762
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    assert torch.allclose(entropy_from_logits(logits), torch.tensor([0.693147, 0.562335]), atol=1e-6)


def test_value_loss_golden():
    # t0: (1-0)^2 = 1 vs clipped V 0.5+0.2 = 0.7 -> 0.49; max 1. t1: 0.25 vs 0.25. 0.5 * mean(1, 0.25) = 0.3125
    v = torch.tensor([[1.0, 2.0]])
    out = value_loss(v, torch.tensor([[0.5, 2.0]]), torch.tensor([[0.0, 2.5]]), torch.ones(1, 2), clip=0.2)
    assert out.item() == pytest.approx(0.3125)


def test_dpo_and_ipo_golden():
    pc, pr, rc, rr = (torch.tensor([x]) for x in (-1.0, -3.0, -2.0, -2.0))
    # h = (-1+2) - (-3+2) = 2; beta 0.5 -> -log sigmoid(1) = 0.313262
    loss, stats = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert loss.item() == pytest.approx(0.313262, abs=1e-6)
    assert stats["reward_accuracy"] == 1.0 and stats["reward_margin"] == pytest.approx(1.0)
    # label smoothing 0.1: 0.9*0.313262 + 0.1*(-log sigmoid(-1) = 1.313262) = 0.413262
    loss_ls, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=0.1)
    assert loss_ls.item() == pytest.approx(0.413262, abs=1e-6)
    # IPO: (2 - 1/(2*0.5))^2 = 1
    loss_ipo, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, kind="ipo")
    assert loss_ipo.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown DPO loss"):
        dpo_loss(pc, pr, rc, rr, kind="kto")
