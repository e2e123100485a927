"""The sage CLI: subcommands with help, and configuration errors as one-line messages with exit status 2."""

import pytest
from sage.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for sub in ("train", "eval", "replicate"):
        assert sub in out


def test_replicate_help_names_flags(capsys):
    with pytest.raises(SystemExit):
        main(["replicate", "--help"])
    out = capsys.readouterr().out
    assert "--quick" in out and "--seeds" in out and "--out" in out


def test_unknown_config_key_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("# sage train --config bad.yaml\nscoring:\n  windw: 3\n", encoding="utf-8")
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "scoring.windw" in err and str(cfg) in err


def test_unknown_method_is_a_clear_error(capsys):
    assert main(["train", "train.method=greedy"]) == 2
    assert "greedy" in capsys.readouterr().err


def test_missing_problem_file_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "none.jsonl"
    assert main(["train", "--out", str(tmp_path / "o"), "data.source=jsonl", f"data.path={missing}",
                 "model.path=unused"]) == 2
    assert "problem file not found" in capsys.readouterr().err


def test_unverifiable_answer_is_a_clear_error_naming_file_and_line(tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "colour?", "answer": "see above"}\n',
                    encoding="utf-8")
    assert main(["train", "--out", str(tmp_path / "o"), "data.source=jsonl", f"data.path={path}",
                 "model.path=unused"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: field 'answer'" in err and "no verifiable final answer" in err
