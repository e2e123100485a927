"""The multi-role driver: a two-role episode with hand-counted masks per role, per-role batching in lock-step rounds,
generated ids carried across roles without re-tokenising, the context guard both ways, episodes ending on any
end-of-sequence id of a list, and bad programs named."""

from __future__ import annotations

import pytest
from shared.generation import Completion, HFGenerator
from shared.modeling import load_model
from shared.modeling.tiny import IM_END, build_tokenizer
from shared.rollout.agent_loop import AgentLoop, generate_trajectories
from shared.rollout.driver import GenRequest, MultiRoleDriver
from shared.rollout.envs import SearchEnv


class Script:
    """Per call, the next scripted text for every row; records (contexts, stop) of each call."""

    def __init__(self, tokenizer, turns, eos_token_ids=None):
        self.tokenizer, self.turns, self.calls = tokenizer, list(turns), []
        if eos_token_ids is not None:
            self.eos_token_ids = eos_token_ids

    def generate(self, prompts, params):
        self.calls.append(([list(p) for p in prompts], params.stop))
        text = self.turns.pop(0)
        out = []
        for _ in prompts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if isinstance(text, str) else list(text)
            shown = text if isinstance(text, str) else self.tokenizer.decode(ids)
            out.append([Completion(text=shown, token_ids=list(ids), logprobs=[-0.5] * len(ids),
                                   finish_reason="stop")])
        return out

    def update_weights(self, model):
        pass


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(kind="char")


def debate(ep):
    """Reasoner asks, verifier answers from the reasoner's own ids, reasoner answers, verifier judges."""
    ep.start("reasoner", "Q?")
    first = yield GenRequest("reasoner", 40, stop=("</search>",))
    ep.start("verifier", "V:", first)  # the reasoner's generated ids, not its text re-tokenised
    reply = yield GenRequest("verifier", 10)
    ep.observe("reasoner", "<i>", reply, "</i>")
    second = yield GenRequest("reasoner", 40)
    ep.observe("verifier", second)
    verdict = yield GenRequest("verifier", 10)
    return verdict.text


def test_two_role_episode_hand_counted_masks_and_rounds(tok):
    reasoner = Script(tok, ["<search>x</search>", "<answer>y</answer>"])
    verifier = Script(tok, ["ok", "fine"])
    out = MultiRoleDriver({"reasoner": reasoner, "verifier": verifier}).run(
        debate, [{"id": "a", "prompt": "?"}, {"id": "b", "prompt": "?"}], n=2, group_ids=[5, 6])
    # char tokenizer: one token per character. reasoner: 18 generated | 3 + 2 + 4 observed | 18 generated
    assert len(out["reasoner"]) == 4 and len(out["verifier"]) == 4
    for r, v in zip(out["reasoner"], out["verifier"]):
        assert r.loss_mask == [1] * 18 + [0] * 9 + [1] * 18
        assert r.turn_spans == [(0, 18), (27, 45)]
        assert r.text == "<search>x</search><i>ok</i><answer>y</answer>"
        # verifier: prompt "V:" + the reasoner's 18 ids; response 2 generated | 18 observed | 4 generated
        assert len(v.prompt_ids) == 20 and v.prompt_ids[2:] == r.response_ids[:18]
        assert v.loss_mask == [1] * 2 + [0] * 18 + [1] * 4
        assert v.response_ids[2:20] == r.response_ids[27:45]  # the reasoner's second turn, as generated
        assert r.response_ids[21:23] == v.response_ids[:2]  # the verifier's reply inside <i>...</i>
        assert v.old_logprobs == [-0.5] * 2 + [0.0] * 18 + [-0.5] * 4
        assert r.group_id == v.group_id and r.group_key == (r.group_id, "reasoner")
        assert v.group_key == (v.group_id, "verifier")
    assert [t.group_id for t in out["reasoner"]] == [5, 5, 6, 6]
    assert [ep.result for ep in out.episodes] == ["fine"] * 4
    # lock-step: each round serves the reasoner then the verifier, all four episodes in one call each
    assert out.rounds == 2
    assert [(c["round"], c["role"], c["rows"]) for c in out.calls] == [
        (0, "reasoner", 4), (0, "verifier", 4), (1, "reasoner", 4), (1, "verifier", 4)]
    assert reasoner.calls[0][1] == ("</search>",) and verifier.calls[0][1] == ()


def test_one_generator_serves_two_roles_and_a_role_restarts(tok):
    shared_gen = Script(tok, ["AB", "CD", "EF"])

    def calls(ep):  # one trajectory per call for role "a" (a fresh prompt each time), grouped per call index
        for k in range(2):
            ep.start("a", f"p{k}", group_key=(ep.group_id, "a", k))
            yield GenRequest("a", 4)
        ep.start("b", "q")
        yield GenRequest("b", 4)

    out = MultiRoleDriver({"a": shared_gen, "b": shared_gen}).run(calls, [{"prompt": "x"}], n=1)
    # round 0 serves a's first call; its second waits for round 1, after which b is served in the same round
    assert [t.text for t in out["a"]] == ["AB", "CD"] and [t.text for t in out["b"]] == ["EF"]
    assert [t.metadata["call"] for t in out["a"]] == [0, 1]
    assert [t.group_key for t in out["a"]] == [(0, "a", 0), (0, "a", 1)] and out["b"][0].group_key == (0, "b")
    assert [(c["round"], c["role"]) for c in out.calls] == [(0, "a"), (1, "a"), (1, "b")]


def test_context_guard_both_ways(tok):
    def two_turns(ep):
        ep.start("p", "0123456789")  # 10 prompt tokens
        first = yield GenRequest("p", 8)
        second = yield GenRequest("p", 8)
        return first.finish_reason, second.finish_reason

    gen = Script(tok, ["abcdefgh"])  # a backend honours max_new_tokens: the driver cuts any longer completion
    out = MultiRoleDriver({"p": gen}, max_context_tokens=14).run(two_turns, [{"prompt": "x"}])
    [traj] = out["p"]
    # room 14 - 10 = 4: the first turn is cut there (finish "context"); the second has no room and is not generated
    assert traj.response_ids == tok("abcd", add_special_tokens=False)["input_ids"]
    assert out.episodes[0].result == ("context", "context") and traj.finish_reason == "context"
    assert len(gen.calls) == 1
    with pytest.raises(ValueError, match=r"role 'p': context of 14 tokens leaves no room under max_context_tokens=14"):
        MultiRoleDriver({"p": Script(tok, ["abcdefgh"])}, max_context_tokens=14,
                        on_context_overflow="error").run(two_turns, [{"id": "r1", "prompt": "x"}])
    with pytest.raises(ValueError, match="on_context_overflow"):
        MultiRoleDriver({"p": gen}, on_context_overflow="truncate")


def test_context_guard_defaults_to_the_models_positions(tiny_qwen2_dir):
    model, tok = load_model(tiny_qwen2_dir, device="cpu")
    gen = HFGenerator(model, tok)
    assert gen.max_context_tokens == model.config.max_position_embeddings == 1024
    long = {"id": "long", "prompt_ids": [10] * 1020}
    loop = AgentLoop(gen, lambda rec: SearchEnv(_NoDocs()), max_new_tokens_per_turn=12, max_turns=3)
    [traj] = loop.run([long], seed=0)
    assert len(traj.response_ids) == 4 and traj.finish_reason == "context"  # 1024 - 1020 tokens of room
    full = {"id": "full", "prompt_ids": [10] * 1024}
    [empty] = loop.run([full], seed=0)
    assert empty.response_ids == [] and empty.finish_reason == "context"
    strict = AgentLoop(gen, lambda rec: SearchEnv(_NoDocs()), on_context_overflow="error")
    with pytest.raises(ValueError, match="record 'full'.*no room under max_context_tokens=1024"):
        strict.run([full])
    from shared.generation import SamplingParams

    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=1, logprobs=True)
    short, cut, none = generate_trajectories(gen, [{"prompt": "Q: 1+1=?"}, long, full], 1, params)
    assert short.finish_reason != "context" and len(cut.response_ids) == 4 and cut.finish_reason == "context"
    assert none.response_ids == [] and none.finish_reason == "context"
    with pytest.raises(ValueError, match="record 'full': prompt of 1024 tokens"):
        generate_trajectories(gen, [full], 1, params, on_context_overflow="error")


class _NoDocs:
    def retrieve(self, queries, topk=3):
        return [[] for _ in queries]


def test_episode_ends_on_any_eos_id_of_a_list(tiny_qwen2_dir, tok):
    # scripted: the turn ends with <|im_end|>, which the generator lists among its end ids (as chat models do)
    im_end = tok.convert_tokens_to_ids(IM_END)
    ids = tok("no action", add_special_tokens=False)["input_ids"] + [im_end]
    gen = Script(tok, [ids, ids], eos_token_ids={tok.eos_token_id, im_end})
    [traj] = AgentLoop(gen, lambda rec: SearchEnv(_NoDocs()), max_turns=3).run([{"prompt": "Q"}])
    assert traj.finish_reason == "eos" and traj.metadata["num_turns"] == 1 and len(gen.turns) == 1
    # real model: the generation config's eos is a list; the generator stops on its second id and so does the loop
    model, mtok = load_model(tiny_qwen2_dir, device="cpu")
    from shared.generation import SamplingParams

    first = HFGenerator(model, mtok).generate(["Q"], SamplingParams(max_new_tokens=1, temperature=0))[0][0]
    model.generation_config.eos_token_id = [mtok.eos_token_id, first.token_ids[0]]
    hf = HFGenerator(model, mtok)
    assert hf.eos_token_ids == {mtok.eos_token_id, first.token_ids[0]}
    [traj] = AgentLoop(hf, lambda rec: SearchEnv(_NoDocs()), max_turns=3, temperature=0.0).run([{"prompt": "Q"}])
    assert traj.response_ids == first.token_ids and traj.finish_reason == "eos"


def test_bad_programs_are_named(tok):
    def no_start(ep):
        yield GenRequest("p", 4)

    with pytest.raises(KeyError, match="role 'p' has no trajectory; call ep.start"):
        MultiRoleDriver({"p": Script(tok, ["a"])}).run(no_start, [{"prompt": "x"}])

    def wrong_role(ep):
        ep.start("q", "x")
        yield GenRequest("q", 4)

    with pytest.raises(KeyError, match="unknown role 'q'"):
        MultiRoleDriver({"p": Script(tok, ["a"])}).run(wrong_role, [{"prompt": "x"}])

    def not_a_request(ep):
        ep.start("p", "x")
        yield "generate please"

    with pytest.raises(TypeError, match="must yield GenRequest"):
        MultiRoleDriver({"p": Script(tok, ["a"])}).run(not_a_request, [{"prompt": "x"}])
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1"):
        GenRequest("p", 0)
    with pytest.raises(ValueError, match="1 group_ids for 2 records"):
        MultiRoleDriver({"p": Script(tok, [])}).run(not_a_request, [{}, {}], group_ids=[1])
