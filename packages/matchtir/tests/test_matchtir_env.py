"""Tool environment wiring: schema checks, malformed calls become error observations (never a crash), sandboxed
per-sample tool code, and a scripted multi-turn rollout scored with turn rewards on each turn's last token."""

import pytest
from matchtir.data import call_text, synthetic_samples, to_record
from matchtir.env import check_arguments, make_env_factory, make_tools
from matchtir.rewards import RewardSettings, make_reward_fn
from shared.generation import Completion
from shared.modeling.tiny import build_tokenizer
from shared.rollout.agent_loop import AgentLoop
from shared.rollout.envs import Action, ActionError

SCHEMA = {"type": "function", "function": {"name": "convert_units", "parameters": {
    "type": "object", "required": ["value", "from_unit", "to_unit"],
    "properties": {"value": {"type": "number"}, "from_unit": {"type": "string", "enum": ["km", "mi"]},
                   "to_unit": {"type": "string", "enum": ["km", "mi"]}}}}}


def test_check_arguments_errors():
    check_arguments(SCHEMA, {"value": 3, "from_unit": "km", "to_unit": "mi"})
    for args, msg in [
        ({"value": 3, "from_unit": "km", "to_unit": "mi", "x": 1}, "unknown argument"),
        ({"value": 3, "from_unit": "km"}, "missing required"),
        ({"value": "3", "from_unit": "km", "to_unit": "mi"}, "must be of type number"),
        ({"value": True, "from_unit": "km", "to_unit": "mi"}, "must be of type number"),
        ({"value": 3, "from_unit": "kg", "to_unit": "mi"}, "must be one of"),
    ]:
        with pytest.raises(ActionError, match=msg):
            check_arguments(SCHEMA, args)


def _step(env, text):
    return env.step(Action(kind="tool_call", content="", raw=text))


def test_malformed_calls_get_error_observations():
    sample = synthetic_samples(1, seed=0)[0]
    env = make_env_factory()(sample)
    env.reset(sample)
    ok = _step(env, call_text("lookup_population", {"city": "Avalon"}))
    assert "52000" in ok.observation and not ok.done
    cases = {
        "<tool_call>{not json</tool_call>": "not valid JSON",
        call_text("teleport", {"city": "Avalon"}): "unknown tool",
        call_text("lookup_population", {"city": 5}): "must be of type string",
        call_text("lookup_population", {"town": "Avalon"}): "unknown argument",
        call_text("convert_units", {"value": 1, "from_unit": "km", "to_unit": "kg"}): "cannot convert km to kg",
    }
    for text, msg in cases.items():
        res = _step(env, text)
        assert "<tool_response>" in res.observation and msg in res.observation, (text, res.observation)
        assert not res.done


def test_tool_code_runs_in_the_sandbox_and_unknown_tools_fail_clearly():
    sample = {"id": "s1", "tools": [{"name": "double", "parameters": {"type": "object", "properties": {
        "x": {"type": "integer"}}, "required": ["x"]}}], "tool_code": {"double": "def double(x):\n    return 2 * x\n"}}
    tools = make_tools(sample)
    assert tools["double"](x=21) == 42
    with pytest.raises(ActionError, match="must be of type integer"):
        tools["double"](x=1.5)
    bad = {"id": "s2", "tools": [{"name": "mystery", "parameters": {}}]}
    with pytest.raises(ValueError, match="'s2': tool 'mystery' has no 'tool_code'"):
        make_tools(bad)


class Scripted:
    """Generator returning scripted turn texts in order (same text for every episode)."""

    def __init__(self, tokenizer, turns):
        self.tokenizer, self.turns = tokenizer, list(turns)

    def generate(self, prompts, params):
        text = self.turns.pop(0)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return [[Completion(text=text, token_ids=ids, logprobs=[-0.1] * len(ids), finish_reason="stop")]
                for _ in prompts]

    def update_weights(self, model):
        pass


def test_scripted_rollout_with_bad_calls_is_scored_per_turn():
    tok = build_tokenizer(kind="char")
    sample = next(s for s in synthetic_samples(6, seed=1) if s["kind"] == "multi_call"
                  and s["gold_trace"][0]["name"] == "lookup_population")
    g0, g1 = sample["gold_trace"][0], sample["gold_trace"][1]
    turns = [
        call_text(g0["name"], g0["parameters"]),
        "<tool_call>{broken</tool_call>",
        call_text(g1["name"], g1["parameters"]),
        "no action here",
        f"<answer>{sample['answer']}</answer>",
    ]
    loop = AgentLoop(Scripted(tok, turns), make_env_factory(), max_turns=6, max_new_tokens_per_turn=200,
                     max_response_tokens=4000)
    rec = to_record(sample, "signatures")
    [traj] = loop.run([rec], n=1)
    assert traj.finish_reason == "answer" and len(traj.turn_spans) == 5
    assert "not valid JSON" in traj.text and "Invalid action" in traj.text
    reward_fn = make_reward_fn(RewardSettings(scheme="matching", unmatched_penalty=-0.5), tok)
    assert reward_fn([traj], [rec]) == [1.0]  # the answer turn's F1, placed on the last token
    assert traj.turn_rewards == pytest.approx([1.0, -0.5, 1.0, 0.0, 0.0])
    traj.reward = 1.0
    dense = traj.dense_rewards()
    for (s, e), r in zip(traj.turn_spans, [1.0, -0.5, 1.0, 0.0, 1.0]):
        assert dense[e - 1] == pytest.approx(r) and all(d == 0 for d in dense[s:e - 1])
    scores = traj.metadata["scores"]
    # 2 exact matches of 3 gold calls; the malformed block counts as a prediction: F1 = 2 * 2 / (3 + 3)
    assert len(sample["gold_trace"]) == 3
    assert scores["solve_f1"] == pytest.approx(2 / 3) and scores["solve_rate"] == pytest.approx(2 / 3)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["answer_f1"] == 1.0
    outcome = make_reward_fn(RewardSettings(scheme="outcome"), tok)
    assert outcome([traj], [rec]) == [1.0] and traj.turn_rewards == [0.0] * 5
    with pytest.raises(ValueError, match="unknown reward scheme"):
        make_reward_fn(RewardSettings(scheme="dense"), tok)
