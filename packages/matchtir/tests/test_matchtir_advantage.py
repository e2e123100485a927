"""Golden values for the dual-level advantage on a hand-made group of 3 rollouts with 3, 2 and 1 turns, and for
turn rewards placed on each turn's last token."""

import math

import pytest
import torch
from matchtir.advantage import (
    discounted_returns,
    dual_advantage_fn,
    mix_advantages,
    trajectory_advantages,
    turn_advantages,
)
from matchtir.rewards import ParsedTurn, parse_turn, score_turns
from shared.rollout.trajectory import Trajectory, pad_trajectories

REWARDS = [[1.0, 0.0, 1.0], [0.5, 0.5], [0.0]]
GROUP = [7, 7, 7]


def test_discounted_returns():
    assert discounted_returns([1.0, 0.0, 1.0], 0.5) == pytest.approx([1.25, 0.5, 1.0])
    assert discounted_returns([0.5, 0.5], 0.9) == pytest.approx([0.5 + 0.9 * 0.5, 0.5])


def test_turn_level_normalised_per_turn_index():
    adv = turn_advantages(REWARDS, GROUP, gamma=0.5)
    # turn 0 returns: 1.25, 0.75, 0.0 -> mean 2/3, unbiased std sqrt(0.791667 / 2)
    mean = 2 / 3
    std = math.sqrt(((1.25 - mean) ** 2 + (0.75 - mean) ** 2 + mean**2) / 2)
    assert adv[0][0] == pytest.approx((1.25 - mean) / (std + 1e-6), abs=1e-6)
    assert adv[1][0] == pytest.approx((0.75 - mean) / (std + 1e-6), abs=1e-6)
    assert adv[2][0] == pytest.approx((0.0 - mean) / (std + 1e-6), abs=1e-6)
    assert adv[0][0] == pytest.approx(0.927172, abs=1e-5)
    # turn 1: two equal returns 0.5 -> 0; turn 2 reached by one rollout: mean 0, std 1 -> G itself
    assert adv[0][1] == pytest.approx(0.0) and adv[1][1] == pytest.approx(0.0)
    assert adv[0][2] == pytest.approx(1.0 / (1.0 + 1e-6))
    # another group is normalised on its own
    other = turn_advantages(REWARDS + [[3.0]], GROUP + [8], gamma=0.5)
    assert other[3] == pytest.approx([3.0 / (1 + 1e-6)])
    assert other[0] == pytest.approx(adv[0])


def test_trajectory_level_and_mix():
    traj = trajectory_advantages(REWARDS, GROUP)
    assert traj == pytest.approx([1.0, 0.0, -1.0], abs=1e-5)  # R = 2, 1, 0: mean 1, unbiased std 1
    turn = turn_advantages(REWARDS, GROUP, gamma=0.5)
    dual = mix_advantages(traj, turn, "dual", 0.5)
    assert dual[0] == pytest.approx([(1 + 0.927172) / 2, 0.5, 1.0], abs=1e-5)
    assert dual[1] == pytest.approx([(0 + 0.132453) / 2, 0.0], abs=1e-5)
    assert dual[2] == pytest.approx([(-1 - 1.059625) / 2], abs=1e-5)
    flat = [a for row in mix_advantages(traj, turn, "trajectory") for a in row]
    assert flat == pytest.approx([1, 1, 1, 0, 0, -1], abs=1e-5)
    assert mix_advantages(traj, turn, "turn")[2] == pytest.approx(turn[2])
    with pytest.raises(ValueError, match="unknown advantage mode"):
        mix_advantages(traj, turn, "both")


def _traj(turn_lens, obs_len, rewards):
    t = Trajectory(prompt_ids=[1, 2])
    for i, n in enumerate(turn_lens):
        t.append([5] * n, policy=True)
        if i < len(turn_lens) - 1:
            t.append([6] * obs_len, policy=False)
    t.turn_rewards = list(rewards)
    return t


def test_advantage_hook_reads_rewards_from_turn_ends_and_broadcasts():
    trajs = [_traj([2, 3, 1], 2, REWARDS[0]), _traj([1, 2], 3, REWARDS[1]), _traj([4], 0, REWARDS[2])]
    for t in trajs:
        t.group_id = 7
    batch = pad_trajectories(trajs, pad_id=0)
    # rewards sit on each turn's last token
    assert batch["token_rewards"][0].tolist()[:10] == [0, 1.0, 0, 0, 0, 0, 0.0, 0, 0, 1.0]
    fn = dual_advantage_fn("dual", 0.5, gamma=0.5)
    adv = fn(trajs, batch["token_rewards"], batch["response_mask"], torch.tensor([0, 0, 0]))
    expect0 = [(1 + 0.927172) / 2] * 2 + [0] * 2 + [0.5] * 3 + [0] * 2 + [1.0]
    assert adv[0, :10].tolist() == pytest.approx(expect0, abs=1e-5)  # observation tokens get 0
    assert adv[2, :4].tolist() == pytest.approx([(-1 - 1.059625) / 2] * 4, abs=1e-5)
    assert float(adv[2, 4:].abs().sum()) == 0.0  # padding


def test_turn_rewards_from_parsed_turns():
    gold = [{"name": "f", "parameters": {"b": 1}}, {"name": "f", "parameters": {"a": 2}}]
    turns = [
        parse_turn('<tool_call>{"name": "f", "arguments": {"b": 1, "a": 2}}</tool_call>'),
        parse_turn('<tool_call>{"name": "f", "arguments": {"b": 1, "c": 1}}</tool_call><tool_call>{oops}</tool_call>'),
        parse_turn("thinking without a call"),
        parse_turn("<answer>52000 people</answer>"),
    ]
    assert turns[1].malformed == 1 and len(turns[1].calls) == 1
    assert turns[3].answer == "52000 people"
    hard = score_turns(turns, gold, "52000", unmatched_penalty=-0.5)
    # Hungarian: call 1 -> g2 (5/6), call 2 -> g1 (5/6); turn 1 averages 5/6 and the malformed block's -0.5
    assert hard == pytest.approx([5 / 6, (5 / 6 - 0.5) / 2, 0.0, 2 / 3])
    greedy = score_turns(turns, gold, "52000", assignment="greedy")
    assert greedy == pytest.approx([5 / 6, (1 / 3 + 0.0) / 2, 0.0, 2 / 3])
    soft = score_turns(turns, gold, "52000", mode="soft")
    # soft: the 2 parsed calls x 2 gold calls, S = [[5/6, 5/6], [5/6, 1/3]], marginals 1/2. The entropic plan of a
    # 2 x 2 with equal marginals is [[x, 1/2 - x], [1/2 - x, x]] with x / (1/2 - x) = exp((S11 + S22 - S12 - S21)
    # / (2 reg)) = exp(-2.5); call rewards are sum_j T_ij S_ij (not rescaled by P)
    x = math.exp(-2.5) / (2 * (1 + math.exp(-2.5)))
    call2 = (0.5 - x) * 5 / 6 + x / 3
    assert soft[0] == pytest.approx(5 / 12, abs=1e-6)  # T_11 + T_12 = 1/2, both at S = 5/6
    assert soft[1] == pytest.approx(call2 / 2, abs=1e-6)  # the malformed block counts in the turn's mean (0)
    assert soft[2:] == pytest.approx([0.0, 2 / 3])
    assert score_turns([ParsedTurn(text="")], gold, "x") == [0.0]
