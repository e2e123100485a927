"""Golden values of the outcome reward (ours and the release's prompt+response form), the release's unwired
qa_em_format scorer, and the format state machine, all worked out by hand from the release's constants
(format 0.2, correct 1.0, retrieval bonus 0.1)."""

import pytest
from dr9k.config import RewardSettings
from dr9k.rewards import Response, check_format, outcome_reward, qa_em_format_reward
from dr9k.teacher import CORRECTION, prompt_text

PROMPT = prompt_text("search_r1", "What is the capital of France?")  # holds "<answer> Beijing </answer>"
INFO = "<information>Doc 1(Title: Paris) Paris is the capital of France.</information>"
OURS = RewardSettings()
RELEASE = RewardSettings(scope="full_text")


@pytest.mark.parametrize("response, gold, ours, release", [
    ("<think>x</think><answer>Paris</answer>", "Paris", 1.2, 1.2),
    (f"<think>a</think><search>q</search>{INFO}<think>b</think><answer>Lyon</answer>", "Paris", 0.3, 0.3),
    (f"<think>a</think><search>q</search>{INFO}<think>b</think><answer>Paris</answer>", "Paris", 1.2, 1.2),
    ("<think>x</think><answer>Lyon</answer>", "Paris", 0.2, 0.2),
    ("<think>no answer written</think>", "Paris", 0.0, 0.2),  # release: the prompt's example answer "Beijing"
    ("<think>no answer written</think>", "Beijing", 0.0, 1.2),  # ... which is right here: the defect in full
    ("<think>x</think><answer>The Eiffel Tower!</answer>", "eiffel tower", 1.2, 1.2),
])
def test_outcome_reward_golden_table(response, gold, ours, release):
    assert outcome_reward(response, [gold], PROMPT, OURS) == pytest.approx(ours)
    assert outcome_reward(response, [gold], PROMPT, RELEASE) == pytest.approx(release)


def test_bonus_always_option_and_unparseable_output():
    correct_with_gold_seen = f"<think>a</think><search>q</search>{INFO}<think>b</think><answer>Paris</answer>"
    assert outcome_reward(correct_with_gold_seen, ["Paris"], "", RewardSettings(bonus_when="always")) == \
        pytest.approx(1.3)
    assert outcome_reward("no tags at all", ["Paris"]) == 0.0
    assert outcome_reward("", ["Paris"]) == 0.0
    assert outcome_reward(None, ["Paris"]) == 0.0  # type: ignore[arg-type]
    assert check_format("no tags at all")[0] is False


def test_correction_message_is_not_an_answer_in_response_scope():
    # an invalid action: the environment's correction spells "<answer> and </answer>"; the release reads it as the
    # answer "and" with the format score, our response scope reads answers from the policy's own turns only
    r = Response(generated="I am not sure", observed=CORRECTION, full="I am not sure" + CORRECTION)
    assert outcome_reward(r, ["and"], "", OURS) == 0.0
    assert outcome_reward(r, ["Paris"], "", RELEASE) == pytest.approx(0.2)
    assert outcome_reward(r, ["and"], "", RELEASE) == pytest.approx(1.2)
    # a policy-written <information> block earns no bonus in our scope
    fake = Response(generated=f"<think>a</think>{INFO}<answer>Lyon</answer>", observed="")
    assert outcome_reward(fake, ["Paris"], "", OURS) == pytest.approx(0.2)


def test_qa_em_format_variant_by_hand():
    s = RewardSettings(variant="qa_em_format")
    valid = f"<think>a</think><search>q</search>{INFO}<think>b</think><answer>{{}}</answer>"
    assert qa_em_format_reward(valid.format("Paris"), ["Paris"], "", s) == pytest.approx(1.0)
    assert qa_em_format_reward(valid.format("Lyon"), ["Paris"], "", s) == pytest.approx(0.2)
    assert qa_em_format_reward("<answer>Lyon</answer>", ["Paris"], "", s) == pytest.approx(0.2)  # invalid, still 0.2
    assert qa_em_format_reward("<answer>Paris</answer>", ["Paris"], "", s) == pytest.approx(1.0)  # 1.0 - 0 (structure)
    assert qa_em_format_reward("<think>x</think>", ["Paris"], "", s) == 0.0  # no answer, invalid
    full = RewardSettings(variant="qa_em_format", scope="full_text")
    # prompt + response hold two answers ("and", "Beijing") even when the response has none
    assert qa_em_format_reward("<think>x</think>", ["Beijing"], PROMPT, full) == pytest.approx(1.0)
    assert qa_em_format_reward("<think>x</think>", ["Paris"], PROMPT, full) == pytest.approx(0.2)
    assert qa_em_format_reward("<answer>Lyon</answer>", ["Paris"], "", full) == 0.0  # one match is not enough


@pytest.mark.parametrize("text", [
    "<think>a</think><answer>b</answer>",
    "<think>a</think><search>q</search><information>d</information><think>b</think><answer>c</answer>",
    "<think>a</think> <search>q</search>\n<information>d</information><think>b</think><search>r</search>"
    "<information>e</information><think>c</think>\n<answer>f</answer>",
])
def test_format_machine_accepts(text):
    assert check_format(text) == (True, "ok")


@pytest.mark.parametrize("text, reason", [
    ("<search>q</search><information>d</information><think>b</think><answer>c</answer>",
     "block 0 <search> may not follow the start (allowed: <think>)"),
    ("<think>a</think> hello <answer>b</answer>", "not tagged blocks"),
    ("<think>a</think><information>d</information><think>b</think><answer>c</answer>",
     "block 1 <information> may not follow <think> (allowed: <answer>, <search>)"),
    ("<think>a</think><answer>b</answer><think>c</think>", "block 2 <think> may not follow <answer> (allowed: nothing)"),
    ("<think>a</think><search>q", "not tagged blocks"),
    ("<think>a</think><search>q</search><information>d</information><think>b</think>",
     "ends after <think> (must end after <answer>)"),
])
def test_format_machine_rejects_with_reason(text, reason):
    ok, why = check_format(text)
    assert not ok and why.startswith(reason)
