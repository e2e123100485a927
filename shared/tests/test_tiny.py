"""Tests for shared.modeling.tiny: offline tokenizers (char and BPE) and tiny Qwen2/Llama/T5/Qwen2-VL fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from shared.modeling.tiny import EXTRA_TAGS, TAGS, build_tokenizer, cached_tiny, tag_tokens, tiny_causal_lm
from transformers import AutoTokenizer

ARITH_PROMPT = "Q: 43+9-6=?\nA: "
ARITH_TARGET = "43+9=52. 52-6=46. \\boxed{46}"


def test_char_tokenizer_is_character_level(tiny_tokenizer):
    ids = tiny_tokenizer(ARITH_PROMPT + ARITH_TARGET, add_special_tokens=False).input_ids
    assert len(ids) == len(ARITH_PROMPT + ARITH_TARGET)  # one token per character
    assert tiny_tokenizer.decode(ids) == ARITH_PROMPT + ARITH_TARGET
    assert tiny_tokenizer.convert_ids_to_tokens(tiny_tokenizer("7").input_ids) == ["7"]
    for tag in TAGS[:6]:
        assert tiny_tokenizer.decode(tiny_tokenizer(tag, add_special_tokens=False).input_ids) == tag


def test_special_tokens_and_chat_template(tiny_tokenizer):
    tok = tiny_tokenizer
    assert {tok.pad_token, tok.eos_token, tok.bos_token, tok.unk_token} == {
        "<|pad|>", "<|endoftext|>", "<|bos|>", "<|unk|>"}
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id}) == 3
    text = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(text, add_special_tokens=False).input_ids
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids


def test_bpe_tokenizer_roundtrip(tmp_path):
    texts = ["the capital of france is paris", "who wrote hamlet? shakespeare wrote hamlet"] * 20
    tok = build_tokenizer(texts, kind="bpe", vocab_size=300)
    tok.save_pretrained(tmp_path)
    back = AutoTokenizer.from_pretrained(tmp_path)
    sample = "the capital <search>paris</search> <answer>x</answer>\nnew line"
    assert back(sample).input_ids == tok(sample).input_ids
    assert back.decode(back(sample).input_ids) == sample
    # tags are single tokens in BPE; merges make frequent words shorter than their characters
    assert len(tok("<search>", add_special_tokens=False).input_ids) == 1
    assert len(tok("capital", add_special_tokens=False).input_ids) < len("capital")


def test_bpe_needs_texts_and_kind_checked():
    with pytest.raises(ValueError, match="training texts"):
        build_tokenizer(kind="bpe")
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        build_tokenizer(kind="word")


def test_qwen2_fixture_reloads_with_same_tokenisation(tiny_qwen2_dir):
    from transformers import AutoModelForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    assert tok(ARITH_PROMPT).input_ids == build_tokenizer()(ARITH_PROMPT).input_ids
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.45e6 < n_params < 0.6e6  # hidden 128, 2 layers, ffn 512, tied embeddings
    assert model.config.hidden_size == 128 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tok)


def test_builders_are_seeded(tmp_path, tiny_qwen2_dir):
    from transformers import AutoModelForCausalLM

    again = tiny_causal_lm(tmp_path / "again", seed=0)
    other = tiny_causal_lm(tmp_path / "other", seed=1)
    w0 = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir).model.layers[0].mlp.up_proj.weight
    w1 = AutoModelForCausalLM.from_pretrained(again).model.layers[0].mlp.up_proj.weight
    w2 = AutoModelForCausalLM.from_pretrained(other).model.layers[0].mlp.up_proj.weight
    assert torch.equal(w0, w1)
    assert not torch.equal(w0, w2)


def test_llama_and_t5_fixtures(tiny_llama_dir, tiny_t5_dir):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    llama = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert llama.config.model_type == "llama"
    t5 = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5_dir)
    tok = AutoTokenizer.from_pretrained(tiny_t5_dir)
    assert t5.config.decoder_start_token_id == tok.pad_token_id
    assert (t5.config.d_model, t5.config.d_ff, t5.config.num_layers, t5.config.num_decoder_layers) == (128, 512, 3, 3)
    enc = tok(["abc"], return_tensors="pt")
    out = t5(**enc, labels=tok(["xy"], return_tensors="pt").input_ids)
    assert torch.isfinite(out.loss)


def test_qwen2_vl_fixture_processes_small_images(tiny_qwen2_vl_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_qwen2_vl_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen2_vl_dir)
    text_cfg = model.config.text_config
    head_dim = text_cfg.hidden_size // text_cfg.num_attention_heads
    assert sum(text_cfg.rope_parameters["mrope_section"]) == head_dim // 2
    img = Image.fromarray((np.random.RandomState(0).rand(56, 56, 3) * 255).astype("uint8"))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what?"}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[img], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((inputs["input_ids"] == image_id).sum()) == 4  # 56 px -> 4x4 patches -> 2x2 merged tokens
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], len(processor.tokenizer))


def test_cached_tiny_reuses_directory(tiny_root, tiny_qwen2_dir):
    assert cached_tiny("qwen2", tiny_root) == tiny_qwen2_dir
    with pytest.raises(ValueError, match="unknown tiny model kind"):
        cached_tiny("gpt9", tiny_root)


def test_tokenizers_roundtrip_through_qwen2_model_dirs(tmp_path):
    # AutoTokenizer rebuilds qwen2 folders as Qwen2Tokenizer: both kinds must tokenise identically after reload.
    texts = ["café au lait <search>x</search>", "the quick brown fox"] * 10
    sample = "café <search>fox</search>\n <answer>lait</answer>"
    for kind in ("char", "bpe"):
        tok = build_tokenizer(texts, kind=kind, vocab_size=300)
        path = tiny_causal_lm(tmp_path / kind, tokenizer=tok, hidden=16, layers=1, heads=2, ffn=32)
        back = AutoTokenizer.from_pretrained(path)
        assert back(sample).input_ids == tok(sample).input_ids, kind
        assert back.decode(back(sample).input_ids) == sample


def test_extra_tags_are_single_tokens_of_both_kinds_and_survive_reload(tmp_path):
    texts = ["the capital of france is paris <search>x</search>", "who verified it"] * 10
    sample = "x <verify>yes</verify><end> <q1>who</q1><a1>Ann</a1>\n<tool_response>{}</tool_response><Update>u</Update>"
    for kind in ("char", "bpe"):
        plain = build_tokenizer(texts, kind=kind, vocab_size=300)
        tok = build_tokenizer(texts, kind=kind, vocab_size=300, extra_tags=EXTRA_TAGS)
        assert len(tok) == len(plain) + len(EXTRA_TAGS), kind
        # ids of the plain vocabulary are unchanged: the tags come after it
        assert tok("the capital", add_special_tokens=False).input_ids == plain("the capital", add_special_tokens=False).input_ids
        for tag in EXTRA_TAGS:
            ids = tok(tag, add_special_tokens=False).input_ids
            assert len(ids) == 1 and ids[0] >= len(plain), (kind, tag)
        path = tiny_causal_lm(tmp_path / kind, tokenizer=tok, hidden=16, layers=1, heads=2, ffn=32)
        back = AutoTokenizer.from_pretrained(path)
        assert back(sample).input_ids == tok(sample).input_ids, kind
        assert back.decode(back(sample).input_ids) == sample


def test_extra_tags_by_name_match_adding_tokens_by_hand():
    # matchtir adds its tool-response tags after building: extra_tags gives the same vocabulary
    texts = ["call <tool_call>f(x)</tool_call> then read it"] * 20
    by_hand = build_tokenizer(texts, kind="bpe", vocab_size=300)
    by_hand.add_tokens(["<tool_response>", "</tool_response>"])
    assert build_tokenizer(texts, kind="bpe", vocab_size=300, extra_tags=["tool_response"]).get_vocab() == by_hand.get_vocab()
    assert tag_tokens(["verify", "<end>", "verify", "<search>"]) == ["<verify>", "</verify>", "<end>", "<search>"]
    with pytest.raises(ValueError, match="not a tag name"):
        build_tokenizer(extra_tags=["two words"])
    # tags already in TAGS keep their place in a BPE vocabulary
    assert len(build_tokenizer(texts, kind="bpe", vocab_size=300, extra_tags=["search"])) == len(by_hand) - 2
