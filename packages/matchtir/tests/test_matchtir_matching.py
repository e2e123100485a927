"""Golden values for the matching reward: S on hand examples, Hungarian vs greedy, Sinkhorn marginals, rewards."""

import math

import numpy as np
import pytest
from matchtir.matching import (
    answer_f1,
    call_rewards,
    call_similarity,
    exact_call_matches,
    greedy_assignment,
    hard_call_rewards,
    hungarian_assignment,
    key_jaccard,
    similarity_matrix,
    sinkhorn,
    soft_call_rewards,
    solve_scores,
)


def call(name, **args):
    return {"name": name, "arguments": args}


def test_similarity_hand_examples():
    gold = {"name": "add", "parameters": {"a": 1, "b": 2}}  # FTRL-style gold entry
    assert call_similarity(call("subtract", a=1, b=2), gold) == 0.0  # name mismatch gates everything
    assert call_similarity(call("ADD", a=1, b=2), gold) == 1.0  # names compare case-insensitively: (1+1+2)/4
    # keys {a, c} vs {a, b}: J = 1 / (2 + 2 - 1) = 1/3; one value matches -> (1 + 1/3 + 1) / 4 = 7/12
    assert call_similarity(call("add", a=1, c=3), gold) == pytest.approx(7 / 12)
    # same keys, one wrong value -> (1 + 1 + 1) / 4
    assert call_similarity(call("add", a=1, b=5), gold) == pytest.approx(0.75)
    # no arguments on either side: J = 1 -> (1 + 1 + 0) / 2; extra argument against none: J = 0 -> 1/2
    assert call_similarity(call("f"), call("f")) == 1.0
    assert call_similarity(call("f", x=1), call("f")) == 0.5
    # numbers compare by value (an int and the same float are equal)
    assert call_similarity(call("add", a=1.0, b=2), gold) == 1.0


def test_key_jaccard_is_multiset():
    assert key_jaccard(["a", "a", "b"], ["a", "b"]) == pytest.approx(2 / 3)
    assert key_jaccard([], []) == 1.0
    assert key_jaccard(["a"], []) == 0.0


def test_hungarian_beats_greedy_on_constructed_calls():
    # p1 is as close to g1 as to g2; greedy takes (p1, g1) first and leaves p2 with the poor g2.
    preds = [call("f", b=1, a=2), call("f", b=1, c=1)]
    golds = [call("f", b=1), call("f", a=2)]
    s = similarity_matrix(preds, golds)
    # S(p1,g1) = (1 + 1/2 + 1)/3, S(p1,g2) = (1 + 1/2 + 1)/3, S(p2,g1) = (1 + 1/2 + 1)/3, S(p2,g2) = (1 + 0 + 0)/3
    assert np.allclose(s, [[5 / 6, 5 / 6], [5 / 6, 1 / 3]])
    assert greedy_assignment(s) == [0, 1]
    assert hungarian_assignment(s) == [1, 0]
    assert sum(hard_call_rewards(s, "greedy")) == pytest.approx(5 / 6 + 1 / 3)
    assert sum(hard_call_rewards(s, "hungarian")) == pytest.approx(5 / 6 + 5 / 6)


def test_hungarian_beats_greedy_on_matrix_and_penalty():
    s = np.array([[0.9, 0.8], [0.7, 0.1], [0.0, 0.0]])
    assert hard_call_rewards(s, "greedy", unmatched_penalty=-0.5) == pytest.approx([0.9, 0.1, -0.5])
    assert hard_call_rewards(s, "hungarian", unmatched_penalty=-0.5) == pytest.approx([0.8, 0.7, -0.5])
    with pytest.raises(ValueError, match="unknown assignment"):
        hard_call_rewards(s, "auction")


def test_unmatched_calls_get_the_penalty():
    golds = [call("add", a=1, b=2)]
    preds = [call("add", a=1, b=2), call("add", a=1, b=2), call("multiply", a=1, b=2)]
    # a repeated correct call finds no second gold call; a wrong tool matches nothing
    assert call_rewards(preds, golds, unmatched_penalty=-0.25) == pytest.approx([1.0, -0.25, -0.25])
    assert call_rewards(preds, [], unmatched_penalty=-0.25) == pytest.approx([-0.25] * 3)
    assert call_rewards([], golds) == []


def test_sinkhorn_marginals_and_golden_plan():
    rng = np.random.default_rng(0)
    s = rng.uniform(size=(3, 2))
    plan = sinkhorn(np.full(3, 1 / 3), np.full(2, 1 / 2), -s, reg=0.1)
    assert np.abs(plan.sum(1) - 1 / 3).max() < 1e-3
    assert np.abs(plan.sum(0) - 1 / 2).max() < 1e-3
    # identity similarities, reg 0.1: by symmetry T = [[x, 1/2 - x], [1/2 - x, x]] with x/(1/2 - x) = e^(1/0.1)
    x = 0.5 * math.exp(10) / (1 + math.exp(10))
    rewards = soft_call_rewards(np.eye(2), reg=0.1)
    assert rewards == pytest.approx([x, x], abs=1e-9)
    with pytest.raises(ValueError, match="reg > 0"):
        sinkhorn(np.ones(1), np.ones(1), np.zeros((1, 1)), reg=0.0)


def test_soft_rewards_on_calls_follow_release_scale():
    golds = [call("add", a=1, b=2), call("multiply", a=3, b=4)]
    preds = [call("add", a=1, b=2), call("multiply", a=3, b=4)]
    r = call_rewards(preds, golds, mode="soft")
    # each row of the plan carries mass 1/P = 1/2, nearly all of it on the exact match (S = 1)
    assert r == pytest.approx([0.5, 0.5], abs=1e-3)
    with pytest.raises(ValueError, match="unknown matching mode"):
        call_rewards(preds, golds, mode="fuzzy")


def test_answer_f1_and_solve_scores():
    assert answer_f1("52000 people", "52000") == pytest.approx(2 / 3)  # P = 1/2, R = 1
    assert answer_f1("Avalon!", "avalon") == 1.0
    assert answer_f1("70,300", "70300") == 0.0  # punctuation splits tokens, as in the release
    assert answer_f1("", "1") == 0.0
    golds = [call("add", a=1, b=2), call("add", a=3, b=4)]
    preds = [call("add", a=1, b=2), call("add", a=1, b=2), call("add", a=3, b=5)]
    assert exact_call_matches(preds, golds) == 1
    assert solve_scores(1, 3, 2) == pytest.approx({"solve_f1": 2 / 5, "solve_rate": 1 / 2, "precision": 1 / 3})
    assert solve_scores(0, 0, 2)["precision"] == 1.0
