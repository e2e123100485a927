"""TRL trainers write the workspace's training-output layout (metrics.jsonl + TensorBoard in output_dir) and pass
`report_to` through to TRL unchanged."""

import json

from shared.rl.dpo import DPOSettings
from shared.rl.sft import SFTSettings, run_sft
from shared.rl.trl_common import schedule_args
from transformers import AutoModelForCausalLM, AutoTokenizer


def test_report_to_reaches_trl_unchanged():
    assert schedule_args(SFTSettings())["report_to"] == "none"
    assert schedule_args(SFTSettings(report_to="wandb"))["report_to"] == "wandb"
    assert schedule_args(DPOSettings(report_to="tensorboard"))["report_to"] == "tensorboard"


def test_sft_writes_metrics_jsonl_per_logged_step(tiny_qwen2_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    tok = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    records = [{"prompt": f"Q: {i}+1=?\nA: ", "completion": str(i + 1)} for i in range(8)]
    out = tmp_path / "sft"
    settings = SFTSettings(output_dir=str(out), steps=3, batch_size=4, warmup_steps=0, logging_steps=1, lr=1e-3)
    _, history = run_sft(model, tok, records, settings)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [h for h in history if "loss" in h]
    assert [x["step"] for x in lines if "loss" in x] == [h["step"] for h in logged] == [1, 2, 3]
    assert [x["loss"] for x in lines if "loss" in x] == [h["loss"] for h in logged]
    assert (out / "tensorboard").is_dir()
    run_sft(model, tok, records, settings)  # a fresh run in the same folder replaces the earlier lines
    again = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in again if "loss" in x] == [1, 2, 3]
    assert sum("train_loss" in x for x in again) == 1  # TRL's end-of-training summary line, once
