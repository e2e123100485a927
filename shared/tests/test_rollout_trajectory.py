"""Trajectory bookkeeping, dense rewards and the padded batch layout, with hand-written expected tensors."""

import pytest
import torch
from shared.rollout.trajectory import Trajectory, TrajectoryError, group_index, pad_trajectories


def _two_turn():
    t = Trajectory(prompt_ids=[5, 6, 7])
    t.append([10, 11], policy=True, logprobs=[-0.1, -0.2])
    t.append([20], policy=False)
    t.append([12, 13, 14], policy=True, logprobs=[-0.3, -0.4, -0.5])
    return t


def test_append_builds_mask_spans_and_logprobs():
    t = _two_turn()
    assert t.response_ids == [10, 11, 20, 12, 13, 14]
    assert t.loss_mask == [1, 1, 0, 1, 1, 1]
    assert t.turn_spans == [(0, 2), (3, 6)]
    assert t.old_logprobs == [-0.1, -0.2, 0.0, -0.3, -0.4, -0.5]
    assert t.num_policy_tokens == 5


def test_dense_rewards_place_turn_and_final_rewards():
    t = _two_turn()
    t.turn_rewards = [0.5, 0.25]
    t.reward = 1.0
    # turn 1 ends at index 1 -> 0.5; turn 2 ends at index 5 -> 0.25 + final 1.0
    assert t.dense_rewards() == [0.0, 0.5, 0.0, 0.0, 0.0, 1.25]
    t.token_rewards = [0.1, 0, 0, 0, 0, 0]
    assert t.dense_rewards()[0] == pytest.approx(0.1)


def test_pad_layout_left_prompt_right_response():
    a = _two_turn()
    a.reward = 2.0
    b = Trajectory(prompt_ids=[8], group_id=1)
    b.append([30], policy=True)
    batch = pad_trajectories([a, b], pad_id=0)
    # P = 3, R = 6: row b is [pad pad 8 | 30 pad pad pad pad pad]
    assert batch["prompt_len"] == 3
    assert batch["input_ids"].tolist() == [[5, 6, 7, 10, 11, 20, 12, 13, 14], [0, 0, 8, 30, 0, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 9, [0, 0, 1, 1, 0, 0, 0, 0, 0]]
    assert batch["position_ids"][1, :4].tolist() == [0, 0, 0, 1]
    assert batch["response_mask"].tolist() == [[1, 1, 0, 1, 1, 1], [1, 0, 0, 0, 0, 0]]
    assert batch["response_attention"].tolist() == [[1] * 6, [1, 0, 0, 0, 0, 0]]
    assert batch["token_rewards"][0].tolist() == [0, 0, 0, 0, 0, 2.0]
    assert torch.allclose(batch["old_logprobs"][0], torch.tensor([-0.1, -0.2, 0.0, -0.3, -0.4, -0.5]))
    assert group_index([a, b, a]).tolist() == [0, 1, 0]


def test_bad_trajectories_are_named():
    t = _two_turn()
    t.loss_mask = t.loss_mask[:-1]
    with pytest.raises(TrajectoryError, match="trajectory 1: loss_mask has 5 entries for 6 response ids"):
        pad_trajectories([_two_turn(), t], pad_id=0)
    with pytest.raises(TrajectoryError, match="empty prompt_ids"):
        pad_trajectories([Trajectory(prompt_ids=[])], pad_id=0)
    with pytest.raises(TrajectoryError, match="empty list"):
        pad_trajectories([], pad_id=0)
    t2 = _two_turn()
    t2.turn_rewards = [1.0]
    with pytest.raises(TrajectoryError, match="1 turn_rewards for 2 turns"):
        t2.validate()
    with pytest.raises(TrajectoryError, match="2 logprobs for 1 token ids"):
        Trajectory(prompt_ids=[1]).append([3], policy=True, logprobs=[0.0, 0.0])
