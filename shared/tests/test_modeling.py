"""Tests for shared.modeling: load_model for causal / seq2seq / VL fixtures, dtype/device choice, LoRA, bad paths."""

from __future__ import annotations

import pytest
import torch
from shared.modeling import LoraSettings, ModelLoadError, apply_lora, load_model, pick_device, pick_dtype


def test_load_causal_sets_left_padding(tiny_qwen2_dir):
    model, tok = load_model(tiny_qwen2_dir, kind="causal", dtype="float32", device="cpu")
    assert model.training is False
    assert next(model.parameters()).dtype == torch.float32
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    batch = tok(["1+1", "12+34"], return_tensors="pt", padding=True)
    assert batch.input_ids[0, 0].item() == tok.pad_token_id  # shorter row padded on the left


def test_load_bfloat16_and_seq2seq(tiny_llama_dir, tiny_t5_dir):
    model, _ = load_model(tiny_llama_dir, dtype="bfloat16", device="cpu")
    assert next(model.parameters()).dtype == torch.bfloat16
    t5, tok = load_model(tiny_t5_dir, kind="seq2seq", device="cpu")
    assert t5.config.is_encoder_decoder and tok.pad_token_id == t5.config.decoder_start_token_id


def test_load_vl_returns_processor(tiny_qwen2_vl_dir):
    model, processor = load_model(tiny_qwen2_vl_dir, kind="vl", device="cpu")
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"
    assert hasattr(processor, "image_processor") and processor.tokenizer.padding_side == "left"


def test_missing_local_path_is_named(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(ModelLoadError, match="no_such_model") as err:
        load_model(missing)
    assert "cached_tiny" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(tmp_path / "empty")


def test_unreachable_hub_id_is_named(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="nobody-xyz/not-a-model") as err:
        load_model("nobody-xyz/not-a-model")
    assert "local folder" in str(err.value)


def test_pick_dtype_and_device():
    assert pick_dtype("auto", "cpu") == torch.float32
    assert pick_dtype("bf16") == torch.bfloat16 and pick_dtype("float16") == torch.float16
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="unknown dtype"):
        pick_dtype("int3")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
    with pytest.raises(ValueError, match="unknown model kind"):
        load_model("x", kind="audio")
    if not torch.cuda.is_available():
        assert pick_device("auto").type == "cpu"
        with pytest.raises(ModelLoadError, match="no CUDA"):
            pick_device("cuda")


def test_lora_trains_only_adapters(tiny_qwen2_dir):
    model, tok = load_model(tiny_qwen2_dir, device="cpu", lora=LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    # adapters start as identity (B = 0): outputs equal the base model's
    base, _ = load_model(tiny_qwen2_dir, device="cpu")
    ids = tok("12+3", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, base(ids).logits, atol=1e-6)
    with pytest.raises(ModelLoadError, match="target_modules"):
        apply_lora(base, LoraSettings(target_modules=["no_such_layer"]))
