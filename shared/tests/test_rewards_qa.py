"""Hand-computed checks of SQuAD-normalised EM, sub-EM and F1 (with the HotpotQA yes/no rule)."""

import pytest
from shared.rewards import exact_match, f1_score, normalize_answer, sub_exact_match


def test_normalize_answer_squad_rules():
    assert normalize_answer("  The  Eiffel-Tower!! ") == "eiffeltower"
    assert normalize_answer("An apple, a pear") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # article removal is word-bounded


def test_exact_match_multiple_golds():
    assert exact_match("the Paris", ["London", "paris."]) == 1.0
    assert exact_match("Paris France", ["paris"]) == 0.0
    assert exact_match("Paris", "paris") == 1.0


def test_sub_exact_match():
    assert sub_exact_match("It is Paris, France.", ["paris"]) == 1.0
    assert sub_exact_match("Lyon", ["paris", "marseille"]) == 0.0
    assert sub_exact_match("anything", ["the"]) == 0.0  # empty normalised gold never matches


def test_f1_hand_computed():
    # pred tokens [cat, sat, on, mat], gold tokens [cat, on, mat, today]: overlap 3,
    # precision 3/4, recall 3/4 -> F1 0.75
    assert f1_score("The cat sat on the mat", "a cat on the mat today") == pytest.approx(0.75)
    # pred [cat, sat], gold [cat]: P=1/2, R=1 -> F1 = 2*0.5*1/1.5 = 2/3; max over golds
    assert f1_score("the cat sat", ["dog", "a cat"]) == pytest.approx(2 / 3)
    assert f1_score("blue", "red") == 0.0


def test_f1_hotpotqa_yes_no_rule():
    # "no" vs "no answer" would share a token; the HotpotQA rule gives 0.
    assert f1_score("no", "no answer") == 0.0
    assert f1_score("yes it is", "yes") == 0.0
    assert f1_score("Yes.", "yes") == 1.0


def test_f1_empty_answers():
    assert f1_score("", "") == 1.0
    assert f1_score("the", "cat") == 0.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="non-empty list"):
        exact_match("x", [])
    with pytest.raises(TypeError, match=r"golds\[1\]"):
        f1_score("x", ["a", 3])
    with pytest.raises(TypeError, match="prediction must be a str"):
        sub_exact_match(None, "a")
