"""Segment advantages and the length penalty, by hand, on the 4-rollout tree of test_rose_tree."""

import pytest
import torch
from rose.advantages import (
    distinct_answers,
    length_penalty,
    node_values,
    rose_advantage_fn,
    rose_advantages,
    segment_advantages,
)
from rose.tree import RolloutTree
from shared.rollout.trajectory import Trajectory, group_index, pad_trajectories


def hand_tree() -> RolloutTree:
    tree = RolloutTree()
    tree.add_root(list(range(100, 110)))
    tree.add_branch(0, 4, [201, 202, 203, 204])
    tree.add_branch(1, 6, [301, 302, 303, 304, 305, 306])
    tree.add_root([401, 402, 403, 404, 405])
    return tree


REWARDS = [1.0, 0.0, 1.0, 1.0]
# V(0) = 3/4; V(4) over r0, r1, r2 = 2/3; V(6) over r1, r2 = 1/2
SEG = [
    [-1 / 12] * 4 + [1 / 3] * 6,
    [-1 / 12] * 4 + [-1 / 6] * 2 + [-1 / 2] * 2,
    [-1 / 12] * 4 + [-1 / 6] * 2 + [1 / 2] * 6,
    [1 / 4] * 5,
]


def assert_close(a, b, tol=1e-9):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=tol)


def test_values_and_segments_by_hand():
    tree = hand_tree()
    v = node_values(tree, REWARDS)
    assert v[None] == pytest.approx(0.75) and v[1] == pytest.approx(2 / 3) and v[2] == pytest.approx(0.5)
    for got, want in zip(segment_advantages(tree, REWARDS), SEG):
        assert_close(got, want)


def test_length_penalty_against_shortest_correct():
    # correct: r0 (10), r2 (12), r3 (5, shortest); common branch point with r3 is 0 for both
    tree = hand_tree()
    out = length_penalty(tree, REWARDS, SEG, alpha=1.0)
    assert_close(out[0], [-1 / 8] * 4 + [1 / 6] * 6)  # f = 1 - 5/10
    assert_close(out[2], [-19 / 144] * 4 + [-19 / 72] * 2 + [5 / 24] * 6)  # f = 1 - 5/12
    assert_close(out[1], SEG[1])
    assert_close(out[3], SEG[3])
    sq = length_penalty(tree, REWARDS, SEG, alpha=2.0)
    assert_close(sq[0], [-1 / 12 * 1.75] * 4 + [1 / 3 * 0.25] * 6)  # f = 1 - (1/2)^2
    for got, want in zip(length_penalty(tree, REWARDS, SEG, alpha=0.0), SEG):
        assert_close(got, want)


def test_length_penalty_starts_at_the_common_branch_point():
    # r0 and r1 correct; r1 (8) is the shortest; they share the prefix up to 4, so only r0[4:10] is penalised
    tree = hand_tree()
    rewards = [1.0, 1.0, 0.0, 0.0]
    seg = segment_advantages(tree, rewards)  # V(0)=1/2, V(4)=2/3, V(6)=1/2
    assert_close(seg[0], [1 / 6] * 4 + [1 / 3] * 6)
    assert_close(seg[1], [1 / 6] * 4 + [-1 / 6] * 2 + [1 / 2] * 2)
    out = rose_advantages(tree, rewards, alpha=1.0)
    assert_close(out[0], [1 / 6] * 4 + [2 / 9] * 6)  # f = 1 - (8-4)/(10-4) = 1/3
    assert_close(out[1], seg[1])


def test_zero_variance_group_has_no_signal():
    tree = hand_tree()
    for adv in rose_advantages(tree, [1.0] * 4, alpha=1.0):
        assert all(a == 0 for a in adv)


def test_bad_inputs():
    tree = hand_tree()
    with pytest.raises(ValueError, match="4 rollouts"):
        segment_advantages(tree, [1.0])
    with pytest.raises(ValueError, match="alpha"):
        length_penalty(tree, REWARDS, SEG, alpha=-1.0)


def test_distinct_answers():
    assert distinct_answers(["4", "4", None, "5", None]) == 3


def test_trainer_hook_matches_the_tree_computation():
    tree = hand_tree()
    trajs = []
    for i in [2, 0, 3, 1]:  # any row order
        t = Trajectory(prompt_ids=[1, 2], group_id=7, metadata=tree.metadata(i))
        t.append(tree[i].tokens, policy=True)
        t.reward = REWARDS[i]
        trajs.append(t)
    other = Trajectory(prompt_ids=[1], group_id=8)  # a second group of two independent samples
    other.append([5, 6], policy=True)
    other.reward = 1.0
    other2 = Trajectory(prompt_ids=[1], group_id=8, metadata={"rose_node": 1})
    other2.append([5], policy=True)
    trajs += [other, other2]
    for j, t in enumerate(trajs[4:]):
        t.metadata.setdefault("rose_node", j)
    b = pad_trajectories(trajs, pad_id=0)
    adv = rose_advantage_fn(alpha=1.0)(trajs, b["token_rewards"], b["response_mask"], group_index(trajs))
    want = rose_advantages(tree, REWARDS, alpha=1.0)
    for row, i in enumerate([2, 0, 3, 1]):
        assert_close(adv[row, : len(want[i])].tolist(), want[i], tol=1e-6)
        assert torch.all(adv[row, len(want[i]):] == 0)
    assert_close(adv[4, :2].tolist(), [0.5, 0.5], tol=1e-6)  # R - mean = 1 - 1/2
    assert_close(adv[5, :1].tolist(), [-0.5], tol=1e-6)


def test_length_penalty_still_acts_when_kl_is_put_in_the_reward():
    """With rl.kl_in_reward the trainer passes token rewards R_b - beta*KL_t: a correct rollout sums to < 1. The
    segment values use those sums; the length term must still know which rollouts are correct."""
    tree = hand_tree()
    trajs = []
    for i in range(4):
        t = Trajectory(prompt_ids=[1, 2], group_id=7, metadata=tree.metadata(i))
        t.append(tree[i].tokens, policy=True)
        t.reward = REWARDS[i]
        trajs.append(t)
    b = pad_trajectories(trajs, pad_id=0)
    kl = 0.01 * b["response_mask"]  # beta * k1 = 0.01 on every response token
    token_rewards = b["token_rewards"] - kl
    sums = [REWARDS[i] - 0.01 * len(tree[i]) for i in range(4)]  # 0.9, -0.08, 0.88, 0.95
    adv = rose_advantage_fn(alpha=1.0)(trajs, token_rewards, b["response_mask"], group_index(trajs))
    segments = segment_advantages(tree, sums)
    # r0 (10 tokens) and r2 (12) are longer than the shortest correct r3 (5), from branch point 0: f = 1/2, 7/12
    assert_close(adv[0, :10].tolist(), [a - abs(a) * 0.5 for a in segments[0]], tol=1e-6)
    assert_close(adv[2, :12].tolist(), [a - abs(a) * 7 / 12 for a in segments[2]], tol=1e-6)
    assert_close(adv[3, :5].tolist(), segments[3], tol=1e-6)
    assert adv[0, :10].tolist() != pytest.approx(segments[0])  # the penalty did act
