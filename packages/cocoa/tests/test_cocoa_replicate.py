"""End to end on a tiny model and tiny data: replicate writes a valid results.json and resumes; CLI errors are clear."""

import json

import pytest
from cocoa.cli import main
from cocoa.replicate import HEADLINE
from shared.eval import read_results

TINY = [
    "data.train_size=8", "data.eval_queries=4", "data.candidates=3", "data.image_size=56",
    "generative.steps=2", "generative.batch_size=4", "stage2.steps=2", "stage2.batch_size=4",
    "contrastive.steps=2", "contrastive.batch_size=4", "eval.probe_items=8",
]  # fmt: skip


def test_replicate_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["replicate", "--quick", "--out", str(out), "--seed", "3", *TINY, "contrastive.eval_every=1"]) == 0
    printed = capsys.readouterr().out
    assert "| contrastive |" in printed and "| cocoa |" in printed
    doc = read_results(out / "results.json")
    assert doc["package"] == "cocoa" and doc["experiment"] == "replicate" and doc["quick"] is True
    assert doc["seed"] == 3 and (out / "config.yaml").is_file()
    assert [r["method"] for r in doc["rows"]] == ["contrastive", "cocoa"]
    for row in doc["rows"]:
        assert set(HEADLINE) <= set(row["metrics"])
        assert all(0.0 <= row["metrics"][k] <= 1.0 for k in HEADLINE if k.startswith("p@1"))
    # stage 2 ran only in the cocoa row, so only there does the probe start below the generative base
    per = doc["per_seed"]["3"]
    # the learning curve: P@1 after step 1 of 2 (the last step is p@1_overall itself)
    assert 0.0 <= per["cocoa"]["p@1_overall@1"] <= 1.0 and "p@1_overall@2" not in per["cocoa"]
    base = doc["base_models"]["3"]
    for check in ("image_reliance", "image_reliance_heldout", "caption_p@1_heldout"):
        assert f"{check}_random" in base and f"{check}_base" in base
    assert base["generative_items"] == 8  # captions only: one per training scene
    assert per["cocoa"]["recon_loss_eos_start"] < per["contrastive"]["recon_loss_eos_start"]
    cached = json.loads((out / "seed3" / "cocoa" / "metrics.json").read_text())
    # a second call resumes from the checkpoints and reports the same figures
    assert main(["replicate", "--quick", "--out", str(out), "--seed", "3", *TINY, "contrastive.eval_every=1"]) == 0
    again = read_results(out / "results.json")
    assert again["per_seed"]["3"]["cocoa"] == cached


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for command in ("pretrain", "train", "eval", "replicate"):
        assert command in text


def test_unknown_config_key_is_a_clear_error(tmp_path, capsys):
    code = main(["replicate", "--quick", "--out", str(tmp_path), "contrastive.stepz=3"])
    assert code == 2
    assert "contrastive.stepz" in capsys.readouterr().err


def test_eval_on_mmeb_folder_without_gold_names_the_record(tmp_path, capsys):
    (tmp_path / "data" / "mmeb").mkdir(parents=True)
    rows = [
        {"meta_task": "vqa", "qry_text": "q1", "tgt_text": ["a", "b"]},
        {"meta_task": "vqa", "qry_text": "q2", "tgt_text": ["a", "b"], "pos_text": "c"},
    ]
    path = tmp_path / "data" / "mmeb" / "toy.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"data:\n  suite: mmeb\n  path: {tmp_path / 'data'}\nout_dir: {tmp_path / 'out'}\n")
    assert main(["eval", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "toy.jsonl, record 2, field 'tgt_text'" in err and "does not contain the gold" in err


def test_cli_stage_chain_generative_stage1_stage2_train_eval(tmp_path, capsys):
    tiny = [*TINY, "stage1.steps=2", "stage1.batch_size=4", "contrastive.chunk_size=2"]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  suite: synthetic\n")
    steps = [
        ["pretrain", "--stage", "generative", "--out", str(tmp_path / "base")],
        ["pretrain", "--stage", "1", "--out", str(tmp_path / "s1"), f"model.path={tmp_path / 'base' / 'model'}"],
        ["pretrain", "--stage", "2", "--out", str(tmp_path / "s2"), f"model.path={tmp_path / 's1' / 'model'}"],
        ["train", "--out", str(tmp_path / "tr"), f"model.path={tmp_path / 's2' / 'model'}"],
        ["eval", "--out", str(tmp_path / "ev"), f"model.path={tmp_path / 'tr' / 'model'}"],
    ]
    for argv in steps:
        assert main([*argv[:1], "--config", str(cfg), *argv[1:], *tiny]) == 0
    # stage 1 switched the model to bidirectional attention and every later stage kept it
    settings = json.loads((tmp_path / "tr" / "model" / "cocoa_model.json").read_text())
    assert settings["input_attention"] == "bidirectional"
    doc = read_results(tmp_path / "ev" / "results.json")
    assert doc["experiment"] == "eval" and "p@1_overall" in doc["rows"][0]["metrics"]
    assert "stage 2: first" in capsys.readouterr().out
