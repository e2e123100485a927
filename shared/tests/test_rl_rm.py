"""Reward models: batched scoring equals one-by-one scoring, bad input, and training on a toy preference set moves
the held-out ranking of chosen over rejected."""

from __future__ import annotations

import random

import pytest
import torch
from shared.rewards.rm import RewardModel, rm_input_ids
from shared.rl.rm import RMSettings, rm_examples, run_rm


def _pairs(n: int, seed: int) -> list[dict[str, str]]:
    """Toy preferences: a response of vowels is preferred to one of consonants, for any prompt word."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        word = "".join(rng.choice("klmnpqrst") for _ in range(3))
        good = "".join(rng.choice("aeiou") for _ in range(rng.randint(3, 6)))
        bad = "".join(rng.choice("bcdfgh") for _ in range(rng.randint(3, 6)))
        out.append({"id": f"{seed}-{i}", "prompt": f"{word}: ", "chosen": good, "rejected": bad})
    return out


def test_input_ids_match_training_and_scoring(tiny_qwen2_dir):
    rm = RewardModel.load(str(tiny_qwen2_dir), batch_size=3)
    tok = rm.tokenizer
    ids = rm_input_ids(tok, "q: ", "ab")
    assert ids == tok("q: ab" + tok.eos_token)["input_ids"] and ids[-1] == tok.eos_token_id
    assert rm_input_ids(tok, "q: ", "ab" + tok.eos_token) == ids  # eos not doubled
    ex = rm_examples(tok, [{"prompt": "q: ", "chosen": "ab", "rejected": "c"}], max_length=64)[0]
    assert ex["chosen_ids"] == ids
    prompts, responses = ["a: ", "bb: ", "c: ", "dddd: "], ["x", "yy yy", "zzz", "w"]
    batched = rm.score(prompts, responses)  # padded batches of 3 and 1
    single = [rm.score([p], [r])[0] for p, r in zip(prompts, responses)]
    assert batched == pytest.approx(single, abs=1e-5)


def test_bad_input(tiny_qwen2_dir):
    rm = RewardModel.load(str(tiny_qwen2_dir), max_length=8)
    with pytest.raises(ValueError, match="got 2 prompts and 1 responses"):
        rm.score(["a", "b"], ["c"])
    with pytest.raises(ValueError, match=r"pair 0 has \d+ tokens > max_length 8"):
        rm.score(["a long prompt here"], ["and more"])
    with pytest.raises(ValueError, match=r"prefs: record 1 \(id 'b'\) needs a non-empty string field 'rejected'"):
        rm_examples(rm.tokenizer, [{"id": "a", "prompt": "p", "chosen": "x", "rejected": "y"},
                                   {"id": "b", "prompt": "p", "chosen": "x"}], 64, "prefs")
    with pytest.raises(ValueError, match=r"record 0 \(id 'c'\) has \d+ tokens > max_length 4"):
        rm_examples(rm.tokenizer, [{"id": "c", "prompt": "pp", "chosen": "xxxx", "rejected": "y"}], 4)


def test_training_moves_held_out_ranking(tiny_qwen2_dir, tmp_path):
    torch.manual_seed(0)
    rm = RewardModel.load(str(tiny_qwen2_dir))
    train, held_out = _pairs(96, seed=1), _pairs(48, seed=2)
    prompts = [r["prompt"] for r in held_out]

    def margin() -> float:
        chosen = rm.score(prompts, [r["chosen"] for r in held_out])
        rejected = rm.score(prompts, [r["rejected"] for r in held_out])
        return sum(c - r for c, r in zip(chosen, rejected)) / len(held_out)

    acc_before, margin_before = rm.pair_accuracy(held_out), margin()
    settings = RMSettings(output_dir=str(tmp_path / "rm"), steps=40, lr=1e-3, batch_size=16, max_length=64,
                          logging_steps=10)
    model, history = run_rm(rm.model, rm.tokenizer, train, settings)
    rm = RewardModel(model, rm.tokenizer)
    acc_after, margin_after = rm.pair_accuracy(held_out), margin()
    assert any("loss" in h for h in history)
    assert acc_after >= 0.9 and acc_after > acc_before
    assert margin_after > margin_before + 1.0
