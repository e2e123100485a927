"""The package face: help, one-line errors with exit 2 before any work, the GPU config's dry run, and an end-to-end
replication on a tiny KB with tiny models (seconds, not a result)."""

import json
from pathlib import Path

import pytest
from arr.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = ["data.n_people=40", "data.n_companies=8", "data.n_cities=8", "data.n_countries=4",
        "data.train_questions=24", "data.dev_questions=6", "data.test_questions=8", "model.hidden=32",
        "model.layers=1", "model.heads=2", "model.ffn=64", "model.vocab_size=400", "warm_start.reasoner_steps=4",
        "warm_start.verifier_steps=4", "sft.batch_size=4", "sft.warmup_steps=1", "rl.steps=1",
        "rl.prompts_per_step=2", "rl.generations=2", "rl.eval_every=1", "probe.items=4", "probe.dev_items=3",
        "protocol.max_turns=3", "protocol.reasoner_tokens=24", "protocol.verifier_tokens=24"]


def test_help_lists_the_verbs(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for verb in ("train", "eval", "probe", "warmstart", "replicate"):
        assert verb in out


@pytest.mark.parametrize("override,needle", [("train.schedule=sometimes", "train.schedule"),
                                             ("advantage.form=double", "advantage.form"),
                                             ("reward.presense=sticky", "presense"),
                                             ("evidence.drop_gold=1.5", "evidence.drop_gold")])
def test_bad_config_is_one_line_exit_2(capsys, override, needle):
    assert main(["train", "--config", str(CONFIGS / "train.yaml"), override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arr train: ") and needle in err and "\n" not in err


def test_record_without_answers_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "train.jsonl"
    bad.write_text(json.dumps({"id": "a", "question": "Where?", "golden_answers": ["x"]}) + "\n"
                   + json.dumps({"id": "b", "question": "Who?"}) + "\n")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "d1", "contents": '"T"\ntext'}) + "\n")
    code = main(["train", "--config", str(CONFIGS / "train.yaml"), "--out", str(tmp_path / "out"),
                 f"data.train_file={bad}", f"data.corpus_file={corpus}"])
    err = capsys.readouterr().err
    assert code == 2 and "train.jsonl:2" in err and "golden_answers" in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_dry_run_of_the_gpu_config(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub id is sized from the bundled config: nothing is fetched
    assert main(["train", "--config", str(CONFIGS / "gpu_qwen2.5_3b.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "the config is valid" in out and "3,085,938,688" in out and "world size 4, sharding fsdp" in out
    assert "the verifier's 4 processes hold the same" in out and "50.02 of 80 GiB: fits" in out
    # one shared policy for both roles, or two different models: one report per policy
    assert main(["train", "--config", str(CONFIGS / "gpu_qwen2.5_3b.yaml"), "--dry-run", "roles.policies=shared"]) == 0
    assert "[shared policy (both roles), one of 4 processes]" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # nothing trained, no output folder claimed
    assert main(["train", "--config", str(CONFIGS / "train.yaml"), "--dry-run"]) == 2  # no model.path
    err = capsys.readouterr().err.strip()
    assert err.startswith("arr train: model.path is empty") and "\n" not in err


def test_end_to_end_tiny_replication(tmp_path, capsys):
    code = main(["replicate", "--quick", "--out", str(tmp_path / "rep"), "--no-progress",
                 f"warm_start.cache_dir={tmp_path / 'ws'}", *TINY])
    assert code == 0
    doc = json.loads((tmp_path / "rep" / "results.json").read_text())
    methods = [r["method"] for r in doc["rows"]]
    assert methods == ["sft", "sft_reasoner_only", "reasoner_only", "arr"]
    keys = {"em", "f1", "verifier_reject_rate_no_answer", "verifier_reject_rate_with_answer", "reject_gap",
            "mean_turns", "generated_tokens"}
    for row in doc["rows"]:
        assert keys <= set(row["metrics"])
    by = {r["method"]: r["metrics"] for r in doc["rows"]}
    assert by["reasoner_only"]["reject_gap"] is None and by["arr"]["reject_gap"] is not None
    assert doc["overlap"] == {"questions": 0, "hops": 0}
    assert set(doc["claims"]) == {"claim1_reject_gap", "claim2_f1_noninferior"}
    assert doc["weight_change"]["seed0"]["arr"]["verifier"] >= 0.0
    assert (tmp_path / "rep" / "config.yaml").exists()
    # a rerun finds every piece done
    assert main(["replicate", "--quick", "--out", str(tmp_path / "rep"), "--no-progress",
                 f"warm_start.cache_dir={tmp_path / 'ws'}", *TINY]) == 0


def test_replicate_refuses_unknown_rows_before_any_work(tmp_path, capsys):
    assert main(["replicate", "--quick", "--out", str(tmp_path / "rep"), "--rows", "arr,bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("arr replicate: --rows: unknown rows ['bogus']") and "\n" not in err
    assert not (tmp_path / "rep").exists()
