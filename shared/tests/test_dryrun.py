"""Dry run: meta-device builds count the same parameters as a real build; the memory estimate by hand."""

import pytest
from shared.dryrun import GIB, dry_run_report, meta_model, parameter_count, training_memory

SMALL = dict(model_type="qwen2", vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)


def test_meta_build_counts_like_a_real_build():
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(SMALL)
    real = AutoModelForCausalLM.from_config(AutoConfig.for_model(fields.pop("model_type"), **fields))
    model = meta_model(SMALL)
    assert next(model.parameters()).device.type == "meta"
    assert parameter_count(model) == sum(p.numel() for p in real.parameters())
    # by hand: embeddings 300*64 (tied); per layer q 64*64+64, k,v 64*32+32 each, o 64*64, mlp 3*64*128, 2 norms 64
    per_layer = (64 * 64 + 64) + 2 * (64 * 32 + 32) + 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert parameter_count(model) == 300 * 64 + 2 * per_layer + 64


def test_training_memory_by_hand():
    est = training_memory(10**9, hidden=1000, layers=10, tokens_per_micro_batch=1000)
    assert est.weights_gib == round(2e9 / GIB, 2) and est.gradients_gib == round(2e9 / GIB, 2)
    assert est.optimizer_gib == round(12e9 / GIB, 2) and est.reference_gib == 0.0
    assert est.activations_gib == round(2 * 1000 * 1000 * 10 * 2 / GIB, 2)
    sharded = training_memory(10**9, 1000, 10, 1000, zero_stage=3, shards=8, reference=True, rollout_gib=10.0)
    assert sharded.weights_gib == round(2e9 / 8 / GIB, 2) and sharded.optimizer_gib == round(12e9 / 8 / GIB, 2)
    assert sharded.reference_gib == sharded.weights_gib
    assert sharded.total_gib == pytest.approx((2e9 * 3 + 12e9) / 8 / GIB + 4e7 / GIB + 10.0, abs=0.01)


def test_bad_inputs():
    with pytest.raises(ValueError, match="model_type"):
        meta_model({"hidden_size": 8})
    with pytest.raises(ValueError, match="dtype"):
        training_memory(1, 1, 1, 1, dtype="int3")
    with pytest.raises(ValueError, match="zero_stage"):
        training_memory(1, 1, 1, 1, zero_stage=5)


def test_report_says_it_is_an_estimate():
    report = dry_run_report(SMALL, 256, gpu_gib=1.0)
    assert report["fits"] and report["params"] == parameter_count(meta_model(SMALL))
    assert "estimate" in report["note"]
