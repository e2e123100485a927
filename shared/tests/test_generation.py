"""Tests for shared.generation's HF backend: batching with left padding, exact logprobs, stop strings, sampling."""

from __future__ import annotations

import math

import pytest
import torch
from shared.generation import HFGenerator, SamplingParams, filter_logits, make_generator
from shared.modeling import load_model

PROMPTS = ["Q: 43+9-6=?\nA: ", "Q: 1+1=?\nA: ", "x"]


@pytest.fixture(scope="module")
def model_tok(tiny_qwen2_dir):
    return load_model(tiny_qwen2_dir, device="cpu")


@pytest.fixture(scope="module")
def gen(model_tok):
    model, tok = model_tok
    return HFGenerator(model, tok, batch_size=8)


def _forward_logprobs(model, prompt_ids, token_ids, temperature=1.0):
    ids = torch.tensor([prompt_ids + token_ids])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
    lp = torch.log_softmax(logits / temperature, dim=-1)
    p = len(prompt_ids)
    return lp[p - 1:-1].gather(-1, torch.tensor(token_ids)[:, None]).squeeze(-1), lp[p - 1:-1]


def test_greedy_matches_hf_generate_and_is_batch_independent(gen, model_tok):
    model, tok = model_tok
    params = SamplingParams(max_new_tokens=12, temperature=0)
    batched = gen.generate(PROMPTS, params)
    assert [len(r) for r in batched] == [1, 1, 1]
    for prompt, (comp,) in zip(PROMPTS, batched):
        alone = gen.generate([prompt], params)[0][0]
        assert comp.token_ids == alone.token_ids  # left padding does not change a row's continuation
        enc = tok([prompt], return_tensors="pt")
        ref = model.generate(**enc, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
        assert comp.token_ids == ref[0, enc.input_ids.shape[1]:].tolist()
        assert comp.finish_reason == "length" and len(comp.token_ids) == 12
        assert comp.text == tok.decode(comp.token_ids, skip_special_tokens=True)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_match_training_forward(gen, model_tok, temperature):
    model, _ = model_tok
    params = SamplingParams(max_new_tokens=10, temperature=temperature, seed=3, logprobs=True, top_logprobs=4)
    for (comp,) in gen.generate(PROMPTS, params):
        ref, full = _forward_logprobs(model, comp.prompt_token_ids, comp.token_ids, temperature or 1.0)
        assert torch.allclose(torch.tensor(comp.logprobs), ref, atol=1e-5)
        assert all(len(t) == 4 for t in comp.top_logprobs)
        for pos, top in enumerate(comp.top_logprobs):
            values = [v for _, v in top]
            assert values == sorted(values, reverse=True)
            best = torch.topk(full[pos], 4)
            assert [i for i, _ in top] == best.indices.tolist()
            assert torch.allclose(torch.tensor(values), best.values, atol=1e-5)
        if temperature == 0:  # greedy picks the top candidate
            assert [t[0][0] for t in comp.top_logprobs] == comp.token_ids


def test_stop_string_cuts_after_first_occurrence(gen, model_tok):
    _, tok = model_tok
    free = gen.generate([PROMPTS[0]], SamplingParams(max_new_tokens=30, temperature=1.0, seed=11))[0][0]
    stop = free.text[6:8]
    expected = free.text[: free.text.find(stop) + len(stop)]
    cut = gen.generate([PROMPTS[0]], SamplingParams(max_new_tokens=30, temperature=1.0, seed=11,
                                                    stop=("never-there", stop)))[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == expected and cut.text.endswith(stop)
    # token ids end at the token that completes the stop string
    assert stop in tok.decode(cut.token_ids)
    assert stop not in tok.decode(cut.token_ids[:-1])
    assert cut.token_ids == free.token_ids[: len(cut.token_ids)]


def test_eos_finish(tiny_qwen2_dir):
    model, tok = load_model(tiny_qwen2_dir, device="cpu")
    first = HFGenerator(model, tok).generate(["12"], SamplingParams(max_new_tokens=5, temperature=0))[0][0]
    model.generation_config.eos_token_id = [tok.eos_token_id, first.token_ids[0]]  # make its first pick an end token
    done = HFGenerator(model, tok).generate(["12"], SamplingParams(max_new_tokens=5, temperature=0))[0][0]
    assert done.finish_reason == "eos" and done.token_ids == first.token_ids[:1]
    full = HFGenerator(model, tok).generate(["12"], SamplingParams(max_new_tokens=5, temperature=0, ignore_eos=True))
    assert full[0][0].finish_reason == "length" and full[0][0].token_ids == first.token_ids


def test_n_samples_seeded(gen):
    params = SamplingParams(max_new_tokens=16, temperature=1.0, n=3, seed=5)
    a = gen.generate(PROMPTS[:2], params)
    b = gen.generate(PROMPTS[:2], params)
    assert [len(r) for r in a] == [3, 3]
    assert [[c.token_ids for c in r] for r in a] == [[c.token_ids for c in r] for r in b]
    assert len({tuple(c.token_ids) for c in a[0]}) > 1  # independent draws differ
    other = gen.generate(PROMPTS[:2], SamplingParams(max_new_tokens=16, temperature=1.0, n=3, seed=6))
    assert [c.token_ids for c in other[0]] != [c.token_ids for c in a[0]]


def test_top_k_one_and_tiny_top_p_are_greedy(gen):
    greedy = gen.generate(PROMPTS, SamplingParams(max_new_tokens=8, temperature=0))
    k1 = gen.generate(PROMPTS, SamplingParams(max_new_tokens=8, temperature=1.3, top_k=1, seed=0))
    p0 = gen.generate(PROMPTS, SamplingParams(max_new_tokens=8, temperature=1.3, top_p=1e-6, seed=0))
    ids = [r[0].token_ids for r in greedy]
    assert [r[0].token_ids for r in k1] == ids and [r[0].token_ids for r in p0] == ids


def test_filter_logits_hand_values():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    inf = float("-inf")
    assert filter_logits(logits, 2, 1.0).tolist() == [[2.0, 1.0, inf, inf]]
    # softmax = .644 .237 .087 .032: nucleus 0.7 needs two tokens, 0.6 one
    assert filter_logits(logits, 0, 0.7).tolist() == [[2.0, 1.0, inf, inf]]
    assert filter_logits(logits, 0, 0.6).tolist() == [[2.0, inf, inf, inf]]
    assert filter_logits(logits, 0, 0.95).tolist() == [[2.0, 1.0, 0.0, inf]]
    assert math.isclose(torch.softmax(logits, -1)[0, 0].item(), 0.6439, abs_tol=1e-4)


def test_token_id_prompts_and_prefix_continuation(gen, model_tok):
    _, tok = model_tok
    params = SamplingParams(max_new_tokens=10, temperature=0)
    by_text = gen.generate(PROMPTS[:1], params)[0][0]
    ids = tok(PROMPTS[0])["input_ids"]
    by_ids = gen.generate([ids], params)[0][0]
    assert by_ids.token_ids == by_text.token_ids
    rest = gen.generate([ids + by_text.token_ids[:4]], SamplingParams(max_new_tokens=6, temperature=0))[0][0]
    assert rest.token_ids == by_text.token_ids[4:]


def test_bad_input(gen):
    assert gen.generate([], SamplingParams(max_new_tokens=4)) == []
    with pytest.raises(ValueError, match="prompt 1 is an empty string"):
        gen.generate(["ok", ""], SamplingParams(max_new_tokens=4))
    with pytest.raises(ValueError, match="token id"):
        gen.generate([[1, 10**9]], SamplingParams(max_new_tokens=4))
    with pytest.raises(ValueError, match="mixes"):
        gen.generate(["a", [1, 2]], SamplingParams(max_new_tokens=4))
    with pytest.raises(ValueError, match="single string"):
        gen.generate("abc", SamplingParams(max_new_tokens=4))
    for bad in [dict(max_new_tokens=0), dict(max_new_tokens=4, temperature=-1), dict(max_new_tokens=4, top_p=0),
                dict(max_new_tokens=4, top_k=-2), dict(max_new_tokens=4, n=0), dict(max_new_tokens=4, stop=("",)),
                dict(max_new_tokens=4, top_logprobs=-1)]:
        with pytest.raises(ValueError, match="SamplingParams"):
            SamplingParams(**bad)


def test_update_weights(tiny_qwen2_dir):
    model, tok = load_model(tiny_qwen2_dir, device="cpu")
    g = HFGenerator(model, tok)
    params = SamplingParams(max_new_tokens=6, temperature=0, logprobs=True)
    before = g.generate(["7+"], params)[0][0]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["model.norm.weight"] = state["model.norm.weight"] * 3.0  # sharper logits: new logprobs
    trained, _ = load_model(tiny_qwen2_dir, device="cpu")
    trained.load_state_dict(state)
    g.update_weights({"base_model.model." + k: v for k, v in state.items()})  # peft-style names accepted
    after = g.generate(["7+"], params)[0][0]
    assert after.logprobs != before.logprobs
    assert torch.allclose(torch.tensor(after.logprobs),
                          _forward_logprobs(trained, after.prompt_token_ids, after.token_ids)[0], atol=1e-5)
    with pytest.raises(ValueError, match="no_such"):
        g.update_weights({"no_such.weight": torch.zeros(1)})
    g.update_weights(trained)
    assert g.model is trained


def test_make_generator(tiny_qwen2_dir, tiny_t5_dir):
    g = make_generator("hf", tiny_qwen2_dir, device="cpu", batch_size=4)
    assert isinstance(g, HFGenerator) and g.batch_size == 4
    assert len(g.generate(["1"], SamplingParams(max_new_tokens=2))[0]) == 1
    with pytest.raises(ValueError, match="unknown generation backend"):
        make_generator("tgi", tiny_qwen2_dir)
    t5, tok = load_model(tiny_t5_dir, kind="seq2seq", device="cpu")
    with pytest.raises(ValueError, match="decoder-only"):
        HFGenerator(t5, tok)


def test_generates_from_lora_model_with_exact_logprobs(tiny_qwen2_dir):
    from shared.modeling import LoraSettings

    model, tok = load_model(tiny_qwen2_dir, device="cpu", lora=LoraSettings(r=4))
    with torch.no_grad():  # move the adapters off identity so the LoRA path matters
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.train()
    g = HFGenerator(model, tok)
    (comp,), (comp2,) = g.generate(PROMPTS[:2], SamplingParams(max_new_tokens=8, temperature=0.9, seed=1,
                                                               logprobs=True))
    assert model.training  # train/eval state restored for the trainer
    model.eval()
    for c in (comp, comp2):
        ref, _ = _forward_logprobs(model, c.prompt_token_ids, c.token_ids, 0.9)
        assert torch.allclose(torch.tensor(c.logprobs), ref, atol=1e-5)
