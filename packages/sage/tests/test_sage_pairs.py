"""Pair construction never pairs two of a kind; pass rates and the frontier pool refresh on hand-made samples."""

import random

import pytest
from sage.pairs import FrontierEmptyError, Problem, build_pairs, frontier, pass_rate, refresh_pool


def _problem(i: int) -> Problem:
    return Problem(problem_id=f"q{i}", prompt=f"Q: {i}+1=?\nA: ", answer=str(i + 1))


def test_pass_rate_golden():
    assert pass_rate([1, 0, 0, 1, 1, 0, 0, 0]) == 3 / 8
    assert pass_rate([0.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="no samples"):
        pass_rate([])


def test_pairs_are_correct_vs_incorrect_and_deduplicated():
    p = _problem(1)
    texts = ["a", "b", "a", "c", "d"]
    rewards = [1, 0, 1, 0, 1]  # correct {a, d}, incorrect {b, c}: 2 x 2 = 4 pairs ("a" counted once)
    pairs = build_pairs(p, texts, rewards, max_pairs=10, rng=random.Random(0))
    assert sorted((x.chosen, x.rejected) for x in pairs) == [("a", "b"), ("a", "c"), ("d", "b"), ("d", "c")]
    assert len({x.pair_id for x in pairs}) == 4
    capped = build_pairs(p, texts, rewards, max_pairs=3, rng=random.Random(0))
    assert len(capped) == 3 and {x.pair_id for x in capped} <= {x.pair_id for x in pairs}


def test_never_two_correct_or_two_incorrect_on_random_samples():
    rng = random.Random(7)
    for trial in range(200):
        k = rng.randint(1, 8)
        texts = [rng.choice("abcdefgh") for _ in range(k)]
        truth = {t: rng.random() < 0.5 for t in "abcdefgh"}  # a deterministic verifier per text
        rewards = [1.0 if truth[t] else 0.0 for t in texts]
        for pair in build_pairs(_problem(trial), texts, rewards, max_pairs=64, rng=rng):
            assert truth[pair.chosen] and not truth[pair.rejected]
        if len(set(rewards)) < 2:
            assert build_pairs(_problem(trial), texts, rewards, max_pairs=64, rng=rng) == []


def test_build_pairs_bad_input():
    with pytest.raises(ValueError, match="q3 has 2 completions but 1 rewards"):
        build_pairs(_problem(3), ["a", "b"], [1.0], 4, random.Random(0))
    with pytest.raises(ValueError, match="max_pairs"):
        build_pairs(_problem(3), ["a", "b"], [1.0, 0.0], 0, random.Random(0))


def test_refresh_keeps_exactly_the_frontier():
    problems = [_problem(i) for i in range(4)]
    samples = [["x", "y"], ["r", "w"], ["r", "r"], ["r", "w1", "w2", "w3"]]
    rewards = [[0, 0], [1, 0], [1, 1], [1, 0, 0, 0]]  # pass rates 0, 0.5, 1, 0.25
    pairs, rates, summary = refresh_pool(problems, samples, rewards, 8, random.Random(0), step=40)
    assert rates == {"q0": 0.0, "q1": 0.5, "q2": 1.0, "q3": 0.25}
    assert frontier(rates) == ["q1", "q3"]
    assert {p.problem_id for p in pairs} == {"q1", "q3"}
    assert len(pairs) == 1 + 3  # q1: r x w; q3: r x {w1, w2, w3}
    assert summary.as_dict() == {
        "step": 40, "n_probed": 4, "n_frontier": 2, "n_solved": 1, "n_unsolved": 1, "n_pairs": 4,
        "mean_pass_rate": pytest.approx(0.4375),  # (0 + 0.5 + 1 + 0.25) / 4
    }


def test_refresh_with_no_frontier_problem_says_why():
    problems = [_problem(i) for i in range(3)]
    with pytest.raises(FrontierEmptyError, match="2 of 3 probed problems are always solved and 1 never solved"):
        refresh_pool(problems, [["a"], ["a"], ["b"]], [[1], [1], [0]], 4, random.Random(0), step=5)
