"""RL configs offer LoRA and dtype: `rl.lora` trains only the adapters (the base weights stay bit-identical, the
adapters move), `rl.dtype` casts the policy, both reachable from YAML/overrides, and config validation (enum-like
keys typed Literal, the advantage name) refuses bad values before any model exists."""

import pytest
import torch
from shared.config import ConfigError, load_config
from shared.modeling import LoraSettings
from shared.rl.trainer import RLConfig, RLTrainer
from transformers import AutoModelForCausalLM, AutoTokenizer


def _records():
    return [{"id": f"r{i}", "prompt": f"Q: {i}+1=?\nA: ", "answer": str(i + 1)} for i in range(6)]


def _digit_reward(trajs, recs):
    return [sum(c.isdigit() for c in t.text) / max(1, len(t.text)) for t in trajs]


def _cfg(out, **kw):
    kw = {"steps": 2, **kw}
    return RLConfig(output_dir=str(out), prompts_per_step=2, generations=3, max_new_tokens=6, lr=5e-2,
                    checkpoint_every=0, progress=False, threads=1, tensorboard=False, **kw)


def test_lora_trains_only_the_adapters(tiny_qwen2_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    tok = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    base_before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer = RLTrainer(_cfg(tmp_path, lora=LoraSettings(r=4, alpha=8)), model, tok, _records(), _digit_reward)
    trainable = [n for n, p in trainer.policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    lora_before = {n: p.detach().clone() for n, p in trainer.policy.named_parameters() if p.requires_grad}
    trainer.train()
    after = dict(trainer.policy.named_parameters())
    assert any(not torch.equal(lora_before[n], after[n]) for n in lora_before), "the adapters did not move"
    for name, param in trainer.policy.named_parameters():  # peft names: base_model.model.<name>.base_layer...
        if "lora_" in name:
            continue
        plain = name.replace("base_model.model.", "", 1).replace(".base_layer", "")
        assert torch.equal(param.detach(), base_before[plain]), f"base weight {plain} changed"


def test_dtype_casts_the_policy(tiny_qwen2_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    tok = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    trainer = RLTrainer(_cfg(tmp_path, dtype="bfloat16", steps=1), model, tok, _records(), _digit_reward)
    assert {p.dtype for p in trainer.policy.parameters()} == {torch.bfloat16}


def test_lora_and_dtype_from_overrides_and_bad_values_refused():
    cfg = load_config(RLConfig, None, ["lora.r=16", "lora.target_modules=[q_proj,v_proj]", "dtype=float32"])
    assert cfg.lora == LoraSettings(r=16, target_modules=["q_proj", "v_proj"]) and cfg.dtype == "float32"
    assert load_config(RLConfig, None, []).lora is None  # default: full fine-tuning
    for bad, key in (("dtype=fp8", "dtype"), ("lr_schedule=cosin", "lr_schedule"), ("kl_estimator=k4", "kl_estimator"),
                     ("generator_backend=tgi", "generator_backend")):
        with pytest.raises(ConfigError, match=f"key '{key}'"):
            load_config(RLConfig, None, [bad])
    with pytest.raises(ValueError, match="rl.advantage 'grpoo' unknown"):
        load_config(RLConfig, None, ["advantage=grpoo"]).validate()
