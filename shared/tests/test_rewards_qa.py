"""Hand-computed checks of SQuAD-normalised EM, sub-EM and F1 (with the HotpotQA yes/no rule)."""

import pytest
from shared.rewards import exact_match, f1_score, normalize_answer, sub_exact_match
from shared.rewards.qa import f1_bin, f1_counts, f1_from_counts


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


def test_sub_exact_match_of_a_gold_that_normalises_to_empty():
    # "the", "..." and "" normalise to "": a substring of every prediction, so such a gold must match nothing
    for gold in ("the", "...", "", " a  "):
        assert sub_exact_match("Paris is the capital", gold) == 0.0
        assert sub_exact_match("", gold) == 0.0
    # the other golds of the list still count
    assert sub_exact_match("it is Paris", ["the", "paris"]) == 1.0
    assert sub_exact_match("it is Lyon", ["the", "paris"]) == 0.0


def _tokens(n: int, shared: int, tag: str) -> str:
    return " ".join([f"w{i}" for i in range(shared)] + [f"{tag}{i}" for i in range(n - shared)])


@pytest.mark.parametrize(
    "n_pred,n_gold,overlap,f1,bin5",
    [(1, 9, 1, 0.2, 1), (4, 11, 3, 0.4, 2), (7, 8, 6, 0.8, 4), (3, 3, 3, 1.0, 5), (2, 5, 0, 0.0, 0)],
)
def test_f1_from_integer_counts_lands_in_the_right_bin(n_pred, n_gold, overlap, f1, bin5):
    # the textbook 2PR/(P+R) gives 0.19999999999999998, 0.39999999999999997 and 0.7999999999999999 for the first
    # three, so int(5 * F1) put them one bin low
    pred, gold = _tokens(n_pred, overlap, "p"), _tokens(n_gold, overlap, "g")
    assert f1_counts(pred, gold) == (overlap, n_pred, n_gold)
    assert f1_from_counts(overlap, n_pred, n_gold) == f1 == f1_score(pred, gold)
    assert int(5 * f1_score(pred, gold)) == bin5 == f1_bin(overlap, n_pred, n_gold)


def test_f1_counts_pick_the_best_gold_and_keep_the_special_rules():
    # gold 1: overlap 1 of (2, 3) -> 2/5; gold 2: overlap 2 of (2, 2) -> 1
    assert f1_counts("red car", ["a red bus stop", "the car red"]) == (2, 2, 2)
    assert f1_counts("no", "no answer") == (0, 1, 2)  # HotpotQA rule: overlap forced to 0
    assert f1_counts("", "the") == (0, 0, 0) and f1_from_counts(0, 0, 0) == 1.0
    assert f1_bin(1, 1, 9, bins=10) == 2 and f1_bin(0, 0, 0) == 5
    with pytest.raises(ValueError, match="overlap 3 exceeds"):
        f1_from_counts(3, 2, 5)
    with pytest.raises(ValueError, match="integers >= 0"):
        f1_bin(1, -1, 2)


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
