"""MixtureStream: exact counts per period (smooth weighted round robin, worked by hand) and exact resume."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from shared.rl.mixture import MixtureStream, integer_weights


def test_integer_weights():
    assert integer_weights({"a": 0.7, "b": 0.3}) == {"a": 7, "b": 3}
    assert integer_weights({"a": 5, "b": 3, "c": 2}) == {"a": 5, "b": 3, "c": 2}
    assert integer_weights({"a": 10, "b": 20}) == {"a": 1, "b": 2}
    assert integer_weights({"a": 0.5, "b": 1 / 3}) == {"a": 3, "b": 2}
    with pytest.raises(ValueError, match="ratio of 'general' must be a number > 0"):
        integer_weights({"domain": 7, "general": 0})


def test_seven_three_sequence_by_hand():
    # credits (A, B) after adding 7, 3 and before taking 10 from the winner:
    # (7,3)A (4,6)B (11,-1)A (8,2)A (5,5)A-tie (2,8)B (9,1)A (6,4)A (3,7)B (10,0)A
    stream = MixtureStream({"A": 40, "B": 40}, {"A": 7, "B": 3})
    assert "".join(stream.next_source() for _ in range(10)) == "ABAAABAABA"
    assert stream.credit == {"A": 0, "B": 0}  # back at the start after one period
    counts = Counter(name for name, _ in MixtureStream({"A": 13, "B": 7}, {"A": 0.7, "B": 0.3}).take(1000))
    assert counts == {"A": 700, "B": 300}


def test_five_three_two_exact_in_every_period():
    stream = MixtureStream({"a": list("abcdefg"), "b": list("hij"), "c": list("kl")}, {"a": 5, "b": 3, "c": 2}, seed=3)
    assert stream.period == 10
    for _ in range(100):
        assert Counter(name for name, _ in stream.take(10)) == {"a": 5, "b": 3, "c": 2}
    draws = MixtureStream({"a": list("abcdefg"), "b": list("hij"), "c": list("kl")}, {"a": 5, "b": 3, "c": 2},
                          seed=3).take_items(70)
    # inside a source, each epoch is a permutation of its examples
    a_items = [x for name, x in draws if name == "a"][:7]
    assert sorted(a_items) == list("abcdefg")


def test_resume_continues_the_same_sequence():
    sources, ratios = {"A": 11, "B": 5, "C": 3}, {"A": 5, "B": 3, "C": 2}
    whole = MixtureStream(sources, ratios, seed=7).take(173)
    first = MixtureStream(sources, ratios, seed=7)
    head = first.take(123)
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint would store it
    resumed = MixtureStream(sources, ratios, seed=7)
    resumed.load_state_dict(state)
    assert head + resumed.take(50) == whole
    other = MixtureStream(sources, {"A": 1, "B": 1, "C": 1}, seed=7)
    with pytest.raises(ValueError, match="saved with weights"):
        other.load_state_dict(state)


def test_seed_changes_orders_not_counts_and_bad_sources():
    a = MixtureStream({"A": 10, "B": 10}, {"A": 1, "B": 1}, seed=0).take(20)
    b = MixtureStream({"A": 10, "B": 10}, {"A": 1, "B": 1}, seed=1).take(20)
    assert [n for n, _ in a] == [n for n, _ in b] and a != b
    with pytest.raises(ValueError, match=r"sources without a ratio \['B'\]"):
        MixtureStream({"A": 3, "B": 3}, {"A": 1})
    with pytest.raises(ValueError, match="source 'A' is empty"):
        MixtureStream({"A": []}, {"A": 1})
    with pytest.raises(TypeError, match="given as a size"):
        MixtureStream({"A": 3}, {"A": 1}).take_items(1)
