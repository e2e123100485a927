"""Dry runs: bundled architectures match their model cards' parameter counts; memory terms by hand; errors."""

from __future__ import annotations

import json

import pytest
from shared.dryrun import DryRunError, DryRunSpec, GiB, dry_run, format_report, known_architectures, main

# Parameter counts published for these checkpoints (model cards / safetensors metadata).
PUBLISHED = {
    "Qwen/Qwen2.5-0.5B-Instruct": 494_032_768,
    "Qwen/Qwen2.5-1.5B-Instruct": 1_543_714_304,
    "Qwen/Qwen2.5-3B-Instruct": 3_085_938_688,
    "Qwen/Qwen2.5-7B-Instruct": 7_615_616_512,
    # the Math models have the shapes of their Qwen2.5 bases (4k context, rope theta 1e4): the same counts
    "Qwen/Qwen2.5-Math-7B": 7_615_616_512,
    "Qwen/Qwen2.5-Math-1.5B-Instruct": 1_543_714_304,
    "meta-llama/Llama-3.1-8B-Instruct": 8_030_261_248,
    "Qwen/Qwen2-VL-2B-Instruct": 2_208_985_600,
    "google-t5/t5-base": 222_903_552,
    "intfloat/e5-base-v2": 109_482_240,
}
KINDS = {"Qwen/Qwen2-VL-2B-Instruct": "vl", "google-t5/t5-base": "seq2seq", "intfloat/e5-base-v2": "encoder"}


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_bundled_architectures_have_the_published_parameter_counts(model):
    report = dry_run(DryRunSpec(model=model, kind=KINDS.get(model, "causal")))
    assert report["parameters"] == PUBLISHED[model]


def test_every_bundled_architecture_is_checked():
    assert set(known_architectures()) == set(PUBLISHED)


def test_memory_terms_by_hand_qwen_half_billion():
    spec = DryRunSpec(model="Qwen/Qwen2.5-0.5B-Instruct", seq_len=1024, rollout_tokens=1000, reference_model=True)
    mem = dry_run(spec)["memory_gib"]
    n = 494_032_768
    assert mem["weights"] == pytest.approx(n * 2 / GiB)
    assert mem["gradients"] == pytest.approx(n * 2 / GiB)
    assert mem["optimizer"] == pytest.approx(n * 12 / GiB)  # two fp32 moments + fp32 master copy
    # 24 layer inputs of 1024x896 bf16 + one recomputed layer (34*896*1024) + fp32 logits 1024x151936
    assert mem["activations"] == pytest.approx((1024 * 896 * 2 * 24 + 34 * 896 * 1024 + 1024 * 151936 * 4) / GiB)
    assert mem["reference"] == pytest.approx(n * 2 / GiB)
    assert mem["rollout_kv_cache"] == pytest.approx(2 * 24 * (2 * 64) * 2 * 1000 / GiB)
    assert mem["total"] == pytest.approx(sum(v for k, v in mem.items() if k != "total"))


def test_sharding_divides_the_right_terms():
    base = dict(model="Qwen/Qwen2.5-0.5B-Instruct", world_size=4)
    none = dry_run(DryRunSpec(**base))["memory_gib"]
    z2 = dry_run(DryRunSpec(**base, sharding="zero2"))["memory_gib"]
    fsdp = dry_run(DryRunSpec(**base, sharding="fsdp"))["memory_gib"]
    assert z2["weights"] == none["weights"] and z2["gradients"] == pytest.approx(none["gradients"] / 4)
    assert z2["optimizer"] == pytest.approx(none["optimizer"] / 4)
    assert fsdp["weights"] == pytest.approx(none["weights"] / 4)


def test_lora_trainable_count_by_hand():
    # per layer: q,o 896->896: 8*(896+896); k,v 896->128: 8*(896+128); gate,up 896->4864 and down: 8*(896+4864)
    per_layer = 2 * 8 * 1792 + 2 * 8 * 1024 + 3 * 8 * 5760
    report = dry_run(DryRunSpec(model="Qwen/Qwen2.5-0.5B-Instruct", lora_r=8))
    assert report["trainable_parameters"] == 24 * per_layer == 4_399_104
    assert report["memory_gib"]["optimizer"] == pytest.approx(4_399_104 * 12 / GiB)


def test_local_folder_config_and_errors(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    arch = dict(known_architectures()["Qwen/Qwen2.5-0.5B-Instruct"], num_hidden_layers=2)
    (folder / "config.json").write_text(json.dumps(arch))
    assert dry_run(DryRunSpec(model=str(folder)))["parameters"] < PUBLISHED["Qwen/Qwen2.5-0.5B-Instruct"]
    with pytest.raises(DryRunError, match="neither a local folder"):
        dry_run(DryRunSpec(model="someone/unknown-model"))
    with pytest.raises(DryRunError, match="sharding"):
        dry_run(DryRunSpec(model=str(folder), sharding="zero9"))
    with pytest.raises(DryRunError, match="LoRA targets"):
        dry_run(DryRunSpec(model=str(folder), lora_r=4, lora_targets=("nope",)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DryRunError, match="no config.json"):
        dry_run(DryRunSpec(model=str(tmp_path / "empty")))


def test_cli_prints_a_table_and_exits_2_on_bad_input(capsys):
    assert main(["--model", "Qwen/Qwen2.5-7B-Instruct", "--world-size", "8", "--sharding", "fsdp"]) == 0
    out = capsys.readouterr().out
    assert "7,615,616,512 total" in out and "sharding fsdp" in out
    assert main(["--model", "nobody/nothing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m shared.dryrun: model 'nobody/nothing'")
    assert "total" in format_report(dry_run(DryRunSpec(model="google-t5/t5-base", kind="seq2seq")))
