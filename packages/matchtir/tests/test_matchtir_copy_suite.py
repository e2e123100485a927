"""The copy suite (argument values verbatim in the request) and parallel call turns: determinism and splits, gold
answers from the tools, gold steps grouped into one turn, the masked SFT example of a parallel turn (the very ids
and mask a rollout of the gold turns produces), and a scripted parallel rollout (two calls in one eos-ended turn)
scored by the matching reward."""

import pytest
from benchmarks.synthetic.tool_library import FUNCTIONS
from matchtir.config import DataSettings
from matchtir.copy_suite import COPY_TOOLS, copy_samples
from matchtir.data import call_text, suite_name, suite_samples, to_record
from matchtir.env import make_env_factory
from matchtir.rewards import RewardSettings, make_reward_fn
from matchtir.train import gold_steps, sft_examples
from shared.generation import Completion
from shared.modeling.tiny import build_tokenizer
from shared.rollout.agent_loop import AgentLoop


def test_copy_samples_values_verbatim_answers_from_tools_and_disjoint_splits():
    train = copy_samples(30, seed=0, split="train")
    assert train == copy_samples(30, seed=0, split="train")
    assert [len(s["gold_trace"]) for s in train[:6]] == [1, 2, 3, 1, 2, 3]
    for s in train:
        request = s["messages"][0]["content"]
        assert request.startswith("Find: ") and request.endswith(".")
        assert [t["function"]["name"] for t in s["tools"]] == COPY_TOOLS
        for call in s["gold_trace"]:
            assert call["step"] == 0
            for value in call["parameters"].values():
                assert str(value) in request
        results = [FUNCTIONS[c["name"]](**c["parameters"]) for c in s["gold_trace"]]
        assert s["answer"] == ", ".join(str(r) for r in results)
    test = copy_samples(30, seed=0, split="test")
    requests = {s["messages"][0]["content"] for s in train}
    assert not requests & {s["messages"][0]["content"] for s in test}
    assert [len(s["gold_trace"]) for s in copy_samples(4, seed=1, calls=[2])] == [2, 2, 2, 2]
    small = [v for s in copy_samples(40, seed=0, max_number=9) for c in s["gold_trace"]
             for v in c["parameters"].values() if isinstance(v, int)]
    assert small and all(2 <= v <= 9 for v in small)


def test_copy_samples_hand_checked_example():
    s = copy_samples(3, seed=0)[2]
    assert s["messages"][0]["content"] == "Find: 33 plus 99; 35 times 6; temperature in Harborview."
    assert [(c["name"], c["parameters"]) for c in s["gold_trace"]] == [
        ("add", {"a": 33, "b": 99}), ("multiply", {"a": 35, "b": 6}), ("get_temperature", {"city": "Harborview"})]
    assert s["answer"] == "132, 210, 19"  # 33 + 99, 35 * 6, Harborview's 19 C in the tool's table


def test_bad_copy_settings_fail_clearly():
    with pytest.raises(ValueError, match="calls must be a non-empty list of call counts in 1..3"):
        copy_samples(3, calls=[4])
    with pytest.raises(ValueError, match="max_number must be >= 2"):
        copy_samples(3, max_number=1)
    with pytest.raises(ValueError, match="split must be"):
        copy_samples(3, split="dev")
    with pytest.raises(ValueError, match="unknown data.suite 'maze'"):
        suite_samples(DataSettings(suite="maze"), "train")
    d = DataSettings(suite="copy", train_tasks=5, test_tasks=3, calls=[1, 3])
    assert len(suite_samples(d, "test")) == 3 and "copy suite (5 train / 3 test tasks, calls 1,3, numbers 2..99)" in suite_name(d)


def test_gold_steps_group_parallel_calls():
    trace = [{"name": "a", "parameters": {"x": 1}, "step": 0}, {"name": "b", "parameters": {}, "step": 0},
             {"name": "c", "parameters": {}, "step": 1}, {"name": "d", "parameters": {}}, {"name": "e", "parameters": {}}]
    assert [[c["name"] for c in t] for t in gold_steps(trace, parallel=True)] == [["a", "b"], ["c"], ["d"], ["e"]]
    assert [[c["name"] for c in t] for t in gold_steps(trace, parallel=False)] == [["a"], ["b"], ["c"], ["d"], ["e"]]
    assert gold_steps(trace, True)[0][0] == {"name": "a", "arguments": {"x": 1}}


def _trained_spans(tok, example):
    """Decoded runs of mask-1 tokens of a masked SFT example."""
    spans, run = [], []
    for i, m in zip(example["input_ids"], example["completion_mask"]):
        if m:
            run.append(i)
        elif run:
            spans.append(tok.decode(run))
            run = []
    return spans + ([tok.decode(run)] if run else [])


def test_parallel_sft_example_puts_all_calls_in_one_trained_turn():
    s = copy_samples(3, seed=0)[2]  # three calls
    tok = build_tokenizer(kind="char")
    [ex] = sft_examples([s], tok, "signatures", make_env_factory(), parallel=True)
    eos = tok.eos_token
    calls = "".join(call_text(c["name"], c["parameters"]) for c in s["gold_trace"])
    assert _trained_spans(tok, ex) == [calls + eos, f"<answer>{s['answer']}</answer>{eos}"]
    untrained = tok.decode([i for i, m in zip(ex["input_ids"], ex["completion_mask"]) if not m])
    assert untrained.startswith("<|im_start|>system") and untrained.count("<tool_response>") == 3
    [one_per_turn] = sft_examples([s], tok, "signatures", make_env_factory(), parallel=False)
    assert len(_trained_spans(tok, one_per_turn)) == 4  # three call turns and the answer


class EosScripted:
    """Scripted turns; call turns end with the eos token as a trained policy writes them."""

    def __init__(self, tokenizer, turns):
        self.tokenizer, self.turns = tokenizer, list(turns)

    def generate(self, prompts, params):
        text, eos = self.turns.pop(0)
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        ids += [self.tokenizer.eos_token_id] if eos else []
        return [[Completion(text=text, token_ids=ids, logprobs=[-0.1] * len(ids), finish_reason="stop")]
                for _ in prompts]


def test_sft_example_is_the_gold_rollout_token_for_token():
    """A scripted rollout of the gold turns (parallel calls, eos-ended turns) yields the example's ids and mask:
    what the warm start trains on is what RL samples and scores."""
    tok = build_tokenizer(kind="char")
    s = copy_samples(3, seed=0)[2]
    calls = "".join(call_text(c["name"], c["parameters"]) for c in s["gold_trace"])
    loop = AgentLoop(EosScripted(tok, [(calls, True), (f"<answer>{s['answer']}</answer>", True)]), make_env_factory(),
                     max_turns=4, max_new_tokens_per_turn=400, max_response_tokens=4000, parallel_tags=("tool_call",))
    rec = to_record(s, "signatures")
    [traj] = loop.run([rec])
    [ex] = sft_examples([s], tok, "signatures", make_env_factory(), parallel=True)
    assert ex["input_ids"] == traj.prompt_ids + traj.response_ids
    assert ex["completion_mask"] == [0] * len(traj.prompt_ids) + traj.loss_mask


def test_parallel_rollout_scores_both_calls_of_one_turn():
    tok = build_tokenizer(kind="char")
    s = copy_samples(3, seed=0)[1]  # two calls
    g0, g1 = s["gold_trace"]
    wrong = {k: (v + 1 if isinstance(v, int) else "Nowhere") for k, v in g1["parameters"].items()}
    turns = [(call_text(g0["name"], g0["parameters"]) + call_text(g1["name"], wrong), True),
             (f"<answer>{s['answer']}</answer>", False)]
    loop = AgentLoop(EosScripted(tok, turns), make_env_factory(), max_turns=4, max_new_tokens_per_turn=400,
                     max_response_tokens=4000, parallel_tags=("tool_call",))
    rec = to_record(s, "signatures")
    [traj] = loop.run([rec])
    assert traj.finish_reason == "answer" and len(traj.turn_spans) == 2
    assert traj.text.count("<tool_response>") == 2
    reward_fn = make_reward_fn(RewardSettings(scheme="matching"), tok)
    assert reward_fn([traj], [rec]) == [1.0]
    # turn 1: mean of S = 1 (exact) and S of the wrong-valued call = (1 + J=1 + 0 equal values) / (2 + #keys)
    k = len(g1["parameters"])
    assert traj.turn_rewards[0] == pytest.approx((1.0 + 2 / (2 + k)) / 2)
    scores = traj.metadata["scores"]
    assert scores["solve_f1"] == pytest.approx(0.5) and scores["answer_f1"] == 1.0
