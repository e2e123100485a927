"""CLI and end-to-end pipeline on a tiny random policy: replicate writes the contract's results.json; bad input."""

import json

import pytest
from rose.cli import build_parser, main

TINY = ["rl.steps=1", "rl.prompts_per_step=2", "rl.generations=3", "rl.max_new_tokens=6", "eval.max_new_tokens=6",
        "data.n_train=10", "data.n_eval=3", "eval.samples=2", "rl.dynamic_sampling=false", "rl.progress=false",
        "rl.threads=1"]


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "eval", "rollout", "replicate"):
        assert cmd in out


def test_replicate_end_to_end_on_a_tiny_policy(rose_tiny_dir, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["replicate", "--quick", "--out", str(out), f"model.path={rose_tiny_dir}", *TINY]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert (out / "config.yaml").is_file()
    assert doc["package"] == "rose" and doc["experiment"] == "replicate" and doc["quick"] is True
    rows = {r["method"]: r["metrics"] for r in doc["rows"]}
    assert set(rows) == {"sft_start", "grpo", "rose"}
    for key in ("accuracy", "mean_length_correct", "distinct_answers_per_group", "generated_tokens"):
        assert all(key in m for m in rows.values())
    # 2 prompts x 3 rollouts, one step: grpo generates every token, rose reuses prefixes
    assert rows["grpo"]["generated_tokens"] == rows["grpo"]["response_tokens"]
    assert rows["rose"]["generated_tokens"] <= rows["rose"]["response_tokens"]
    assert rows["sft_start"]["generated_tokens"] is None
    assert "| rose |" in capsys.readouterr().out


def test_unknown_config_key_is_named(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("# rose train --config bad.yaml\nrose:\n  epsilonn: 0.3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "rose.epsilonn" in err and "bad.yaml" in err


def test_bad_setting_is_named(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("# rose train --config bad.yaml\nrose:\n  advantage: banana\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "rose.advantage" in capsys.readouterr().err


def test_bad_eval_file_names_line_and_field(tmp_path, capsys, rose_tiny_dir):
    data = tmp_path / "eval.jsonl"
    data.write_text('{"prompt": "Q: 1+1=?\\nA: ", "answer": "2"}\n{"prompt": "Q: 2+2=?\\nA: "}\n')
    assert main(["eval", "--config", str(_cfg(tmp_path)), f"model.path={rose_tiny_dir}", f"data.eval={data}"]) == 2
    err = capsys.readouterr().err
    assert "eval.jsonl:2" in err and "answer" in err


def _cfg(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(f"# rose eval --config {path}\nout_dir: {tmp_path / 'out'}\n")
    return path


def test_parser_defaults():
    args = build_parser().parse_args(["replicate"])
    assert args.quick is False and args.seed is None  # no --seed: the replication starts at seed 0


def test_train_eval_and_resume_on_a_tiny_policy(rose_tiny_dir, tmp_path, capsys):
    cfg = _cfg(tmp_path)
    run = ["--config", str(cfg), f"model.path={rose_tiny_dir}", f"out_dir={tmp_path / 'run'}", *TINY,
           "rl.checkpoint_every=1", "rl.tensorboard=false"]
    assert main(["train", *run]) == 0
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["experiment"] == "train" and doc["rows"][0]["method"] == "rose"
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    assert main(["train", *run, "rl.steps=2", "--resume"]) == 0  # continues from step 1's checkpoint
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]
    assert main(["eval", "--config", str(cfg), f"model.path={tmp_path / 'run' / 'final'}",
                 f"out_dir={tmp_path / 'ev'}", "data.n_eval=2", "eval.samples=2", "eval.max_new_tokens=4"]) == 0
    ev = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert ev["experiment"] == "eval" and "accuracy" in ev["rows"][0]["metrics"]
