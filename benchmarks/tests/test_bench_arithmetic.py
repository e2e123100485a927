"""Tests for the synthetic arithmetic suite: format, determinism, disjoint splits, knobs and the 100% oracle."""

import re

import pytest
from benchmarks.synthetic.arithmetic import make_arithmetic, parse_prompt, solve, worked_solution


def test_calibration_format_matches_spec():
    sol, value = worked_solution([43, 9, 6], ["+", "-"])
    assert sol == "43+9=52. 52-6=46. \\boxed{46}"
    assert value == 46
    rec = make_arithmetic(1, seed=0)[0]
    assert re.fullmatch(r"Q: \d\d([+-]\d){1,2}=\?\nA: ", rec.prompt)
    assert rec.solution.endswith(f"\\boxed{{{rec.answer}}}")


def test_deterministic_and_seed_dependent():
    a = [r.to_dict() for r in make_arithmetic(50, seed=3)]
    b = [r.to_dict() for r in make_arithmetic(50, seed=3)]
    c = [r.to_dict() for r in make_arithmetic(50, seed=4)]
    assert a == b
    assert a != c


def test_train_test_disjoint_and_distinct():
    train = make_arithmetic(2000, seed=0, split="train")
    test = make_arithmetic(300, seed=0, split="test")
    train_q = {r.question for r in train}
    assert len(train_q) == 2000
    assert not train_q & {r.question for r in test}


def test_difficulty_knobs():
    recs = make_arithmetic(200, seed=1, operands=(3,), first_digits=2, other_digits=2, ops="+")
    for r in recs:
        assert len(r.operands) == 3 and all(10 <= x <= 99 for x in r.operands)
        assert r.ops == ["+", "+"]
    two = make_arithmetic(100, seed=1, operands=(2,))
    assert {len(r.operands) for r in two} == {2}
    assert all(int(r.answer) >= 0 for r in make_arithmetic(500, seed=2))


@pytest.mark.parametrize("variant", ["calibration", "word"])
def test_oracle_solves_all(variant):
    recs = make_arithmetic(300, seed=5, variant=variant, split="test")
    solved = sum(solve(r.prompt) == r.solution for r in recs)
    assert solved == len(recs)
    boxed = [re.findall(r"\\boxed\{(-?\d+)\}", solve(r.prompt))[-1] for r in recs]
    assert boxed == [r.answer for r in recs]


def test_word_variant_phrasing():
    rec = make_arithmetic(1, seed=0, variant="word", operands=(3,))[0]
    assert "How many" in rec.prompt and rec.prompt.startswith("Q: ") and rec.prompt.endswith("\nA: ")
    assert parse_prompt(rec.prompt) == (rec.operands, rec.ops)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="ops"):
        make_arithmetic(3, ops="*")
    with pytest.raises(ValueError, match="split"):
        make_arithmetic(3, split="dev")
    with pytest.raises(ValueError, match="distinct"):
        make_arithmetic(500, operands=(2,), first_digits=1, other_digits=1)
    with pytest.raises(ValueError, match="not an arithmetic prompt"):
        solve("Q: hello\nA: ")
