"""Checks of tag extraction and the tagged-output format rule."""

import pytest
from shared.rewards import extract_tag, format_ok, parse_tagged
from shared.rewards.format import follows


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


SEARCH_R1 = {"start": {"think"}, "think": {"search", "answer"}, "search": {"information"}, "information": {"think"}}
TAGS = ("think", "search", "information", "answer")


def _check(text, **kw):
    return follows(parse_tagged(text, TAGS), SEARCH_R1, start="start", accept={"answer"}, **kw)


def test_follows_accepts_search_loops_of_any_length():
    assert _check("<think>a</think><answer>x</answer>") == (True, "ok")
    loop = "<think>a</think><search>q</search><information>d</information>"
    assert _check(loop * 3 + "<think>b</think><answer>x</answer>") == (True, "ok")


@pytest.mark.parametrize(
    "text,reason",
    [
        ("<answer>x</answer>", "block 0 <answer> may not follow the start (allowed: <think>)"),
        ("<think>a</think><information>d</information>",
         "block 1 <information> may not follow <think> (allowed: <answer>, <search>)"),
        ("<think>a</think><search>q</search><think>b</think>",
         "block 2 <think> may not follow <search> (allowed: <information>)"),
        ("<think>a</think><answer>x</answer><think>b</think>",
         "block 2 <think> may not follow <answer> (allowed: nothing)"),
        ("<think>a</think><search>q</search>", "ends after <search> (must end after <answer>)"),
        ("", "no blocks (must end after <answer>)"),
        ("<think>a</think> stray <answer>x</answer>",
         "not tagged blocks: text outside the blocks, or an unclosed or nested tag"),
    ],
)
def test_follows_rejects_with_reasons(text, reason):
    assert _check(text) == (False, reason)


def test_follows_empty_blocks_numbered_turns_and_void_tags():
    assert _check("<think> </think><answer>x</answer>") == (True, "ok")
    assert _check("<think> </think><answer>x</answer>", allow_empty=False) == (False, "block 0 <think> is empty")
    # mask-style planning: q1 a1 q2 a2 ... then the final answer, closed by the void tag <end>
    grammar = {"start": {"q1"}, "q1": {"a1"}, "a1": {"q2", "final_answer"}, "q2": {"a2"}, "a2": {"final_answer"},
               "final_answer": {"end"}}
    tags = ("q1", "a1", "q2", "a2", "final_answer")
    text = "<q1>who?</q1><a1>Ann</a1><q2>when?</q2><a2>1901</a2><final_answer>1901</final_answer><end>"
    blocks = parse_tagged(text, tags, void_tags=("end",))
    assert blocks[-1] == ("end", "")
    assert follows(blocks, grammar, accept="end", allow_empty=False, void_tags=("end",)) == (True, "ok")
    swapped = parse_tagged("<q1>who?</q1><q2>when?</q2>", tags)
    assert follows(swapped, grammar, accept="end") == (False, "block 1 <q2> may not follow <q1> (allowed: <a1>)")
    assert follows([], {"start": {"q1"}}, accept={"start", "end"}) == (True, "ok")  # start accepted: no blocks ok
    assert parse_tagged("<end></end>", tags, void_tags=("end",)) is None  # a void tag has no closing tag
    assert parse_tagged("<q1>a <end> b</q1>", tags, void_tags=("end",)) is None  # nor sits inside a block
