"""The package face: --help lists the commands, bad input is one line with exit 2, --dry-run on the paper-scale
config builds the model on the meta device, status reads the stamps, eval scores a saved model."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from huijin.cli import APP, main

TINY = Path(__file__).with_name("tiny_recipe.yaml")
GPU = Path(__file__).resolve().parents[1] / "configs" / "gpu_qwen7b.yaml"


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as err:
        main(["--help"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    for verb in ("run", "train", "status", "eval", "replicate"):
        assert verb in out
    assert set(APP.by_name) == {"run", "train", "status", "eval", "replicate"}


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["run", "--config", "missing.yaml"], "config file not found: missing.yaml"),
    (["run", "--config", str(TINY), "stages.reasoning_rl.trainer=grpoo"],
     "stages.reasoning_rl.trainer: 'grpoo' is not one of"),
    (["run", "--config", str(TINY), "stages.cpt.mixture.filings=0"], "stages.cpt.mixture.filings: must be > 0"),
    (["run", "--config", str(TINY), "--until", "nope"], "--until 'nope' is not a stage"),
    (["run"], "the recipe has no stages"),
    (["run", "--config", str(TINY), "model.path=./no_such_model"], "model.path: model path ./no_such_model does not"),
    (["status", "--config", str(TINY), "stpes=3"], "unknown config key 'stpes'"),
    (["eval", "--config", str(TINY)], "give --model PATH"),
    (["replicate", "--rows", "no_reasoning_rl"], "rows must include 'full'"),
    (["replicate", "--quick", "model.base=bogus"], "model.base"),
])
def test_bad_input_is_one_line_and_claims_nothing(capsys, tmp_path, argv, expected):
    if argv[0] in ("run", "status", "replicate"):
        argv += ["--out", str(tmp_path / "out")]
    assert expected in _one_line_error(capsys, argv).removeprefix(f"huijin {argv[0]}: ")
    assert not (tmp_path / "out").exists()


def test_a_broken_source_file_is_refused_before_any_work(capsys, tmp_path):
    bad = tmp_path / "news.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": \n', encoding="utf-8")
    err = _one_line_error(capsys, ["run", "--config", str(TINY), "--out", str(tmp_path / "out"),
                                   f"sources.news.path={bad}", "sources.news.kind=text", "stages.cpt.mixture.news=1"])
    assert f"{bad}:2:" in err
    assert not (tmp_path / "out").exists()


def test_a_bare_recipe_path_still_works_with_a_deprecation_line(capsys):
    assert main(["run", str(TINY), "--print-config"]) == 0
    out, err = capsys.readouterr()
    assert "stages:" in out and "use --config" in err


def test_missing_weights_is_one_line(capsys, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    err = _one_line_error(capsys, ["eval", "--config", str(TINY), "--model", str(tmp_path / "model"),
                                   "--out", str(tmp_path / "ev")])
    assert "stage 'model':" in err and "no model weights" in err


def test_dry_run_of_the_paper_scale_config(capsys):
    assert main(["run", "--config", str(GPU), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "7,615,616,512 total" in out and "memory per process (GiB, estimate)" in out
    assert "GiB of a 80 GiB card per process: fits" in out


def test_dry_run_of_an_unknown_model_is_one_line(capsys):
    err = _one_line_error(capsys, ["run", "--config", str(GPU), "--dry-run", "model.path=org/unknown-model"])
    assert "org/unknown-model" in err and "neither a local folder" in err


def test_status_and_eval_on_a_finished_run(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "huijin.cli", "run", "--config", str(TINY), "--out", str(tmp_path), "--until",
                          "cpt"], capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| cpt |" in run.stdout and (tmp_path / "stage_table.png").is_file()
    assert (tmp_path / "config.yaml").is_file()
    status = subprocess.run([sys.executable, "-m", "huijin.cli", "status", "--config", str(TINY), "--out", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=900)
    lines = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()}
    assert lines["cpt"] == "done" and lines["cpt.eval"] == "done" and lines["sft"] == "todo"
    table = json.loads((tmp_path / "stage_table.json").read_text())
    model = table["folders"]["cpt"]
    assert main(["eval", "--config", str(TINY), "--model", model, "--out", str(tmp_path / "ev")]) == 0
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["rows"][0]["metrics"]["filings_ppl"] == pytest.approx(table["table"]["cpt"]["filings_ppl"])
