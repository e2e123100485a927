"""Checks of tag extraction and the tagged-output format rule."""

import pytest
from shared.rewards import extract_tag, format_ok, parse_tagged


def test_extract_tag_last_and_first():
    text = "<answer> a </answer> then <answer>b</answer>"
    assert extract_tag(text, "answer") == "b"
    assert extract_tag(text, "answer", which="first") == "a"
    assert extract_tag(text, "answer", which="first", strip=False) == " a "
    assert extract_tag("<answer>unclosed", "answer") is None
    assert extract_tag("<search>\nq1\n</search>", "search") == "q1"


def test_format_ok_accepts_spec():
    assert format_ok("<think>plan</think><answer>4</answer>")
    assert format_ok("  <think>\nplan\n</think>\n\n<answer>4</answer>\n")
    assert format_ok("<answer>x</answer>", tags=("answer",))


@pytest.mark.parametrize(
    "text",
    [
        "<answer>4</answer><think>plan</think>",  # wrong order
        "<think>plan</think>",  # missing block
        "<think>a</think><answer>4</answer><answer>5</answer>",  # repeated
        "Sure! <think>a</think><answer>4</answer>",  # text outside blocks
        "<think>a <answer>4</answer></think>",  # nested
        "<think>a</think><answer>   </answer>",  # empty content
        "<think>a</think><answer>4",  # unclosed
    ],
)
def test_format_ok_rejects(text):
    assert not format_ok(text)


def test_format_ok_allow_empty_and_parse_tagged():
    assert format_ok("<think></think><answer>1</answer>", allow_empty=True)
    blocks = parse_tagged("<think>a</think><search>q</search><think>b</think>", ["think", "search"])
    assert blocks == [("think", "a"), ("search", "q"), ("think", "b")]
    assert parse_tagged("<think>a</think> junk", ["think"]) is None


def test_bad_tag_name():
    with pytest.raises(ValueError, match="invalid tag name"):
        extract_tag("x", "a b")
    with pytest.raises(ValueError, match="which must be"):
        extract_tag("x", "a", which="middle")
