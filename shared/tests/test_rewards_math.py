"""Checks of boxed/GSM8K extraction and math answer equivalence (numeric fallback and math-verify)."""

import threading

import pytest
from shared.rewards import extract_boxed, extract_gsm8k_answer, math_equal, math_reward


def test_extract_boxed_last_and_nested():
    assert extract_boxed(r"first \boxed{1} then \boxed{\frac{a}{b+1}}") == r"\frac{a}{b+1}"
    assert extract_boxed(r"\fbox{7} later \boxed{ {3} }") == "{3}"
    assert extract_boxed(r"\boxed{1} and \fbox{9}") == "9"
    assert extract_boxed(r"\boxed 42$") == "42"
    assert extract_boxed("no box here") is None
    assert extract_boxed(r"\boxed{unclosed {x}") is None


def test_extract_gsm8k_answer():
    assert extract_gsm8k_answer("She pays 3*4=12.\n#### 1,234") == "1234"
    assert extract_gsm8k_answer("#### 5\n#### -7.") == "-7"
    assert extract_gsm8k_answer("no marker") is None


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("1,000", "1000"),
        ("72.0", "72"),
        ("1/2", "0.5"),
        (r"\frac{1}{2}", "0.5"),
        (r"\$5", "5"),
        ("50%", "0.5"),
        ("x^2+2x", "x(x+2)"),
        (r"\boxed{3}", "So the total is 3.\n#### 3"),
    ],
)
def test_math_equal_true(pred, gold):
    assert math_equal(pred, gold)


@pytest.mark.parametrize("pred,gold", [("46", "47"), ("0.33", "1/3"), ("x+1", "x+2"), ("", "3")])
def test_math_equal_false(pred, gold):
    assert not math_equal(pred, gold)


def test_math_reward_uses_last_box_then_gsm8k():
    target = r"43+9=52. 52-6=46. \boxed{46}"
    assert math_reward(target, "46") == 1.0
    assert math_reward(r"\boxed{46} wait, no: \boxed{45}", "46") == 0.0
    assert math_reward("12 apples\n#### 12", "#### 12") == 1.0
    assert math_reward("the answer is 46", "46") == 0.0  # unmarked answers score 0


def test_math_equal_in_worker_thread():
    # math-verify's signal-based timeout cannot run off the main thread; we must still answer there.
    out = []
    worker = threading.Thread(target=lambda: out.append(math_equal("x^2+2x", "x(x+2)")))
    worker.start()
    worker.join()
    assert out == [True]


def test_bad_types():
    with pytest.raises(TypeError, match="gold must be a str"):
        math_equal("1", 1)
    with pytest.raises(TypeError, match="text must be a str"):
        math_reward(None, "1")


@pytest.mark.parametrize("bomb", [r"10^{10^{10}}", "9^9^9^9", "2^{99999}", "2**99999", "100000!", "1e999999999"])
def test_costly_answers_are_refused_quickly_in_threads(bomb):
    # off the main thread math-verify has no timeout; these must not reach sympy
    out = []
    worker = threading.Thread(target=lambda: out.append(math_equal(bomb, "1")))
    worker.start()
    worker.join(timeout=10)
    assert out == [False]
    assert math_equal(bomb, bomb)  # identical strings still match


def test_a_symbolic_check_whose_first_parse_times_out_is_retried(monkeypatch):
    """math-verify's parse timeout is wall-clock (its first call builds the grammar and can overrun on a loaded
    machine): a timed-out parse is retried with the long budget, so an equal pair is not judged unequal."""
    import math_verify
    from math_verify.errors import TimeoutException
    from shared.rewards.math import PARSE_TIMEOUTS_S, parse_math

    real, budgets = math_verify.parse, []

    def first_call_times_out(text, parsing_timeout=5, raise_on_error=False):
        budgets.append(parsing_timeout)
        if len(budgets) == 1:
            raise TimeoutException("Operation timed out!")
        return real(text, parsing_timeout=parsing_timeout, raise_on_error=raise_on_error)

    monkeypatch.setattr(math_verify, "parse", first_call_times_out)
    assert math_equal("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}")
    assert budgets[:2] == list(PARSE_TIMEOUTS_S)

    def always_times_out(text, parsing_timeout=5, raise_on_error=False):
        raise TimeoutException("Operation timed out!")

    monkeypatch.setattr(math_verify, "parse", always_times_out)
    assert parse_math("\\boxed{x+1}") == []


@pytest.mark.parametrize(
    "text,gold,reward",
    [
        (r"so \boxed{\textbf{x+1}}", "x+1", 1.0),  # math-verify alone reads \textbf as text: judged unequal
        (r"\boxed{\textbf{1,234}}", "1234", 1.0),
        (r"\boxed{\textbf{50\%}}", "0.5", 1.0),
        (r"\boxed{\mathbf{\frac{1}{2}}}", r"\textbf{0.5}", 1.0),  # a bold gold is read the same way
        (r"\boxed{\textbf{12}}", "21", 0.0),
        (r"\boxed{\textbf{}}", "0", 0.0),  # an empty bold answer is no answer
        (r"\boxed{\textbf{3}", "3", 0.0),  # unbalanced box: no answer
    ],
)
def test_bold_inside_a_boxed_answer_is_read(text, gold, reward):
    assert math_reward(text, gold) == reward
