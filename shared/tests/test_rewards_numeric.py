"""Golden values for numeric_match / parse_number and choice_match, worked out by hand (huijin design §4)."""

from __future__ import annotations

import pytest
from shared.rewards.numeric import choice_letter, choice_match, last_number, numeric_match, parse_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,234", 1234.0),
        ("1,234,567.5", 1234567.5),
        ("(12)", -12.0),  # accounting negative
        ("\u22125", -5.0),  # U+2212 minus
        ("12.5%", 12.5),
        ("$1,234.", 1234.0),  # currency and a final full stop
        ("-$5", -5.0),
        ("+3", 3.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        (" 46 ", 46.0),
        (7, 7.0),
        ("n/a", None),
        ("1,23", None),  # not a thousands grouping
        ("", None),
        ("(-12)", None),
        ("twelve", None),
        ("12 apples", None),
        (True, None),
        (float("nan"), None),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


def test_percent_reading():
    assert parse_number("12.5%", percent="fraction") == 0.125
    assert numeric_match("12.5%", 12.5) == 1.0
    assert numeric_match("12.5%", 0.125) == 0.0  # default: a percent reads as the number itself
    assert numeric_match("12.5%", 0.125, percent="fraction") == 1.0
    assert numeric_match("12.5%", 0.125, percent="either") == 1.0
    assert numeric_match("12.5%", 12.5, percent="either") == 1.0


def test_numeric_match_tolerance_by_hand():
    # |46.3 - 46| / 46 = 0.00652 <= 0.01 -> 1; |47 - 46| / 46 = 0.0217 > 0.01 -> 0
    assert numeric_match("46.3", 46) == 1.0
    assert numeric_match("47", 46) == 0.0
    # gold 0: only abs_tol (1e-6) applies
    assert numeric_match("0", 0) == 1.0
    assert numeric_match("0.001", 0) == 0.0
    assert numeric_match("0.0000005", 0) == 1.0
    # relative to the gold, not symmetric: 100 vs gold 99 -> 1/99 = 0.0101 > 0.01 -> 0; 99 vs gold 100 -> 0.01 -> 1
    assert numeric_match("100", 99) == 0.0
    assert numeric_match("99", 100) == 1.0
    assert numeric_match("1,234", 1234) == 1.0
    assert numeric_match("(12)", -12) == 1.0
    assert numeric_match("\u22125", -5) == 1.0
    assert numeric_match("46.3", 46, rel_tol=0.0) == 0.0
    assert numeric_match("n/a", 46) == 0.0  # unparsable prediction: 0, no exception


def test_numeric_match_bad_arguments():
    with pytest.raises(ValueError, match="gold 'abc' is not a number"):
        numeric_match("1", "abc")
    with pytest.raises(ValueError, match="rel_tol >= 0"):
        numeric_match("1", 1, rel_tol=-1)
    with pytest.raises(ValueError, match="percent must be"):
        numeric_match("1", 1, percent="ratio")


def test_last_number():
    assert last_number("Revenue rose by 9, so the total is $1,234.") == "$1,234"
    assert parse_number(last_number("so the total is $1,234.")) == 1234.0
    assert last_number("a loss of (12) in 2020") == "2020"
    assert last_number("no digits") is None


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is (B).", "B"),
        ("B) Profit", "B"),
        ("b", "B"),
        ("(c)", "C"),
        ("A or B", None),  # ambiguous
        ("The answer is A or B.", None),
        ("I pick D", "D"),
        ("Answer: c", "C"),
        ("A company reports profit. The answer is (C).", "C"),  # the answer phrase decides
        ("none of these", None),
        ("E", None),  # not among the letters
    ],
)
def test_choice_letter(text, letter):
    assert choice_letter(text, "ABCD") == letter


def test_choice_match_golden_and_bad_gold():
    assert choice_match("The answer is (B).", "B") == 1.0
    assert choice_match("B) Profit", "B") == 1.0
    assert choice_match("b", "B") == 1.0
    assert choice_match("A or B", "B") == 0.0
    assert choice_match("The answer is (B).", "C") == 0.0
    assert choice_match("(E)", "E", letters="ABCDE") == 1.0
    with pytest.raises(ValueError, match="gold 'E' is not one of A, B, C, D"):
        choice_match("E", "E", letters="ABCD")
