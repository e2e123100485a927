"""Rewards by hand: numeric tolerance, choice letters, executed programs, the agentic composition, the rubric judge
through the real JudgeClient on the loopback stand-in, and how a stage sums rewards by record kind."""

from types import SimpleNamespace

import pytest
from huijin.recipe import AgentSettings
from huijin.rewards import (
    RUBRIC_TEMPLATE,
    RewardContext,
    final_text,
    make_reward_fn,
    preference_pairs,
    program_value,
    rubric_points,
    rubric_reply,
    tool_terms,
)
from shared.rewards.judge import JudgeClient
from shared.serving import ChatServer


def traj(text, infos=()):
    return SimpleNamespace(text=text, metadata={"infos": list(infos)})


NUM = {"kind": "numeric", "answer": "46", "prompt": "Q: ...\nA: "}
CTX = RewardContext(agent=AgentSettings(), schemas={"subtract": {"name": "subtract", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}})


def test_numeric_reward_by_hand():
    fn = make_reward_fn(["numeric"], CTX)
    texts = ["43+9=52. 52-6=46. \\boxed{46}", "\\boxed{46.3}", "\\boxed{47}", "46", "\\boxed{n/a}", "\\boxed{4,6}"]
    # 46.3: |0.3|/46 = 0.0065 <= 1e-2; 47: 1/46 = 0.0217; no box: 0; unparsable: 0; "4,6" is not 46 (bad grouping)
    assert fn([traj(t) for t in texts], [NUM] * len(texts)) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_choice_reward_by_hand():
    fn = make_reward_fn(["choice"], CTX)
    rec = {"kind": "choice", "answer": "B"}
    texts = ["\\boxed{B}", "The answer is (B).", "B) Profit", "b", "A or B", "\\boxed{C}"]
    assert fn([traj(t) for t in texts], [rec] * len(texts)) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_program_reward_executes_the_box():
    assert program_value("\\boxed{subtract(52, 6)}") == 46
    assert program_value("\\boxed{subtract(5829, 5735), divide(#0, 5735)}") == pytest.approx(0.0163906, abs=1e-7)
    assert program_value("\\boxed{52 - 6}") == 46 and program_value("\\boxed{46}") == 46
    assert program_value("\\boxed{foo(1, 2)}") is None and program_value("\\boxed{__import__('os')}") is None
    fn = make_reward_fn(["program"], CTX)
    assert fn([traj("\\boxed{43+9-6}"), traj("\\boxed{add(1, const_100)}")], [NUM, NUM]) == [1.0, 0.0]


CALL_OK = {"calls": [{"name": "subtract", "arguments": {"a": 437, "b": 289}, "status": "ok"}]}
CALL_BAD_JSON = {"calls": [{"error": "tool call is not valid JSON (Expecting value at char 0)"}]}
CALL_UNKNOWN = {"calls": [{"name": "divide", "arguments": {"a": 1, "b": 2}, "status": "error", "error": "unknown"}]}
CALL_BAD_ARGS = {"calls": [{"name": "subtract", "arguments": {"a": "437"}, "status": "error", "error": "type"}]}


def test_agentic_reward_composition_by_hand():
    fn = make_reward_fn(["tool_use"], CTX)
    rec = {"kind": "tool", "answer": "148"}
    answer = "\n<tool_response>\n148\n</tool_response>\n\\boxed{148}"
    cases = [
        (traj(answer, [CALL_OK]), 0.1 + 0.1 + 1.0),  # valid + executed + correct
        (traj(answer, [CALL_OK, CALL_OK]), 1.2),  # several valid calls pay once
        (traj("\\boxed{148}", [CALL_BAD_JSON]), 1.0),  # malformed call, right answer in the head
        (traj("\\boxed{140}", [CALL_UNKNOWN]), 0.0),  # unknown tool: no call terms, wrong answer
        (traj("\\boxed{148}", [CALL_UNKNOWN]), 1.0),
        (traj("\\boxed{1}", [CALL_BAD_ARGS]), 0.0),
        (traj("no box", [CALL_OK]), 0.2),
        (traj("\\boxed{148}", [{"status": "ok"}]), 1.2),  # a <python> block that ran
    ]
    got = fn([t for t, _ in cases], [rec] * len(cases))
    assert got == pytest.approx([r for _, r in cases])
    assert tool_terms(CALL_OK["calls"] + CALL_BAD_JSON["calls"], CTX.schemas) == (True, True)


def test_final_text_is_the_last_turn():
    assert final_text(traj("<tool_call>x</tool_call>\n<tool_response>\n5\n</tool_response>\n\\boxed{5}")) == \
        "\n\\boxed{5}"
    assert final_text(traj("\\boxed{7}")) == "\\boxed{7}"


def test_rubric_points_by_hand():
    assert rubric_points("43+9=52. 52-6=46. \\boxed{46}", "46") == 10
    assert rubric_points("43+9=52. 52-6=46. \\boxed{47}", "46") == 3  # steps right, answer wrong
    assert rubric_points("\\boxed{46}", "46") == 7  # no worked steps
    assert rubric_points("43+9=52. 52-6=45. \\boxed{45}", "46") == 0
    assert rubric_points("43+9=52. 50-4=46. \\boxed{46}", "46") == 7  # the second step does not chain


def test_rubric_through_the_real_judge_client():
    with ChatServer(rubric_reply, model="rubric-stand-in") as server:
        judge = JudgeClient(server.url, model="rubric-stand-in", template=RUBRIC_TEMPLATE, score_scale=10,
                            max_tokens=16)
        ctx = RewardContext(judge=judge)
        fn = make_reward_fn(["rubric"], ctx)
        rec = {"kind": "general", "answer": "46", "prompt": "Q: 43+9-6=?\nA: "}
        texts = ["43+9=52. 52-6=46. \\boxed{46}", "43+9=52. 52-6=46. \\boxed{47}", "\\boxed{46}"]
        assert fn([traj(t) for t in texts], [rec] * 3) == pytest.approx([1.0, 0.3, 0.7])
        assert server.count == 3 and ctx.counters["judge_correct"] == 2  # 0.3 < threshold 0.5: "incorrect"


def test_unparsed_judge_reply_is_zero_and_counted():
    with ChatServer(lambda messages, params: ["great"], model="m") as server:
        ctx = RewardContext(judge=JudgeClient(server.url, model="m", template=RUBRIC_TEMPLATE, score_scale=10))
        rec = {"kind": "general", "answer": "46", "prompt": "Q"}
        assert make_reward_fn(["rubric"], ctx)([traj("\\boxed{46}")], [rec]) == [0.0]
        assert ctx.counters["judge_unparsed"] == 1


def test_stage_sums_rewards_by_record_kind():
    fn = make_reward_fn(["numeric", "choice"], CTX)
    recs = [NUM, {"kind": "choice", "answer": "B"}]
    assert fn([traj("\\boxed{46}"), traj("\\boxed{B}")], recs) == [1.0, 1.0]  # choice never reads a numeric record
    both = make_reward_fn(["numeric", "program"], CTX)
    assert both([traj("\\boxed{46}")], [NUM]) == [2.0]
    with pytest.raises(ValueError, match="unknown rewards"):
        make_reward_fn(["numerc"], CTX)


def test_preference_pairs_break_the_last_step():
    pairs = preference_pairs([{"prompt": "Q: 43+9-6=?\nA: ", "completion": "43+9=52. 52-6=46. \\boxed{46}"}])
    (pair,) = pairs
    assert pair["chosen"] == "43+9=52. 52-6=46. \\boxed{46}"
    wrong = int(pair["rejected"].split("\\boxed{")[1].rstrip("}"))
    assert wrong != 46 and pair["rejected"] == f"43+9=52. 52-6={wrong}. \\boxed{{{wrong}}}"
    assert rubric_points(pair["chosen"], "46") == 10 and rubric_points(pair["rejected"], "46") == 0
