"""The `mask` command (on `shared.cli`): help, the GPU config's dry run, one-line errors on bad config and bad
records before any work, and an end-to-end train + eval on a tiny random policy in seconds."""

import json
from pathlib import Path

import pytest
import yaml
from mask.cli import main

GPU = "packages/mask/configs/gpu_qwen2.5-7b.yaml"


def test_help_lists_verbs(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for verb in ("train", "eval", "oracle", "replicate"):
        assert verb in out


def test_gpu_config_dry_run(capsys, tmp_path, monkeypatch):
    """Offline, with a hub id as model.path: sized from the bundled architecture, nothing written."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gpu = str(Path(GPU).resolve())
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", gpu, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "7,615,616,512 total" in out and "critic (separate model)" in out and "config ok" in out
    assert "the config is valid" in out and "56.78 of 80 GiB: fits" in out
    assert list(tmp_path.iterdir()) == []


def test_dry_run_needs_a_model_path(capsys):
    assert main(["train", "--dry-run"]) == 2
    assert capsys.readouterr().err.strip().startswith("mask train: --dry-run needs model.path")


@pytest.mark.parametrize("override, needle", [
    ("parse.mode=lenient", "parse.mode"), ("prompt.overflow=cut", "prompt.overflow"),
    ("loop.topk=0", "loop.topk must be >= 1"), ("reward.format_penalty=1", "format_penalty"),
    ("data.test_file=/nonexistent.jsonl", "data.test_file: file not found"), ("loop.bogus=1", "bogus")])
def test_bad_config_is_one_line(capsys, override, needle):
    assert main(["train", "--config", GPU, "--dry-run", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mask train: ") and needle in err and "\n" not in err


def test_bad_config_refused_before_any_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "rl.advantage=bogus"]) == 2
    assert capsys.readouterr().err.strip().startswith("mask train: rl.advantage 'bogus' unknown")
    assert main(["replicate", "--quick", "--out", str(out), "--rows", "mask,bogus"]) == 2
    assert "--rows: unknown rows ['bogus']" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from shared.modeling.tiny import EXTRA_TAGS, TAGS, build_tokenizer, tiny_causal_lm

    tok = build_tokenizer(kind="char", extra_tags=[*TAGS, *EXTRA_TAGS])
    return tiny_causal_lm(tmp_path_factory.mktemp("tiny"), tokenizer=tok, hidden=32, layers=1, heads=2, ffn=64)


def _small_config(path, model, **extra):
    cfg = {"output_dir": str(path / "run"), "model": {"path": str(model)},
           "data": {"split_by": "entity", "n_people": 60, "n_companies": 15, "n_cities": 12, "n_countries": 5,
                    "n_dev": 2, "n_test": 3},
           "prompt": {"style": "short", "max_tokens": 1000, "overflow": "left"},
           "loop": {"max_iterations": 2, "plan_tokens": 8, "search_tokens": 8, "summary_tokens": 8,
                    "answer_tokens": 8},
           "rl": {"steps": 1, "checkpoint_every": 1, "tensorboard": False, "progress": False},
           "train": {"questions_per_step": 2, "episodes_per_question": 2}, **extra}
    file = path / "small.yaml"
    file.write_text(yaml.safe_dump(cfg))
    return file


def test_train_and_eval_end_to_end(tmp_path, tiny_policy, capsys):
    config = _small_config(tmp_path, tiny_policy)
    assert main(["train", "--config", str(config), "--no-progress"]) == 0
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [r["method"] for r in doc["rows"]] == ["mask_start", "mask"]
    assert set(doc["rows"][1]["metrics"]) >= {"f1", "em", "acc", "context_tokens_per_turn", "generated_tokens"}
    assert (tmp_path / "run" / "final_model" / "config.json").is_file()
    assert main(["eval", "--config", str(config), "--model", str(tmp_path / "run" / "final_model"), "--row",
                 "monolithic", "--out", str(tmp_path / "ev")]) == 0
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["rows"][0]["method"] == "monolithic"


def test_record_without_answers_is_one_line(tmp_path, tiny_policy, capsys):
    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"id": "q1", "question": "Who?", "golden_answers": ["A"]}) + "\n"
                    + json.dumps({"id": "q2", "question": "Where?"}) + "\n")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "d1", "contents": '"A"\nA lives here.'}) + "\n")
    config = _small_config(tmp_path, tiny_policy)
    args = ["eval", "--config", str(config), "--model", str(tiny_policy), f"data.test_file={test}",
            f"data.train_file={test}", f"data.dev_file={test}", f"data.corpus_file={corpus}"]
    assert main([*args, "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mask eval: {test}:2: field 'golden_answers': missing"
    assert not (tmp_path / "ev").exists()


def test_oracle_verb_writes_records(tmp_path, tiny_policy, capsys):
    config = _small_config(tmp_path, tiny_policy)
    assert main(["oracle", "--config", str(config), "--out", str(tmp_path / "oracle"), "--split", "dev"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "oracle" / "oracle.jsonl").read_text().splitlines()]
    assert rows[0]["role"] == "plan" and rows[0]["completion"].endswith("<final_answer>unkown</final_answer>")
    assert {r["role"] for r in rows} == {"plan", "search", "summary", "update", "answer"}
