"""Per-token entropies equal a hand computation from a forward pass of the tiny model (HF backend; the vLLM top-k
approximation on hand numbers), they ride in trajectories aligned like log-probs, and tag contents map to token
ranges of hand-built trajectories without re-tokenising (char and BPE tokenizers, multi-byte characters)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from shared.generation import HFGenerator, SamplingParams
from shared.generation.vllm import completion_from_vllm
from shared.modeling import load_model
from shared.modeling.tiny import build_tokenizer
from shared.rollout.agent_loop import generate_trajectories
from shared.rollout.driver import GenRequest, MultiRoleDriver
from shared.rollout.spans import Segment, TagSpan, tag_token_spans, token_char_offsets
from shared.rollout.trajectory import Trajectory, TrajectoryError


@pytest.fixture(scope="module")
def model_tok(tiny_qwen2_dir):
    return load_model(tiny_qwen2_dir, device="cpu")


def _hand_entropies(model, prompt_ids, token_ids, temperature):
    """H_t = logsumexp(z) - sum_i softmax(z)_i z_i with z = logits / T at the position each token was drawn from."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + token_ids])).logits[0].double()
    p = len(prompt_ids)
    out = []
    for row in logits[p - 1 : p - 1 + len(token_ids)]:
        z = row / temperature
        lse = torch.logsumexp(z, -1)
        probs = torch.exp(z - lse)
        out.append(float(lse - (probs * z).sum()))
    return out


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_hf_entropies_equal_a_hand_computation(model_tok, temperature):
    model, tok = model_tok
    gen = HFGenerator(model, tok)
    params = SamplingParams(max_new_tokens=8, temperature=temperature, seed=4, logprobs=True, entropy=True)
    for (comp,) in gen.generate(["Q: 12+7=?\nA: ", "x"], params):
        hand = _hand_entropies(model, comp.prompt_token_ids, comp.token_ids, temperature or 1.0)
        assert comp.entropies == pytest.approx(hand, abs=1e-4)
        assert all(0.0 < h <= math.log(model.config.vocab_size) + 1e-6 for h in hand)
    plain = gen.generate(["x"], SamplingParams(max_new_tokens=2, temperature=0))[0][0]
    assert plain.entropies is None  # only when asked


def test_entropies_ride_in_trajectories_aligned_like_logprobs(model_tok):
    model, tok = model_tok
    gen = HFGenerator(model, tok)

    def two_turns(ep):
        ep.start("p", "Q: ")
        first = yield GenRequest("p", 5, temperature=0.7, entropy=True)
        ep.observe("p", " | ")
        yield GenRequest("p", 5, temperature=0.7, entropy=True)
        return first

    out = MultiRoleDriver({"p": gen}).run(two_turns, [{"prompt": "-"}], seed=2)
    [traj] = out["p"]
    (s0, e0), (s1, e1) = traj.turn_spans
    assert len(traj.entropies) == len(traj.response_ids) == len(traj.old_logprobs)
    assert traj.entropies[e0:s1] == [0.0] * (s1 - e0)  # observation tokens
    context = traj.prompt_ids + traj.response_ids[:s1]
    assert traj.entropies[s1:e1] == pytest.approx(
        _hand_entropies(model, context, traj.response_ids[s1:e1], 0.7), abs=1e-4)
    params = SamplingParams(max_new_tokens=4, temperature=1.0, n=2, seed=0, logprobs=True, entropy=True)
    trajs = generate_trajectories(gen, [{"prompt": "Q: "}], 2, params)
    assert all(len(t.entropies) == len(t.response_ids) and min(t.entropies) > 0 for t in trajs)
    with pytest.raises(TrajectoryError, match="2 entropies for 1 token ids"):
        Trajectory(prompt_ids=[1]).append([3], policy=True, entropies=[0.1, 0.2])


def test_vllm_entropy_is_the_top_k_sum():
    lp = [{5: SimpleNamespace(logprob=-0.1), 7: SimpleNamespace(logprob=-2.5)}]
    out = SimpleNamespace(text="a", token_ids=[5], finish_reason="length", stop_reason=None, logprobs=lp)
    comp = completion_from_vllm(out, SamplingParams(max_new_tokens=1, entropy=True))
    # -(e^-0.1 * -0.1 + e^-2.5 * -2.5) = 0.0904837 + 0.2052125
    assert comp.entropies == pytest.approx([0.2956962], abs=1e-6)
    assert comp.logprobs is None  # not asked for


def _traj(tok, pieces):
    t = Trajectory(prompt_ids=[1])
    for text, policy in pieces:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        t.append(ids, policy=policy, logprobs=[-0.1] * len(ids) if policy else None)
        t.text += text
    return t


def test_tag_spans_and_segments_on_a_char_tokenizer():
    tok = build_tokenizer(["é"], kind="char")
    t = _traj(tok, [("<think>ab</think>", True), ("<information>dé</information>", False),
                    ("<think></think><answer>c", True)])
    # one token per character; "é" is two byte tokens (2 characters before it in the information block)
    assert tag_token_spans(t, tok, ["think"]) == [TagSpan("think", 7, 9, "ab"), TagSpan("think", 54, 54, "")]
    assert tag_token_spans(t, tok, ["think", "information"], content_only=False)[:2] == [
        TagSpan("think", 0, 17, "<think>ab</think>"), TagSpan("information", 17, 47, "<information>dé</information>")]
    # content "dé": d at token 30, é = tokens 31 and 32 (both bytes belong to the span)
    assert tag_token_spans(t, tok, "information") == [TagSpan("information", 30, 33, "dé")]
    assert tag_token_spans(t, tok, ["answer"]) == []  # unclosed: skipped
    assert t.segments(tok) == [Segment("policy", 0, 17, "<think>ab</think>"),
                               Segment("observation", 17, 47, "<information>dé</information>"),
                               Segment("policy", 47, 71, "<think></think><answer>c")]
    text, offsets = token_char_offsets(tok, t.response_ids)
    assert text == "<think>ab</think><information>dé</information><think></think><answer>c"
    assert offsets[31] == offsets[32] == 31 and offsets[33] == 32  # the partial byte adds no character


def test_tag_spans_on_a_bpe_tokenizer_with_tag_tokens():
    tok = build_tokenizer(["<think>ab</think> verify the response é"] * 4, kind="bpe", vocab_size=300)
    t = _traj(tok, [("<think>ab</think>", True), ("<information>x</information>", False)])
    think, close = tok.convert_tokens_to_ids(["<think>", "</think>"])
    assert t.response_ids[0] == think and t.response_ids[3] == close  # tags are single tokens: ids 1..3 are "ab"
    [span] = tag_token_spans(t, tok, ["think"])
    assert span == TagSpan("think", 1, 3, "ab")
    assert t.loss_mask[span.start:span.end] == [1, 1]
    [info] = tag_token_spans(t, tok, ["information"], content_only=False)
    assert (info.start, info.end) == (4, len(t.response_ids)) and t.loss_mask[info.start] == 0
