"""Golden-value tests for the advantage estimators (hand computations in the comments)."""

import pytest
import torch
from shared.rl.advantages import ADVANTAGES, compute_advantages, masked_whiten


def _outcome_batch():
    # Six rollouts: group 0 scores (1, 0, 0), group 1 scores (2, 0), group 2 a single rollout scoring 5.
    # Each score sits on the row's last policy token; lengths differ to check the broadcast.
    mask = torch.tensor(
        [[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.float32
    )
    rewards = torch.zeros(6, 3)
    rewards[0, 1], rewards[1, 2], rewards[2, 0] = 1.0, 0.0, 0.0
    rewards[3, 2], rewards[4, 1], rewards[5, 0] = 2.0, 0.0, 5.0
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    return rewards, mask, groups


def test_grpo_golden():
    rewards, mask, groups = _outcome_batch()
    adv, ret = compute_advantages("grpo", rewards, mask, groups)
    # group 0: mean 1/3; deviations 2/3, -1/3, -1/3; unbiased var = (4/9+1/9+1/9)/2 = 1/3; std = 0.577350
    #   A = 0.666667/0.577350 = 1.154701, -0.333333/0.577350 = -0.577350
    # group 1: mean 1; var = (1+1)/1 = 2; std = 1.414214; A = +-0.707107
    # group 2: one rollout -> 0
    expected = torch.tensor([1.154701, -0.577350, -0.577350, 0.707107, -0.707107, 0.0])
    assert torch.allclose(adv, expected[:, None] * mask, atol=1e-5)
    assert torch.equal(ret[:, 0], torch.tensor([1.0, 0.0, 0.0, 2.0, 0.0, 5.0]))
    assert torch.all(adv[mask == 0] == 0)


def test_dr_grpo_golden():
    rewards, mask, groups = _outcome_batch()
    adv, _ = compute_advantages("dr_grpo", rewards, mask, groups)
    # no std division: group 0 -> 2/3, -1/3, -1/3; group 1 -> +1, -1; singleton -> 0
    expected = torch.tensor([2 / 3, -1 / 3, -1 / 3, 1.0, -1.0, 0.0])
    assert torch.allclose(adv, expected[:, None] * mask, atol=1e-6)


def test_rloo_golden():
    rewards, mask, groups = _outcome_batch()
    adv, _ = compute_advantages("rloo", rewards, mask, groups)
    # row0: 1 - mean(0, 0) = 1; row1: 0 - mean(1, 0) = -0.5; row2 same; row3: 2 - 0 = 2; row4: 0 - 2 = -2
    expected = torch.tensor([1.0, -0.5, -0.5, 2.0, -2.0, 0.0])
    assert torch.allclose(adv, expected[:, None] * mask, atol=1e-6)


def test_reinforce_pp_golden_with_observation_tokens():
    # row0: mask (1,1,0), rewards (0,1,0). gamma 0.5 -> returns t1 = 1, t0 = 0 + 0.5*1 = 0.5
    # row1: mask (1,0,1), rewards (0, 0.6 on the observation token, 2). The 0.6 moves to the policy token before
    #   it -> (0.6, 0, 2); returns t2 = 2; t1 is skipped (running stays 2); t0 = 0.6 + 0.5*2 = 1.6
    # whiten over the 4 policy tokens (0.5, 1, 1.6, 2): mean 1.275, unbiased var 1.3075/3 = 0.435833,
    #   std 0.660177 -> (-1.173931, -0.416556, 0.492292, 1.098195)
    mask = torch.tensor([[1, 1, 0], [1, 0, 1]], dtype=torch.float32)
    rewards = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.6, 2.0]])
    adv, ret = compute_advantages("reinforce_pp", rewards, mask, gamma=0.5)
    assert torch.allclose(ret, torch.tensor([[0.5, 1.0, 0.0], [1.6, 0.0, 2.0]]), atol=1e-6)
    expected = torch.tensor([[-1.173931, -0.416556, 0.0], [0.492292, 0.0, 1.098195]])
    assert torch.allclose(adv, expected, atol=1e-5)


def test_reinforce_pp_baseline_subtracts_group_mean():
    # two rollouts of one prompt scoring 3 and 1 (one token each): baseline 2 -> returns (1, -1);
    # whitened: mean 0, unbiased var (1+1)/1 = 2 -> (0.707107, -0.707107)
    mask = torch.ones(2, 1)
    rewards = torch.tensor([[3.0], [1.0]])
    adv, ret = compute_advantages("reinforce_pp_baseline", rewards, mask, torch.tensor([7, 7]))
    assert torch.allclose(ret, torch.tensor([[1.0], [-1.0]]))
    assert torch.allclose(adv, torch.tensor([[0.707107], [-0.707107]]), atol=1e-5)


def test_gae_golden_skips_observation_tokens():
    # mask (1, 0, 1), rewards (0, 0, 1), values (0.5, 9 [ignored: observation], 0.8), gamma 0.9, lam 0.8
    # t2: delta = 1 + 0.9*0 - 0.8 = 0.2 -> A2 = 0.2
    # t1: observation, skipped
    # t0: delta = 0 + 0.9*0.8 - 0.5 = 0.22 -> A0 = 0.22 + 0.9*0.8*0.2 = 0.364
    # returns = A + V = (0.864, 0, 1.0)
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 9.0, 0.8]])
    adv, ret = compute_advantages("gae", rewards, mask, values=values, gamma=0.9, lam=0.8, whiten=False)
    assert torch.allclose(adv, torch.tensor([[0.364, 0.0, 0.2]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.864, 0.0, 1.0]]), atol=1e-6)


def test_masked_whiten_golden():
    # values (1, 3) unmasked, 100 masked out: mean 2, unbiased var 2 -> (-0.707107, 0.707107, 0)
    x = torch.tensor([[1.0, 3.0, 100.0]])
    m = torch.tensor([[1.0, 1.0, 0.0]])
    assert torch.allclose(masked_whiten(x, m), torch.tensor([[-0.707107, 0.707107, 0.0]]), atol=1e-5)


def test_registry_and_bad_input():
    assert {"grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "gae"} <= set(ADVANTAGES)
    with pytest.raises(KeyError, match="unknown advantage estimator 'ppo2'"):
        compute_advantages("ppo2", torch.zeros(1, 1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="needs values"):
        compute_advantages("gae", torch.zeros(1, 1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="needs group_ids"):
        compute_advantages("grpo", torch.zeros(1, 1), torch.ones(1, 1))
    with pytest.raises(ValueError, match="must be equal"):
        compute_advantages("rloo", torch.zeros(2, 3), torch.ones(2, 2), torch.tensor([0, 0]))
