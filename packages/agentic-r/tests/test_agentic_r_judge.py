"""Golden tests for local utility: listwise reply parsing, clipping, parse failures, and the lexical judge."""

import pytest
from agentic_r.judge import (
    JudgeParseFailure,
    LexicalJudge,
    LLMListwiseJudge,
    build_listwise_prompt,
    clip_utility,
    parse_listwise_scores,
)


def test_clip_utility_bounds():
    assert clip_utility(-20) == 0.0
    assert clip_utility(0) == 0.0
    assert clip_utility(65) == 0.65
    assert clip_utility(100) == 1.0
    assert clip_utility(140) == 1.0


def test_parse_listwise_scores_clips_and_orders():
    reply = "[2] 40\n[1]: 100\n[3] = 130\n[4] -5\n[5] 72.5"
    assert parse_listwise_scores(reply, 5) == [1.0, 0.4, 1.0, 0.0, 0.725]


def test_parse_listwise_last_score_for_an_index_wins():
    assert parse_listwise_scores("[1] 10\n[2] 20\n[1] 90", 2) == [0.9, 0.2]


@pytest.mark.parametrize(
    "reply, match",
    [
        ("passage one is great", r"no score for passage\(s\) \[1, 2\]"),
        ("[1] 50", r"no score for passage\(s\) \[2\]"),
        ("[1] 50\n[2] 30\n[3] 10", r"scored passage \[3\] but only 1..2"),
        ("[1] high\n[2] low", r"no score"),
    ],
)
def test_parse_listwise_failures(reply, match):
    with pytest.raises(JudgeParseFailure, match=match):
        parse_listwise_scores(reply, 2)


def test_prompt_uses_sub_answer_unless_not_sure():
    with_ref = build_listwise_prompt("Q?", "sub q", "Paris", ["a", "b"])
    assert "Reference answer to the search query: Paris" in with_ref and "[2] b" in with_ref
    assert "Reference answer" not in build_listwise_prompt("Q?", "sub q", "Not Sure", ["a"])


def test_llm_judge_chunks_of_ten_and_garbage_raises():
    prompts = []

    def complete(prompt):
        prompts.append(prompt)
        n = prompt.count("\n[")
        return "\n".join(f"[{i}] {10 * i}" for i in range(1, n + 1))

    judge = LLMListwiseJudge(complete)
    scores = judge.score("Q", "q", "a", [f"p{i}" for i in range(12)])
    assert len(prompts) == 2  # 10 + 2 passages
    assert scores[:3] == [0.1, 0.2, 0.3] and scores[10:] == [0.1, 0.2]
    garbage = LLMListwiseJudge(lambda p: "I like all of them")
    with pytest.raises(JudgeParseFailure):
        garbage.score("Q", "q", "a", ["p"])
    assert garbage.stats.parse_failures == 1


def test_lexical_judge_golden():
    judge = LexicalJudge()
    query = "Where was Kalo Mira born?"  # content terms: kalo, mira, born
    passages = [
        "Kalo Mira was born in Litoville.",  # coverage 1, answer present -> 100
        "The mentor of Zed is Kalo Mira.",  # coverage 2/3, no answer -> 33.3
        "Zed was born in Litoville.",  # coverage 1/3, answer present -> 66.7
    ]
    scores = judge.score("Q", query, "Litoville", passages)
    assert scores == pytest.approx([1.0, 1 / 3, 2 / 3])
    assert judge.score("Q", query, "Not Sure", passages) == pytest.approx([1.0, 2 / 3, 1 / 3])
