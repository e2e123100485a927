"""AgentLoop with parallel tool calls: with `parallel_tags=("tool_call",)` a turn is not cut at `</tool_call>`, holds
several calls that ToolEnv answers together, and the eos that closes a call turn ends the turn, not the episode;
without the option the old behaviour (stop at the first closing tag, eos ends the episode) is unchanged."""

import pytest
from shared.generation import Completion
from shared.modeling.tiny import build_tokenizer
from shared.rollout.agent_loop import AgentLoop
from shared.rollout.envs import ToolEnv


class EosGenerator:
    """Scripted turns; a turn given as (text, True) ends with the eos token id; records the stop strings it got."""

    def __init__(self, tokenizer, turns):
        self.tokenizer = tokenizer
        self.turns = list(turns)
        self.stops = []

    def generate(self, prompts, params):
        self.stops.append(tuple(params.stop))
        text, eos = self.turns.pop(0)
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos:
            ids.append(self.tokenizer.eos_token_id)
        comp = Completion(text=text, token_ids=ids, logprobs=[-0.1] * len(ids), finish_reason="eos" if eos else "stop")
        return [[comp] for _ in prompts]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(kind="char")


def _env(rec):
    return ToolEnv({"add": lambda a, b: a + b, "neg": lambda x: -x})


TWO_CALLS = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>' \
            '<tool_call>{"name": "neg", "arguments": {"x": 4}}</tool_call>'


def test_parallel_turn_holds_two_calls_and_eos_ends_only_the_turn(tok):
    gen = EosGenerator(tok, [(TWO_CALLS, True), ("<answer>5 -4</answer>", False)])
    # the scripted turn is 131 tokens: the per-turn budget must hold it (the loop cuts a turn at its budget)
    loop = AgentLoop(gen, _env, max_turns=4, parallel_tags=("tool_call",), max_new_tokens_per_turn=200)
    [traj] = loop.run([{"id": "q", "prompt": "Q: "}])
    # the closing tool tag is no longer a stop string; the answer's still is
    assert gen.stops[0] == ("</answer>", "</python>")
    assert traj.finish_reason == "answer" and traj.metadata["num_turns"] == 2
    assert [c["name"] for c in traj.metadata["infos"][0]["calls"]] == ["add", "neg"]
    obs = "\n<tool_response>\n5\n</tool_response>\n\n<tool_response>\n-4\n</tool_response>\n"
    assert traj.text == TWO_CALLS + obs + "<answer>5 -4</answer>"
    # the eos closing the call turn is a policy token (loss mask 1), the observation follows with mask 0
    s, e = traj.turn_spans[0]
    assert traj.response_ids[e - 1] == tok.eos_token_id and traj.loss_mask[s:e] == [1] * (e - s)
    n_obs = len(tok(obs, add_special_tokens=False)["input_ids"])
    assert traj.loss_mask[e:e + n_obs] == [0] * n_obs and traj.turn_spans[1][0] == e + n_obs


def test_eos_without_a_parallel_action_still_ends_the_episode(tok):
    gen = EosGenerator(tok, [("no action here", True), ("<answer>x</answer>", False)])
    loop = AgentLoop(gen, _env, max_turns=4, parallel_tags=("tool_call",))
    [traj] = loop.run([{"id": "q", "prompt": "Q: "}])
    assert traj.finish_reason == "eos" and traj.metadata["num_turns"] == 1 and len(gen.turns) == 1


def test_default_loop_keeps_one_action_per_turn_and_eos_ends_the_episode(tok):
    gen = EosGenerator(tok, [(TWO_CALLS, True), ("<answer>5</answer>", False)])
    loop = AgentLoop(gen, _env, max_turns=4, max_new_tokens_per_turn=200)
    [traj] = loop.run([{"id": "q", "prompt": "Q: "}])
    assert gen.stops[0] == ("</answer>", "</python>", "</tool_call>")
    # the scripted text ignores the stop, but without parallel tags an eos ends the episode after the calls
    assert traj.finish_reason == "eos" and traj.metadata["num_turns"] == 1
