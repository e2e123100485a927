"""The CLI: help lists the subcommands, BFCL eval of the gold answers writes results.json at 100%, bad config keys
and missing inputs give clear errors, and the replication pipeline runs end to end on a tiny budget."""

import json

import pytest
from matchtir.cli import main
from shared.eval import read_results


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "eval", "replicate"):
        assert cmd in out


def test_eval_bfcl_gold_writes_results(tmp_path, capsys):
    assert main(["eval", "--bfcl", "--gold", "--out", str(tmp_path), "eval.bfcl_limit=5"]) == 0
    doc = read_results(tmp_path)
    acc = {r["method"]: r["metrics"]["accuracy"] for r in doc["rows"]}
    assert acc == {"bfcl_simple_python": 1.0, "bfcl_multiple": 1.0, "bfcl_parallel": 1.0,
                   "bfcl_parallel_multiple": 1.0, "bfcl_all": 1.0}
    assert (tmp_path / "config.yaml").exists()


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    assert main(["eval", "--bfcl", "--gold", "--out", str(tmp_path), "eval.nonsense=1"]) == 2
    assert "unknown config key 'eval.nonsense'" in capsys.readouterr().err
    assert main(["eval", "--out", str(tmp_path)]) == 2
    assert "give --model" in capsys.readouterr().err
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "x"}\n')
    assert main(["eval", "--bfcl", "--predictions", str(preds), "--out", str(tmp_path)]) == 2
    assert "p.jsonl:1: field 'calls': missing" in capsys.readouterr().err


TINY = ["data.train_tasks=12", "data.sft_traces=6", "data.test_tasks=4", "model.hidden=32", "model.ffn=64",
        "model.heads=2", "model.vocab_size=400", "sft.steps=4", "sft.batch_size=8", "sft.logging_steps=2",
        "rl.steps=2", "rl.prompts_per_step=2", "rl.generations=2", "rl.eval_every=0", "rl.checkpoint_every=1",
        "rollout.max_turns=2", "rollout.max_new_tokens_per_turn=8", "rollout.max_response_tokens=32"]


def test_replicate_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["replicate", "--quick", "--out", str(out), *TINY]) == 0
    doc = read_results(out)
    assert [r["method"] for r in doc["rows"]] == ["sft", "trajectory", "km_traj", "km", "ot"]
    for r in doc["rows"]:
        assert set(r["metrics"]) == {"solve_f1", "solve_rate", "precision", "answer_f1", "mean_turns", "solve_f1_std"}
        assert 0.0 <= r["metrics"]["solve_f1"] <= 1.0
    assert doc["quick"] is True and doc["package"] == "matchtir"
    assert (out / "config.yaml").exists() and (out / "seed0" / "km" / "rl" / "metrics.jsonl").exists()
    table = capsys.readouterr().out
    assert "| km |" in table and "| km_traj |" in table
    assert set(doc["paired_differences"]) == {"km_traj-trajectory", "km-trajectory", "ot-trajectory", "km-km_traj"}
    # a rerun finds every stage done and rewrites the same rows
    before = json.loads((out / "seed0" / "ot" / "metrics.json").read_text())
    assert main(["replicate", "--quick", "--out", str(out), *TINY]) == 0
    assert json.loads((out / "seed0" / "ot" / "metrics.json").read_text()) == before
    assert read_results(out)["rows"] == doc["rows"]


def test_replicate_warm_start_only(tmp_path):
    out = tmp_path / "ws"
    assert main(["replicate", "--quick", "--out", str(out), "--rows", "sft", *TINY, "data.dev_tasks=2"]) == 0
    doc = read_results(out)
    assert [r["method"] for r in doc["rows"]] == ["sft"] and doc["paired_differences"] == {}
    assert doc["curve_split"] == "dev" and set(doc["dev_sft_solve_f1"]) == {"seed0"}
    assert not (out / "seed0" / "km").exists() and (out / "warm_starts").is_dir()  # no cache_dir: beside the seeds
