"""The TRL SFT and DPO wrappers on the tiny Qwen2: they train on CPU and move their objectives the right way;
bad records are rejected with the record index and field."""

import pytest
import torch
from shared.rl.dpo import DPOSettings, run_dpo
from shared.rl.sft import SFTSettings, run_sft
from shared.rl.trl_common import schedule_args, trainer_flags
from transformers import AutoModelForCausalLM, AutoTokenizer


def _model(path):
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _sft_records(n=32):
    return [{"prompt": f"Q: {10 + i}+1=?\nA: ", "completion": f"\\boxed{{{11 + i}}}"} for i in range(n)]


def test_sft_lowers_completion_loss(tiny_qwen2_dir, tmp_path):
    model, tok = _model(tiny_qwen2_dir)
    settings = SFTSettings(output_dir=str(tmp_path), steps=8, lr=3e-3, batch_size=8, warmup_steps=0,
                           lr_schedule="constant", logging_steps=4)
    model, log = run_sft(model, tok, _sft_records(), settings)
    losses = [x["loss"] for x in log if "loss" in x]
    assert len(losses) == 2 and losses[-1] < losses[0] - 0.5
    assert next(model.parameters()).device.type == "cpu"


def test_dpo_with_sft_term_separates_chosen_from_rejected(tiny_qwen2_dir, tmp_path):
    model, tok = _model(tiny_qwen2_dir)
    pairs = [{"prompt": f"Q: {i}?\nA: ", "chosen": f"\\boxed{{{i}}}", "rejected": f"\\boxed{{{i + 1}}}x"}
             for i in range(16)]
    settings = DPOSettings(output_dir=str(tmp_path), steps=8, lr=1e-3, batch_size=8, beta=0.1, sft_weight=0.5,
                           logging_steps=1)
    model, log = run_dpo(model, tok, pairs, settings)
    margins = [x["rewards/margins"] for x in log if "rewards/margins" in x]
    assert margins[-1] > margins[0] and margins[-1] > 0


def test_cpu_flags_and_bad_records(tiny_qwen2_dir, tmp_path):
    flags = trainer_flags(str(tmp_path), 0)
    if not torch.cuda.is_available():
        assert flags["use_cpu"] and not flags["bf16"] and not flags["gradient_checkpointing"]
    assert flags["report_to"] == "none"
    model, tok = _model(tiny_qwen2_dir)
    with pytest.raises(ValueError, match=r"sft records: record 1 \(id 'b'\) needs a non-empty string field 'completion'"):
        run_sft(model, tok, [{"prompt": "a", "completion": "b"}, {"id": "b", "prompt": "a"}], SFTSettings())
    with pytest.raises(ValueError, match="record 0 .* field 'rejected'"):
        run_dpo(model, tok, [{"prompt": "a", "chosen": "b", "rejected": ""}], DPOSettings())
    with pytest.raises(ValueError, match="no records"):
        run_sft(model, tok, [], SFTSettings())
    with pytest.raises(ValueError, match="sft_weight"):
        run_dpo(model, tok, [{"prompt": "a", "chosen": "b", "rejected": "c"}], DPOSettings(sft_weight=-1))


def test_schedule_args_carry_each_settings_field_to_its_trainer_argument(tmp_path):
    sft = SFTSettings(output_dir=str(tmp_path), steps=7, lr=1e-4, batch_size=3, grad_accum=2, lr_schedule="linear",
                      warmup_steps=1, max_length=64, seed=5, logging_steps=2)
    args = schedule_args(sft)
    assert {k: args[k] for k in ("max_steps", "learning_rate", "per_device_train_batch_size",
                                 "gradient_accumulation_steps", "lr_scheduler_type", "warmup_steps", "max_length",
                                 "logging_steps", "seed", "output_dir")} == {
        "max_steps": 7, "learning_rate": 1e-4, "per_device_train_batch_size": 3, "gradient_accumulation_steps": 2,
        "lr_scheduler_type": "linear", "warmup_steps": 1, "max_length": 64, "logging_steps": 2, "seed": 5,
        "output_dir": str(tmp_path)}
    assert schedule_args(DPOSettings(steps=9))["max_steps"] == 9 and args["report_to"] == "none"
