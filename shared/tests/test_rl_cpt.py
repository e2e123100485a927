"""Continual pre-training: packing by hand, the collator's masks, bad input, and loss falling on a tiny model."""

from __future__ import annotations

import pytest
import torch
from shared.rl.cpt import LMSettings, lm_blocks, pack_token_ids, perplexity, run_lm, tokenize_texts

EOS = 99


def _docs():
    t1, t2, t3 = [1, 2, 3, 4, 5], [11, 12, 13, 14, 15, 16, 17], [21, 22, 23]
    return t1, t2, t3


def test_packing_by_hand():
    # lengths 5, 7, 3 plus eos = 18 tokens; blocks of 8: [t1+eos, t2[:2]], [t2[2:]+eos, t3[:2]], rest t3[2:]+eos
    t1, t2, t3 = _docs()
    seqs = [t1 + [EOS], t2 + [EOS], t3 + [EOS]]
    assert pack_token_ids(seqs, 8) == [t1 + [EOS] + t2[:2], t2[2:] + [EOS] + t3[:2]]
    assert pack_token_ids(seqs, 8, keep_last=True)[-1] == [23, EOS]
    assert pack_token_ids(seqs, 18) == [t1 + [EOS] + t2 + [EOS] + t3 + [EOS]]
    assert pack_token_ids(seqs, 19) == []
    with pytest.raises(ValueError, match="block_size must be >= 2"):
        pack_token_ids(seqs, 1)


def test_collator_masks_and_labels_by_hand():
    """The blocks as SFTTrainer's collator batches them: a full block and the kept short one."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    t1, t2, t3 = _docs()
    blocks = pack_token_ids([t1 + [EOS], t2 + [EOS], t3 + [EOS]], 8, keep_last=True)
    batch = DataCollatorForLanguageModeling(pad_token_id=0)([{"input_ids": b} for b in blocks[1:]])
    assert batch["input_ids"].tolist() == [[13, 14, 15, 16, 17, EOS, 21, 22], [23, EOS, 0, 0, 0, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 8, [1, 1, 0, 0, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[13, 14, 15, 16, 17, EOS, 21, 22], [23, EOS] + [-100] * 6]


def test_tokenize_texts_and_blocks(tiny_tokenizer):
    ids = tokenize_texts(tiny_tokenizer, ["ab", "c"])
    assert ids[0][-1] == tiny_tokenizer.eos_token_id and len(ids[0]) == 3 and len(ids[1]) == 2
    stream = [t for x in tokenize_texts(tiny_tokenizer, ["abcdef", "gh"]) for t in x]  # 7 + 3 = 10 tokens
    assert lm_blocks(tiny_tokenizer, ["abcdef", "gh"], LMSettings(block_size=4)) == [stream[:4], stream[4:8]]
    unpacked = lm_blocks(tiny_tokenizer, ["abcdef", "gh"], LMSettings(block_size=4, packing=False))
    assert [len(x) for x in unpacked] == [4, 3]
    with pytest.raises(ValueError, match=r"filings: text 1 is not a non-empty string"):
        tokenize_texts(tiny_tokenizer, ["ok", "  "], "filings")
    with pytest.raises(ValueError, match="make no full block of 64"):
        lm_blocks(tiny_tokenizer, ["short"], LMSettings(block_size=64))


def test_cpt_loss_falls_on_a_tiny_model(tiny_qwen2_dir, tiny_tokenizer, tmp_path):
    from shared.modeling import load_model

    torch.manual_seed(0)
    model, tok = load_model(str(tiny_qwen2_dir), kind="causal", dtype="float32", device="cpu")
    texts = [f"Kalo Corp reported revenue of {40 + i} in {2010 + i}." for i in range(24)]
    before = perplexity(model, tok, texts, block_size=64)
    settings = LMSettings(output_dir=str(tmp_path / "cpt"), steps=40, lr=3e-3, batch_size=8, block_size=64,
                          warmup_steps=2, logging_steps=5)
    model, history = run_lm(model, tok, texts, settings)
    losses = [h["loss"] for h in history if "loss" in h]
    after = perplexity(model, tok, texts, block_size=64)
    assert len(losses) >= 4 and losses[-1] < 0.6 * losses[0]
    assert after < 0.5 * before
