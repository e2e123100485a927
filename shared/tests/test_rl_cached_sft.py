"""cached_sft_policy: SFT until the caller's validation metric reaches a target, cached by settings.

A scripted metric pins down when training stops and what the stamp records; a real metric (the masked loss of
token examples) shows training moving it to the target; the cache is reused without rebuilding and refused for
other records or another key; bad records fail before anything is built."""

import json

import pytest
import torch
from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
from shared.rl.sft import SFTSettings
from shared.rl.warmstart import STAMP, cached_sft_policy, records_digest, sft_stamp_settings
from transformers import AutoModelForCausalLM, AutoTokenizer

RECORDS = [{"prompt": f"Q: {i}\nA: ", "completion": f"{i}{i}"} for i in range(10, 26)]


class Builder:
    """build_model for the tests: a very small random Qwen2 with the char tokenizer; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, scratch):
        self.calls += 1
        path = tiny_causal_lm(scratch, tokenizer=build_tokenizer(kind="char"), hidden=32, layers=1, heads=2, ffn=64)
        return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _settings(**kw):
    return SFTSettings(**{"steps": 40, "lr": 3e-3, "batch_size": 8, "warmup_steps": 0, "logging_steps": 5, **kw})


def test_stops_when_the_metric_reaches_the_target_and_stamps_the_curve(tmp_path):
    values = iter([0.1, 0.2, 0.35, 0.9])
    seen_modes = []

    def val_fn(model, tokenizer):
        seen_modes.append(model.training)
        return next(values)

    build = Builder()
    path = cached_sft_policy(tmp_path / "ws", build, RECORDS, val_fn, target=0.3, settings=_settings(), eval_every=4,
                             key={"model": "qwen2-h32"}, test_fn=lambda m, t: {"test_score": 0.5})
    stamp = json.loads((path / STAMP).read_text())
    assert stamp["validation_curve"] == [[4, 0.1], [8, 0.2], [12, 0.35]]  # measured every 4 steps, then stopped
    assert stamp["stopped_at"] == 12 and stamp["test_score"] == 0.5 and stamp["final_loss"] is not None
    assert seen_modes == [False, False, False]  # measured in eval mode
    assert stamp["settings"] == sft_stamp_settings(_settings(), RECORDS, 0.3, 4, {"model": "qwen2-h32"})
    assert stamp["settings"]["records"] == records_digest(RECORDS) and stamp["settings"]["records"]["n"] == 16
    assert stamp["settings"]["sft"]["steps"] == 40 and "output_dir" not in stamp["settings"]["sft"]
    assert (path / "config.json").exists() and not (path / "init").exists() and not (path / "trl").exists()
    assert build.calls == 1


def test_cache_is_reused_and_refused_for_other_records_or_key(tmp_path):
    build = Builder()
    out = tmp_path / "ws"
    path = cached_sft_policy(out, build, RECORDS, settings=_settings(steps=2), key={"model": "a"})
    built = (path / "model.safetensors").stat().st_mtime_ns
    # a callable giving the same records hits the same cache without building
    assert cached_sft_policy(out, build, lambda: list(RECORDS), settings=_settings(steps=2), key={"model": "a"}) == path
    assert build.calls == 1 and (path / "model.safetensors").stat().st_mtime_ns == built
    with pytest.raises(FileExistsError, match="other settings"):
        cached_sft_policy(out, build, RECORDS[:-1], settings=_settings(steps=2), key={"model": "a"})
    with pytest.raises(FileExistsError, match="other settings"):
        cached_sft_policy(out, build, RECORDS, settings=_settings(steps=2), key={"model": "b"})
    with pytest.raises(FileExistsError, match="other settings"):
        cached_sft_policy(out, build, RECORDS, settings=_settings(steps=2, lr=1e-3), key={"model": "a"})
    assert build.calls == 1


def _masked_loss(model, examples):
    total, count = 0.0, 0
    with torch.no_grad():
        for ex in examples:
            ids = ex["input_ids"]
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            for i in range(1, len(ids)):
                if ex["completion_mask"][i]:
                    total -= float(logp[i - 1, ids[i]])
                    count += 1
    return total / count


def test_a_real_metric_is_driven_to_its_target_on_token_examples(tmp_path):
    tok = build_tokenizer(kind="char")
    examples = []
    for rec in RECORDS[:8]:
        prompt = tok(rec["prompt"], add_special_tokens=False)["input_ids"]
        answer = tok(rec["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        examples.append({"input_ids": prompt + answer, "completion_mask": [0] * len(prompt) + [1] * len(answer)})

    def val_fn(model, tokenizer):
        return -_masked_loss(model, examples)  # higher is better: minus the masked loss

    path = cached_sft_policy(tmp_path / "ws", Builder(), examples, val_fn, target=-1.0,
                             settings=_settings(steps=300, lr_schedule="constant"), eval_every=5, key={"toy": 1})
    stamp = json.loads((path / STAMP).read_text())
    curve = stamp["validation_curve"]
    print("curve", curve)
    assert curve[0][1] < -2.0 and curve[-1][1] >= -1.0  # started far from the target, stopped on reaching it
    assert stamp["stopped_at"] == curve[-1][0] < 300
    reloaded = AutoModelForCausalLM.from_pretrained(path)
    assert _masked_loss(reloaded, examples) == pytest.approx(-curve[-1][1], abs=1e-4)  # the saved model is that one


def test_bad_records_fail_before_anything_is_built(tmp_path):
    build = Builder()
    bad = [*RECORDS[:3], {"id": "q9", "prompt": "Q: 9\nA: ", "completion": ""}]
    with pytest.raises(ValueError, match=r"cached_sft_policy records: record 3 \(id 'q9'\) needs a non-empty string"):
        cached_sft_policy(tmp_path / "ws", build, bad, settings=_settings())
    with pytest.raises(ValueError, match="a target needs a val_fn"):
        cached_sft_policy(tmp_path / "ws", build, RECORDS, target=0.5, settings=_settings())
    assert build.calls == 0 and not (tmp_path / "ws").exists()
